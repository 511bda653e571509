/**
 * A DR drill's kiosk made of the real kiosk's parts: device/src's `Uplink`
 * (MQTT, birth and Will, batches, the ack window, ack-timeout resends and
 * `cmd/replay-from`, including the replay of acked entries a cloud lost) over
 * device/src's SQLite `Journal` (synchronous=FULL, one file per kiosk). Only
 * the taps are the drill's: entries appended to the journal as the check-in
 * and payment desks would. What the uplink logs is read for the drill's
 * figures: its resends, the replays asked from below its ack, and its errors
 * (anomalies). Time is injected (`timers`, `now`): a test with fake timers
 * sees no ack-timeout resend, so whatever heals a loss is the cloud's replay.
 */
import { join } from "node:path";
import { type Entry, realTimers, type Timers } from "@paylane/protocol";
import pino, { type Logger } from "pino";
import { type FailoverKiosk, type KioskFactory, type KioskSpec, tapBody } from "../../cloud/src/dr/failover-kiosk.ts";
import { Journal } from "../../device/src/journal.ts";
import { Uplink } from "../../device/src/uplink.ts";

export interface UplinkKioskOptions extends KioskSpec {
  /** Folder for the journal's file (`<device>.db`). */
  dir: string;
  timers: Timers;
  now: () => Date;
  /** Any change of the link (connected, the cloud online): for waits on `online`. */
  onChange?: () => void;
  /** Each line the uplink logs, parsed (tests keep them to show on a failure). */
  onLog?: (line: { level: number; msg: string; [k: string]: unknown }) => void;
}

/** The failover drill's `startKiosk` for real kiosks on real time (their ack timeouts and reconnects fire). */
export const realUplinkKiosk: KioskFactory = (spec) => {
  if (!spec.dir) throw new Error("a real kiosk needs a folder for its journal (spec.dir)");
  return new UplinkKiosk({ ...spec, dir: spec.dir, timers: realTimers, now: () => new Date() });
};

/** What the report calls these kiosks. */
export const REAL_UPLINK_KIOSK = "device/src Uplink + SQLite Journal (test/dr/uplink-kiosk.ts)";

/** pino's error level: what the uplink logs at it is a fault for ops. */
const ERROR = 50;

export class UplinkKiosk implements FailoverKiosk {
  readonly #o: UplinkKioskOptions;
  #journal: Journal | undefined;
  #uplink: Uplink | undefined;
  #taps = 0;
  ackedUpTo = 0;
  lastSeq = 0;
  resends = 0;
  replaysBelowAck = 0;
  readonly anomalies: string[] = [];
  /** The `from` of each `cmd/replay-from` the cloud sent, with this kiosk's ack then. */
  readonly replays: Array<{ from: number; ackedUpTo: number }> = [];

  constructor(o: UplinkKioskOptions) {
    this.#o = o;
  }

  get address() {
    return this.#o.address;
  }

  get backlog(): number {
    return this.lastSeq - this.ackedUpTo;
  }

  /** Broker connected, the cloud's STATE online and heard from. */
  get online(): boolean {
    return this.#uplink?.online ?? false;
  }

  get journalFile(): string {
    return join(this.#o.dir, `${this.#o.address.device}.db`);
  }

  async start(): Promise<void> {
    const journal = await Journal.open(this.journalFile);
    this.#journal = journal;
    const stats = await journal.stats();
    this.ackedUpTo = stats.ackedUpTo;
    this.lastSeq = stats.lastSeq;
    this.#uplink = new Uplink({
      address: this.#o.address,
      secret: this.#o.secret,
      url: this.#o.mqttUrl,
      journal,
      version: "drill",
      bootedAt: this.#o.now(),
      logger: this.#logger(),
      timers: this.#o.timers,
      now: this.#o.now,
      ackTimeoutMs: this.#o.ackTimeoutMs,
      onAcked: (upTo) => {
        this.ackedUpTo = Math.max(this.ackedUpTo, upTo);
        this.#o.onAck?.(this);
      },
      onConflicts: (seqs) => {
        this.anomalies.push(`conflicts at ${seqs.join(", ")}`);
        this.#o.onAck?.(this);
      },
      ...(this.#o.onChange ? { onChange: this.#o.onChange } : {}),
    });
    await this.#uplink.start();
  }

  async stop(): Promise<void> {
    await this.#uplink?.stop();
    this.#uplink = undefined;
    await this.#journal?.close();
    this.#journal = undefined;
  }

  async tap(kind: "checkin" | "payment"): Promise<Entry> {
    const journal = this.#journal;
    if (!journal) throw new Error(`kiosk ${this.#o.address.device} is not started`);
    const body = tapBody(kind, ++this.#taps, this.#o.members, this.#o.currency);
    // Durable first; the journal's `appended` event then has the uplink send it.
    const entry = await journal.append(kind, body, this.#o.now());
    this.lastSeq = Math.max(this.lastSeq, entry.seq);
    return entry;
  }

  async history(): Promise<Entry[]> {
    const journal = this.#journal;
    if (!journal) throw new Error(`kiosk ${this.#o.address.device} is not started`);
    const out: Entry[] = [];
    for (let after = 0; ; ) {
      const batch = await journal.entriesAfter(after, 1000);
      if (batch.length === 0) return out;
      out.push(...batch);
      after = batch[batch.length - 1]!.seq;
    }
  }

  /** Removes acked entries journaled before `before`, as the daemon's retention does. */
  async compact(before: Date): Promise<number> {
    if (!this.#journal) throw new Error(`kiosk ${this.#o.address.device} is not started`);
    return this.#journal.compact(before);
  }

  /** The uplink's log, read for figures: no parsing of anything but its own JSON lines. */
  #logger(): Logger {
    return pino(
      { level: "info" },
      {
        write: (text: string) => {
          const line = JSON.parse(text) as { level: number; msg: string; from?: number; ackedUpTo?: number };
          if (line.msg === "resending unacked") this.resends++;
          else if (line.msg === "cloud asked for a replay" && typeof line.from === "number") {
            const ackedUpTo = typeof line.ackedUpTo === "number" ? line.ackedUpTo : 0;
            this.replays.push({ from: line.from, ackedUpTo });
            if (line.from <= ackedUpTo) {
              this.replaysBelowAck++;
              this.resends++;
            }
          } else if (line.level >= ERROR) this.anomalies.push(line.msg);
          this.#o.onLog?.(line);
        },
      },
    );
  }
}
