/**
 * The kiosks of the DR drills. `FailoverKiosk` is what a drill needs of one:
 * tap (journal an entry, which the uplink sends), its ack mark and backlog,
 * and afterwards every entry it journaled, to prove against the database.
 * Two implementations: the real kiosk's `Uplink` + SQLite `Journal` from
 * device/ (test/dr/uplink-kiosk.ts: the cloud package does not depend on the
 * device's, so tests and `npm run drill` hand it in), and `DrillKiosk` below,
 * the uplink in miniature, the default.
 *
 * `DrillKiosk`: raw MQTT with the device's own credentials, a journal in
 * memory (seqs gap-free from 1, never compacted), and the uplink's rules: an
 * entry is published when it is journaled; the kiosk holds it until the
 * cloud's `ack {upTo}` covers it; when no ack progress is seen for
 * `ackTimeoutMs` while something is unacked, everything after the last ack is
 * published again. On `cmd/replay-from {from}` it does what device/src/uplink.ts
 * `replayFrom` does: from past its ack, a resend from the ack; from at or
 * below its ack (a cloud restored to an earlier point, or failed over to an
 * asynchronous replica, lost entries it had acked), the acked entries from
 * `from` again, then the unacked ones, and a `cmd-result` saying from where.
 */
import { randomUUID } from "node:crypto";
import {
  type CommandResult,
  CommandResultSchema,
  CommandSchema,
  type DeviceAddress,
  decode,
  deviceIdentity,
  type Entry,
  encode,
  REPLAY_FROM,
  ReplayFromArgsSchema,
  type Timers,
  topics,
  validate,
} from "@paylane/protocol";
import mqtt, { type MqttClient } from "mqtt";

/** Entries per `events` message on a resend, as a kiosk's default batch. */
const RESEND_BATCH = 100;

/** What a drill asks of a kiosk, whichever implementation. */
export interface FailoverKiosk {
  readonly address: DeviceAddress;
  /** The highest `ack {upTo}` recorded (never beyond the journal). */
  readonly ackedUpTo: number;
  readonly lastSeq: number;
  readonly backlog: number;
  /** How often it sent entries again: ack timeouts, the cloud coming back, replays. */
  readonly resends: number;
  /** Replays the cloud asked for from at or below this kiosk's ack: it had lost entries it acked. */
  readonly replaysBelowAck: number;
  /** `ack {upTo}` beyond the journal, conflicts, entries compacted before a replay: cloud or kiosk faults. */
  readonly anomalies: string[];
  start(): Promise<void>;
  stop(): Promise<void>;
  /** A member taps: a check-in, or a purchase paid from the wallet offline. Resolves once journaled. */
  tap(kind: "checkin" | "payment"): Promise<Entry>;
  /** Every entry journaled, seq order (the drill's proof reads ids and payment keys from it). */
  history(): Promise<Entry[]>;
}

/** How a drill describes a kiosk to the factory that makes one. */
export interface KioskSpec {
  address: DeviceAddress;
  secret: string;
  mqttUrl: string;
  ackTimeoutMs: number;
  /** Members who check in and pay (the site's seeded members). */
  members: readonly string[];
  currency: string;
  /** A folder of the drill's the kiosk may keep files in (its journal); the miniature keeps none. */
  dir?: string;
  /** Called on every ack that moved this kiosk's mark (and on conflicts). */
  onAck?: (kiosk: FailoverKiosk) => void;
}

export type KioskFactory = (spec: KioskSpec) => FailoverKiosk;

/** The body of the `n`-th tap: a check-in, or an offline wallet payment of 1.50 with a fresh idempotency key. */
export function tapBody(
  kind: "checkin" | "payment",
  n: number,
  members: readonly string[],
  currency: string,
): Record<string, unknown> {
  const memberId = members[n % members.length]!;
  return kind === "checkin"
    ? { memberId, credential: { type: "card", uid: "04A2B3C4" }, replicaVersion: 1, offline: false }
    : {
        key: randomUUID(),
        memberId,
        amount: 150,
        currency,
        itemId: "water",
        authorization: "offline",
        walletVersion: 0,
      };
}

export interface DrillKioskOptions extends KioskSpec {
  timers: Timers;
}

export class DrillKiosk implements FailoverKiosk {
  readonly #o: DrillKioskOptions;
  /** The journal: entry seq `n` is at index `n - 1`. */
  readonly entries: Entry[] = [];
  /** The highest `ack {upTo}` seen (never beyond the journal). */
  ackedUpTo = 0;
  /** `ack {upTo}` beyond the journal, or naming conflicts: both would be cloud bugs. */
  readonly anomalies: string[] = [];
  resends = 0;
  replaysBelowAck = 0;
  #client: MqttClient | undefined;
  #lastProgress = 0;
  #ackTimer: unknown;

  constructor(o: DrillKioskOptions) {
    this.#o = o;
  }

  get address(): DeviceAddress {
    return this.#o.address;
  }

  get lastSeq(): number {
    return this.entries.length;
  }

  get backlog(): number {
    return this.entries.length - this.ackedUpTo;
  }

