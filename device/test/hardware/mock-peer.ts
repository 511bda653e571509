/**
 * The device end of a `SerialPortMock` (serialport's mock binding): what the
 * host writes arrives here, and what is written here the host reads. Lets a
 * simulator sit behind the exact stream a driver opens in unit tests.
 */
import { DisconnectedError } from "@serialport/stream";
import type { SerialPortMock } from "serialport";
import { LinkListeners, notOpen, type SerialLink, SerialLinkError } from "../../src/hardware/serial/serial-link.ts";

export interface MockPeerLink extends SerialLink {
  /** The device vanishes: the host's port closes with a DisconnectedError, as on a pulled USB adapter. */
  unplug(): void;
}

/** Attaches to an open SerialPortMock. */
export function mockPortPeer(port: SerialPortMock): MockPeerLink {
  const binding = port.port;
  if (!port.isOpen || !binding) {
    throw new SerialLinkError(`mock port ${port.path} must be open before a peer attaches`);
  }
  const path = port.path;
  const listeners = new LinkListeners();
  // The mock binding records writes but has no event for them; wrap this
  // instance's write so the peer hears each one after the host's write resolves.
  const write = binding.write.bind(binding);
  binding.write = async (buffer: Buffer) => {
    await write(buffer);
    listeners.emitData(Uint8Array.from(buffer));
  };
  const onClose = (err: Error | null | undefined) => {
    port.off("close", onClose);
    listeners.emitClose(err ?? undefined);
  };
  port.on("close", onClose);
  return {
    path,
    get isOpen() {
      return binding.isOpen && !listeners.closed;
    },
    async write(bytes) {
      if (!binding.isOpen || listeners.closed) return notOpen(path);
      binding.emitData(Buffer.from(bytes));
    },
    async close() {
      // The device side cannot close the host's port politely; treat it as an unplug.
      this.unplug();
    },
    unplug() {
      if (!port.isOpen) return;
      port.close(undefined, new DisconnectedError(`${path}: device unplugged`));
    },
    onData: (l) => listeners.onData(l),
    onClose: (l) => listeners.onClose(l),
  };
}
