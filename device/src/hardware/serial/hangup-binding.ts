/**
 * The native serial binding, with one fix: a read of 0 bytes is the device
 * hanging up, and ends the port.
 *
 * When the far end of a tty goes (a pty's master closes, as when a USB
 * adapter's driver unbinds or socat stops), Linux first marks the line
 * closed, so a poll wakes and a read fails with EIO, then hangs the tty up,
 * after which every read returns 0 bytes. @serialport/bindings-cpp (13.x)
 * takes a 0-byte read for "nothing yet" and reads again at once without
 * polling, so a read that lands after the hang-up spins forever on 0: the port
 * never closes, and a driver waiting for its close never sees the terminal go
 * (in about 5 of 100 unplugs on a busy machine). A non-blocking read of an
 * open tty with no data fails with EAGAIN instead, so 0 bytes can only mean
 * the hang-up. Everything else is bindings-cpp's own read.
 */
import { read as fsRead } from "node:fs";
import { promisify } from "node:util";
import { SerialPort } from "serialport";

const readAsync = promisify(fsRead);

type NativeBinding = typeof SerialPort.binding;
type NativePort = Awaited<ReturnType<NativeBinding["open"]>>;

/** The parts of bindings-cpp's Linux/Darwin port binding the read uses. */
type UnixPort = Pick<NativePort, "isOpen" | "read"> & {
  fd: number | null;
  poller?: { once(event: "readable", listener: (err: Error | null) => void): unknown };
};

/** The binding's contract for a read ended by close(): an error with `canceled`, which the stream ignores. */
function canceled(): Error {
  return Object.assign(new Error("Port is not open"), { canceled: true });
}

function readable(port: UnixPort): Promise<void> {
  return new Promise((resolve, reject) => {
    if (!port.poller) throw canceled();
    port.poller.once("readable", (err) => (err ? reject(err) : resolve()));
  });
}

/** bindings-cpp's unixRead, with 0 bytes taken as the hang-up it is. */
export async function readOrHangUp(
  port: UnixPort,
  buffer: Buffer,
  offset: number,
  length: number,
  read: typeof readAsync = readAsync,
): Promise<{ bytesRead: number; buffer: Buffer }> {
  for (;;) {
    if (!port.isOpen || port.fd === null) throw canceled();
    let bytesRead: number;
    try {
      ({ bytesRead } = await read(port.fd, buffer, offset, length, null));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "EAGAIN" && code !== "EWOULDBLOCK" && code !== "EINTR") throw err;
      if (!port.isOpen) throw canceled();
      await readable(port);
      continue;
    }
    if (bytesRead > 0) return { bytesRead, buffer };
    // Any error other than a canceled one closes the stream (the binding interface's contract).
    throw new Error("the device hung up (end of file on the serial line)");
  }
}

/** The platform's binding (Linux, Darwin or Windows), called with the options the stream was given. */
const native = SerialPort.binding as unknown as {
  list: NativeBinding["list"];
  open(options: Parameters<NativeBinding["open"]>[0]): Promise<NativePort>;
};

/** Opens ports with the native binding, their reads replaced by readOrHangUp on Linux and macOS. */
export const hangUpAwareBinding: NativeBinding = {
  list: () => native.list(),
  async open(options: Parameters<NativeBinding["open"]>[0]): Promise<NativePort> {
    const port = await native.open(options);
    if (!("fd" in port) || !("poller" in port)) return port; // Windows: its own reads
    const unix = port as unknown as UnixPort;
    unix.read = (buffer, offset, length) => readOrHangUp(unix, buffer, offset, length);
    return port;
  },
} as NativeBinding;
