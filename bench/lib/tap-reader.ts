/**
 * The tap benchmark's card field: a PN532 simulator on the peer end of a pty
 * pair (the reader under test opens the device end, as on a Pi), with the
 * moment it writes each target frame stamped on the clock the browser page
 * shares (performance.timeOrigin + performance.now(), epoch ms).
 *
 * The stamp is taken by wrapping the simulator's link, so the simulator
 * itself is untouched: the frame is recognised on its way to the wire.
 */
import { performance } from "node:perf_hooks";
import { openPtyPair, openSerialPort, Pn532Simulator, type PtyPair, type SerialLink } from "@paylane/device/hardware";

/** Epoch milliseconds with sub-ms resolution; Chromium's page clock is the same expression. */
export function clock(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * The UID (upper-case hex) carried by an InListPassiveTarget response frame
 * that lists a target; undefined for any other bytes (ACKs, empty polls,
 * other responses). Normal information frame, UM0701-02 §6.2.1.1 (p. 28):
 * 00 00 FF LEN LCS TFI PD… DCS 00, TFI D5 from the PN532; InListPassiveTarget
 * response (§7.3.5, p. 115): 4B NbTg, then for 106 kbps Type A
 * Tg SENS_RES(2) SEL_RES NFCIDLength NFCID1….
 */
export function targetUid(f: Uint8Array): string | undefined {
  if (f.length < 14 || f[0] !== 0x00 || f[1] !== 0x00 || f[2] !== 0xff) return undefined;
  if (f[5] !== 0xd5 || f[6] !== 0x4b || (f[7] ?? 0) < 1) return undefined;
  const n = f[12] ?? 0;
  if (f.length < 13 + n) return undefined;
  return Array.from(f.subarray(13, 13 + n), (b) => b.toString(16).toUpperCase().padStart(2, "0")).join("");
}

/** A PN532 simulator on a fresh pty pair that reports when it sends a card's target frame. */
export class TapReader {
  readonly sim = new Pn532Simulator();
  #pty: PtyPair | undefined;
  #link: SerialLink | undefined;
  #armed: { uid: string; resolve: (at: number) => void } | undefined;

  /** The path the reader under test opens. */
  get devicePath(): string {
    if (!this.#pty) throw new Error("TapReader is not started");
    return this.#pty.devicePath;
  }

  async start(): Promise<void> {
    this.#pty = await openPtyPair();
    const link = await openSerialPort(this.#pty.peerPath);
    this.#link = link;
    this.sim.start(this.#stamped(link));
  }

  async stop(): Promise<void> {
    this.sim.stop();
    this.#armed = undefined;
    await this.#link?.close();
    await this.#pty?.close();
    this.#link = this.#pty = undefined;
  }

  /** Resolves with the clock time of the first target frame carrying `uid` written after this call. */
  targetSent(uid: string): Promise<number> {
    return new Promise((resolve) => {
      this.#armed = { uid, resolve };
    });
  }

  #stamped(link: SerialLink): SerialLink {
    return {
      get path() {
        return link.path;
      },
      get isOpen() {
        return link.isOpen;
      },
      write: (bytes) => {
        // Stamped before the write is queued, so serialport's write path is inside the measurement.
        const at = clock();
        const armed = this.#armed;
        if (armed && targetUid(bytes) === armed.uid) {
          this.#armed = undefined;
          armed.resolve(at);
        }
        return link.write(bytes);
      },
      close: () => link.close(),
      onData: (listener) => link.onData(listener),
      onClose: (listener) => link.onClose(listener),
    };
  }
}
