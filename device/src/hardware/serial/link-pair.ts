/**
 * Two SerialLinks joined back to back in memory, like a null-modem cable:
 * what one end writes the other receives. Delivery is asynchronous (a
 * microtask) as on a real port, so a driver never re-enters itself.
 */
import { LinkListeners, notOpen, type SerialLink } from "./serial-link.ts";

export interface LinkPair {
  /** The end the driver opens. */
  host: SerialLink;
  /** The end the simulated device attaches to. */
  device: SerialLink;
  /** The device disappears: both ends close with an error, as serialport reports a lost USB adapter. */
  unplug(): void;
}

export function createLinkPair(path = "memory"): LinkPair {
  const a = new LinkListeners();
  const b = new LinkListeners();
  const end = (mine: LinkListeners, other: LinkListeners): SerialLink => ({
    path,
    get isOpen() {
      return !mine.closed;
    },
    async write(bytes) {
      if (mine.closed) return notOpen(path);
      const copy = Uint8Array.from(bytes);
      queueMicrotask(() => other.emitData(copy));
    },
    async close() {
      // Closing either end ends the cable: the other side sees it as lost.
      const lost = mine.closed ? undefined : new Error(`${path}: the other end closed`);
      mine.emitClose(undefined);
      if (lost) other.emitClose(lost);
    },
    onData: (l) => mine.onData(l),
    onClose: (l) => mine.onClose(l),
  });
  return {
    host: end(a, b),
    device: end(b, a),
    unplug() {
      const err = new Error(`${path}: device unplugged`);
      a.emitClose(err);
      b.emitClose(err);
    },
  };
}
