/**
 * A SerialLink over TCP: a payment terminal's ECR port (ZVT listens on 20007)
 * is the same byte pipe as a UART, only reached over the LAN. Nagle is off:
 * the traffic is small request/answer frames, each waited for.
 */
import { connect, type Socket } from "node:net";
import { LinkListeners, notOpen, type SerialLink, SerialLinkError } from "./serial-link.ts";

export interface TcpLinkOptions {
  host: string;
  port: number;
  /** Gives up the connection attempt (a connect timeout, the driver closing); no effect once connected. */
  signal?: AbortSignal;
}

/** Resolves once connected; rejects with the connect error (refused, unreachable) or when `signal` aborts first. */
export function openTcpLink({ host, port, signal }: TcpLinkOptions): Promise<SerialLink> {
  const path = `${host}:${port}`;
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new SerialLinkError(`connecting to ${path} was given up`));
      return;
    }
    const socket = connect({ host, port });
    const onAbort = () => {
      socket.off("error", onError);
      socket.destroy();
      reject(new SerialLinkError(`connecting to ${path} was given up`));
    };
    const onError = (err: Error) => {
      signal?.removeEventListener("abort", onAbort);
      socket.destroy();
      reject(new SerialLinkError(err.message, { cause: err }));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    socket.once("error", onError);
    socket.once("connect", () => {
      signal?.removeEventListener("abort", onAbort);
      socket.off("error", onError);
      socket.setNoDelay(true);
      resolve(socketLink(socket, path));
    });
  });
}

function socketLink(socket: Socket, path: string): SerialLink {
  const listeners = new LinkListeners();
  let lastError: Error | undefined;
  let closing: Promise<void> | undefined;
  socket.on("data", (chunk: Buffer) => listeners.emitData(chunk));
  // An error is always followed by "close", which reports it.
  socket.on("error", (err) => {
    lastError = err;
  });
  socket.on("close", () => {
    listeners.emitClose(
      closing
        ? undefined
        : new SerialLinkError(lastError?.message ?? `${path} closed the connection`, { cause: lastError }),
    );
  });
  const isOpen = () => !listeners.closed && socket.writable;
  return {
    path,
    get isOpen() {
      return isOpen();
    },
    write(bytes) {
      if (!isOpen()) return notOpen(path);
      return new Promise<void>((resolve, reject) => {
        socket.write(bytes, (err) => {
          if (err) reject(new SerialLinkError(`write to ${path} failed: ${err.message}`, { cause: err }));
          else resolve();
        });
      });
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        if (socket.closed) {
          listeners.emitClose(undefined);
          resolve();
          return;
        }
        socket.once("close", () => resolve());
        // Bytes just written (an abort) go out before the connection ends.
        socket.end(() => socket.destroy());
      });
      return closing;
    },
    onData: (l) => listeners.onData(l),
    onClose: (l) => listeners.onClose(l),
  };
}
