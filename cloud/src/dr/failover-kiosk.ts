/**
 * A kiosk's uplink in miniature, for the failover drill: raw MQTT with the
 * device's own credentials, a journal of what it checked in and sold (seqs
 * gap-free from 1), and the uplink's rules: an entry is published when it is
 * journaled; the kiosk holds it until the cloud's `ack {upTo}` covers it; when
 * no ack progress is seen for `ackTimeoutMs` while something is unacked, or
 * the cloud asks (`cmd/replay-from`), everything after the last ack is
 * published again. An acked entry is never sent again: a real kiosk may have
 * compacted it, so an acked entry the database then lacks is lost for good —
 * what the drill counts as RPO.
 */
import { randomUUID } from "node:crypto";
import { type DeviceAddress, deviceIdentity, type Entry, REPLAY_FROM, type Timers, topics } from "@paylane/protocol";
import mqtt, { type MqttClient } from "mqtt";

/** Entries per `events` message on a resend, as a kiosk's default batch. */
const RESEND_BATCH = 100;

export interface DrillKioskOptions {
  address: DeviceAddress;
  secret: string;
  mqttUrl: string;
  ackTimeoutMs: number;
  /** Members who check in and pay (the site's seeded members). */
  members: readonly string[];
  currency: string;
  timers: Timers;
  /** Called on every ack that moved this kiosk's mark (and on conflicts). */
  onAck?: (kiosk: DrillKiosk) => void;
}

export class DrillKiosk {
  readonly #o: DrillKioskOptions;
  /** The journal: entry seq `n` is at index `n - 1`. */
  readonly entries: Entry[] = [];
  /** The highest `ack {upTo}` seen (never beyond the journal). */
  ackedUpTo = 0;
  /** `ack {upTo}` beyond the journal, or naming conflicts: both would be cloud bugs. */
  readonly anomalies: string[] = [];
  resends = 0;
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
      else if (topic === topics.cmd(a, REPLAY_FROM)) this.#resend();
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

  /** A member taps: a check-in, or (every `payEvery`-th time) a purchase paid from the wallet offline. */
  journal(kind: "checkin" | "payment"): Entry {
    const seq = this.entries.length + 1;
    const members = this.#o.members;
    const memberId = members[seq % members.length]!;
    const body =
      kind === "checkin"
        ? { memberId, credential: { type: "card", uid: "04A2B3C4" }, replicaVersion: 1, offline: false }
        : {
            key: randomUUID(),
            memberId,
            amount: 150,
            currency: this.#o.currency,
            itemId: "water",
            authorization: "offline",
            walletVersion: 0,
          };
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

  /** Everything after the last ack, again, in batches. */
  #resend(): void {
    if (this.backlog === 0) return;
    this.resends++;
    this.#lastProgress = performance.now();
    for (let from = this.ackedUpTo; from < this.entries.length; from += RESEND_BATCH)
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
