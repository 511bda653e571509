/**
 * The part of PC/SC the reader uses, as an interface, and its real
 * implementation: `@pokusew/pcsclite` (the maintained binding nfc-pcsc builds
 * on) talking to pcscd through libpcsclite.
 *
 * One trap of that binding decides the shape: its context constructor spins
 * on SCardEstablishContext for as long as pcscd is not running, on the main
 * thread. So the reader asks `serviceRunning()` (a connect to pcscd's
 * socket) first and opens a context only when pcscd answers.
 */
import { createConnection } from "node:net";

/** pcsc-lite's socket; libpcsclite (and so this binding, pcsc_scan, opensc) honour PCSCLITE_CSOCK_NAME in its place. */
export const PCSCD_SOCKET = "/run/pcscd/pcscd.comm";

/** SCARD_STATE_* bits of a reader's state (pcsc-lite's pcsclite.h; the same values on Windows and macOS). */
export const SCARD_STATE = { UNAVAILABLE: 0x0008, EMPTY: 0x0010, PRESENT: 0x0020, MUTE: 0x0200 } as const;
export const SCARD_SHARE_SHARED = 2;
export const SCARD_PROTOCOL_T0_T1 = 0x0001 | 0x0002;
export const SCARD_LEAVE_CARD = 0;

export interface PcscStatus {
  state: number;
  atr?: Uint8Array;
}

/** One reader as pcscd lists it; `end` when it is unplugged or pcscd goes away. */
export interface PcscCardReader {
  readonly name: string;
  /** The last state the binding reported (SCARD_STATE bits); undefined before the first. */
  readonly state?: number;
  on(event: "status", listener: (status: PcscStatus) => void): unknown;
  on(event: "end", listener: () => void): unknown;
  on(event: "error", listener: (err: Error) => void): unknown;
  once(event: "status", listener: (status: PcscStatus) => void): unknown;
  once(event: "end", listener: () => void): unknown;
  connect(options: { share_mode: number; protocol: number }, cb: (err: unknown, protocol: number) => void): void;
  transmit(data: Buffer, resLen: number, protocol: number, cb: (err: unknown, response: Buffer) => void): void;
  disconnect(disposition: number, cb: (err: unknown) => void): void;
  close(): void;
}

/** An established context: `reader` for each reader that appears, `error` once when pcscd goes away. */
export interface PcscContext {
  on(event: "reader", listener: (reader: PcscCardReader) => void): unknown;
  on(event: "error", listener: (err: Error) => void): unknown;
  close(): void;
}

export interface PcscBinding {
  /** The socket pcscd answers on, for log lines. */
  readonly socketPath: string;
  /** True when pcscd accepts a connection (or systemd holds its socket and starts it on demand). */
  serviceRunning(): Promise<boolean>;
  /** Call only after serviceRunning() said yes (see the module comment). */
  open(): Promise<PcscContext>;
}

type PcscliteFactory = () => PcscContext;
let factory: Promise<PcscliteFactory> | undefined;

/** The native binding, loaded on first use so a kiosk with a PN532 never loads it. */
function loadBinding(): Promise<PcscliteFactory> {
  factory ??= import("@pokusew/pcsclite").then(
    (m) => (m.default ?? m) as unknown as PcscliteFactory,
    (err: unknown) => {
      factory = undefined;
      throw new Error(
        `the PC/SC binding @pokusew/pcsclite does not load (${(err as Error).message}): apt-get install libpcsclite-dev; npm rebuild @pokusew/pcsclite`,
      );
    },
  );
  return factory;
}

export function pcscliteBinding(socketPath = process.env.PCSCLITE_CSOCK_NAME || PCSCD_SOCKET): PcscBinding {
  return {
    socketPath,
    serviceRunning: () => socketAnswers(socketPath),
    open: async () => (await loadBinding())(),
  };
}

function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ path });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}