  async start(): Promise<void> {
    const a = this.#o.address;
    const client = await mqtt.connectAsync(this.#o.mqttUrl, {
      clientId: deviceIdentity.clientId(a),
      username: deviceIdentity.username(a),
      password: this.#o.secret,
      protocolVersion: 4,
      reconnectPeriod: 500,
    });
    this.#client = client;
    client.on("message", (topic, payload) => {
      if (topic === topics.ack(a)) this.#onAck(payload);
      else if (topic === topics.cmd(a, REPLAY_FROM)) this.#onReplayFrom(payload);
    });
    for (const topic of [topics.ack(a), topics.cmd(a, REPLAY_FROM)]) {
      const granted = await client.subscribeAsync(topic, { qos: 1 });
      if (granted[0]?.qos === 128) throw new Error(`subscription to ${topic} refused`);
    }
    this.#lastProgress = performance.now();
    this.#armAckTimer();
  }

  async stop(): Promise<void> {
    this.#o.timers.clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
    await this.#client?.endAsync(true).catch(() => {});
    this.#client = undefined;
  }

  async tap(kind: "checkin" | "payment"): Promise<Entry> {
    return this.journal(kind);
  }

  async history(): Promise<Entry[]> {
    return [...this.entries];
  }

  /** A member taps: a check-in, or (every `payEvery`-th time) a purchase paid from the wallet offline. */
  journal(kind: "checkin" | "payment"): Entry {
    const seq = this.entries.length + 1;
    const body = tapBody(kind, seq, this.#o.members, this.#o.currency);
    const entry: Entry = { seq, id: randomUUID(), kind, at: new Date().toISOString(), body };
    if (this.backlog === 0) this.#lastProgress = performance.now();
    this.entries.push(entry);
    this.#publish([entry]);
    return entry;
  }

  /** The birth a kiosk publishes on connecting (retained): the cloud's presence of it. */
  announce(bootedAt: Date, session: number): void {
    const a = this.#o.address;
    const birth = { state: "online", version: "drill", bootedAt: bootedAt.toISOString(), protocol: 1, session };
    this.#client?.publish(topics.status(a), JSON.stringify(birth), { qos: 1, retain: true });
  }

  /** One telemetry report, as a kiosk sends it periodically: its backlog and ack mark, healthy hardware. */
  reportTelemetry(at: Date, uptimeSeconds: number): void {
    const a = this.#o.address;
    const report = {
      at: at.toISOString(),
      backlog: this.backlog,
      ackedUpTo: this.ackedUpTo,
      lastSeq: this.lastSeq,
      replicaVersion: 1,
      reader: "ok",
      uptimeSeconds,
      printer: { state: "ok", paper: "ok" },
    };
    this.#client?.publish(topics.telemetry(a), JSON.stringify(report), { qos: 0 });
  }

  #onAck(payload: Buffer): void {
    let ack: { upTo?: unknown; conflicts?: unknown };
    try {
      ack = JSON.parse(payload.toString()) as typeof ack;
    } catch {
      this.anomalies.push(`unreadable ack ${payload.toString().slice(0, 80)}`);
      return;
    }
    const upTo = typeof ack.upTo === "number" ? ack.upTo : -1;
    if (upTo > this.entries.length) this.anomalies.push(`ack ${upTo} beyond the journal's ${this.entries.length}`);
    if (Array.isArray(ack.conflicts) && ack.conflicts.length > 0)
      this.anomalies.push(`conflicts at ${ack.conflicts.join(", ")}`);
    const mark = Math.min(upTo, this.entries.length);
    if (mark > this.ackedUpTo) {
      this.ackedUpTo = mark;
      this.#lastProgress = performance.now();
    }
    this.#o.onAck?.(this);
  }

  /**
   * `cmd/replay-from {from}`: the journal from `from` when that is at or below
   * the ack (the cloud lost acked entries), else from the ack; answered on
   * `cmd-result` as the kiosk does (`{ resendingFrom }`).
   */
  #onReplayFrom(payload: Buffer): void {
    const command = decode(CommandSchema, payload);
    if (!command.ok) {
      this.anomalies.push(`malformed replay-from: ${command.error}`);
      return;
    }
    const args = validate(ReplayFromArgsSchema, command.value.args, "args");
    const at = new Date().toISOString();
    const { id } = command.value;
    if (!args.ok) {
      this.#answer({ id, command: REPLAY_FROM, status: "failed", reason: args.error, at });
      return;
    }
    const { from } = args.value;
    const resendingFrom = Math.min(from, this.ackedUpTo + 1);
    if (from <= this.ackedUpTo) this.replaysBelowAck++;
    this.#resend(resendingFrom);
    this.#answer({ id, command: REPLAY_FROM, status: "done", result: { resendingFrom }, at });
  }

  #answer(result: CommandResult): void {
    this.#client?.publish(topics.cmdResult(this.#o.address), encode(CommandResultSchema, result), { qos: 1 });
  }

  /** Everything from seq `start` (default: after the last ack), again, in batches. */
  #resend(start = this.ackedUpTo + 1): void {
    if (start > this.entries.length) return;
    this.resends++;
    this.#lastProgress = performance.now();
    for (let from = start - 1; from < this.entries.length; from += RESEND_BATCH)
      this.#publish(this.entries.slice(from, Math.min(from + RESEND_BATCH, this.entries.length)));
  }

  #publish(entries: Entry[]): void {
    const a = this.#o.address;
    this.#client?.publish(topics.events(a), JSON.stringify({ device: a.device, entries }), { qos: 1 }, () => {
      // A publish lost with the connection is resent by the ack timer.
    });
  }

  /** The uplink's ack timer: checks every quarter of the timeout, resends when no progress came for a whole one. */
  #armAckTimer(): void {
    const step = Math.max(10, Math.floor(this.#o.ackTimeoutMs / 4));
    this.#ackTimer = this.#o.timers.setTimeout(() => {
      if (this.backlog > 0 && performance.now() - this.#lastProgress >= this.#o.ackTimeoutMs) this.#resend();
      if (this.#client) this.#armAckTimer();
    }, step);
  }
}
