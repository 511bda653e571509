/**
 * A second device for the model-based delivery test: raw MQTT with an
 * enrolled device's own credentials and an in-memory journal of what it
 * published. It behaves like a kiosk's uplink in miniature, so the cloud sees
 * a well-behaved device: it resends everything after its last ack when the
 * cloud asks (`cmd/replay-from`), when the cloud comes (back) online, and when
 * no ack progress is seen for `ackTimeoutMs`. On top of that a test can
 * re-publish any earlier range on purpose, to deliver duplicates.
 *
 * Its connections (`TestSite.rawDevice()`) have no automatic reconnect:
 * after a broker restart it connects again on its next publish (or resend),
 * like a device that only dials out when it has something to say.
 */
import { AckSchema, CloudStatusSchema, decode, type Entry, REPLAY_FROM, topics } from "@paylane/protocol";
import type { MqttClient } from "mqtt";
import { batch, checkinEntry } from "./probe.ts";
import type { TestSite } from "./site.ts";

/** Entries per `events` message, as a kiosk's default batch (the schema allows up to 1000). */
const EVENT_BATCH_MAX = 100;

export interface ModelProbeOptions {
  site: TestSite;
  /** An enrolled device with no daemon (TestSite `probes`). */
  device: string;
  /** Member ids are `${memberPrefix}-${seq}`: distinct from every other device's. */
  memberPrefix: string;
  ackTimeoutMs: number;
}

export interface ModelProbeStats {
  /** `events` messages the broker took (PUBACKed); not that the cloud has them. */
  messages: number;
  /** Resends after the last ack, by reason. */
  resends: Record<"replay-from" | "cloud online" | "ack timeout" | "asked", number>;
  connections: number;
}

/** A range of seqs, both ends included. */
export interface SeqRange {
  from: number;
  to: number;
}

export class ModelProbe {
  readonly #o: ModelProbeOptions;
  /** The probe's journal: entry seq `n` is at index `n - 1`. */
  readonly entries: Entry[] = [];
  /** The ranges first published by `publishNew`, in order. */
  readonly batches: SeqRange[] = [];
  /** The highest `ack {upTo}` received; an ack beyond `lastSeq` is kept as is, for the test to see. */
  ackedUpTo = 0;
  readonly stats: ModelProbeStats = {
    messages: 0,
    resends: { "replay-from": 0, "cloud online": 0, "ack timeout": 0, asked: 0 },
    connections: 0,
  };
  #client: MqttClient | undefined;
  #connecting: Promise<MqttClient> | undefined;
  /** Every connection not yet closed, so `stop()` ends them all. */
  readonly #clients = new Set<MqttClient>();
  #ackTimer: NodeJS.Timeout | undefined;
  #stopped = true;

  constructor(o: ModelProbeOptions) {
    this.#o = o;
  }

  get lastSeq(): number {
    return this.entries.length;
  }

  async start(): Promise<void> {
    this.#stopped = false;
    await this.#connected();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
    this.#client = undefined;
    await Promise.all([...this.#clients].map((c) => c.endAsync(true).catch(() => {})));
    this.#clients.clear();
  }

  /** Journals `n` new check-ins and publishes them as one batch. */
  async publishNew(n: number, at: Date): Promise<SeqRange> {
    if (!Number.isInteger(n) || n < 1 || n > EVENT_BATCH_MAX) {
      throw new Error(`publishNew(n): expected an integer 1..${EVENT_BATCH_MAX}, got ${n}`);
    }
    const from = this.lastSeq + 1;
    for (let seq = from; seq < from + n; seq++) {
      this.entries.push(checkinEntry(seq, `${this.#o.memberPrefix}-${seq}`, at));
    }
    const range = { from, to: this.lastSeq };
    this.batches.push(range);
    await this.publish(range);
    return range;
  }

  /**
   * Publishes the journaled entries `from..to` (again), in messages of at most
   * EVENT_BATCH_MAX. When no connection can be made (the broker is
   * restarting) the entries stay in the journal for a later resend, as on a
   * device; the result says whether they went out.
   */
  async publish({ from, to }: SeqRange, dup = false): Promise<boolean> {
    if (from < 1 || to > this.lastSeq || from > to) {
      throw new Error(`publish: range ${from}..${to} is outside the journal 1..${this.lastSeq}`);
    }
    const client = await this.#connected().catch(() => undefined);
    if (!client) {
      this.#armAckTimer(false);
      return false;
    }
    const a = this.#o.site.address(this.#o.device);
    for (let start = from; start <= to; start += EVENT_BATCH_MAX) {
      const entries = this.entries.slice(start - 1, Math.min(to, start + EVENT_BATCH_MAX - 1));
      if (await deliver(client, topics.events(a), batch(this.#o.device, entries), dup)) this.stats.messages++;
    }
    this.#armAckTimer(false);
    return true;
  }

  /** Resends everything after the last ack, as a device does. */
  async resendUnacked(reason: keyof ModelProbeStats["resends"] = "asked"): Promise<void> {
    if (this.#stopped || this.ackedUpTo >= this.lastSeq) return;
    this.stats.resends[reason]++;
    await this.publish({ from: this.ackedUpTo + 1, to: this.lastSeq });
  }

  /** The live connection, or a new one subscribed to the device's ack, replay-from and the cloud's STATE. */
  async #connected(): Promise<MqttClient> {
    if (this.#client?.connected) return this.#client;
    this.#connecting ??= this.#connect().finally(() => {
      this.#connecting = undefined;
    });
    return this.#connecting;
  }

  async #connect(): Promise<MqttClient> {
    const { site, device } = this.#o;
    const a = site.address(device);
    const client = await site.rawDevice(device);
    this.#clients.add(client);
    client.on("close", () => this.#clients.delete(client));
    // socket errors end in `close`, which is what the probe acts on
    client.on("error", () => {});
    if (this.#stopped) {
      await client.endAsync(true);
      throw new Error(`probe ${device} stopped while connecting`);
    }
    this.stats.connections++;
    // each connection learns the cloud's STATE afresh from the retained message
    const state = { cloudOnline: false };
    client.on("message", (topic, payload) => this.#onMessage(state, topic, payload));
    await client.subscribeAsync([topics.ack(a), topics.cmd(a, REPLAY_FROM), topics.cloudStatus], { qos: 1 });
    this.#client = client;
    return client;
  }

  #onMessage(state: { cloudOnline: boolean }, topic: string, payload: Buffer): void {
    if (this.#stopped) return;
    const a = this.#o.site.address(this.#o.device);
    if (topic === topics.ack(a)) {
      const ack = decode(AckSchema, payload);
      if (!ack.ok || ack.value.upTo <= this.ackedUpTo) return;
      this.ackedUpTo = ack.value.upTo;
      this.#armAckTimer(true);
      this.#o.site.signal.notify();
    } else if (topic === topics.cmd(a, REPLAY_FROM)) {
      void this.resendUnacked("replay-from");
    } else if (topic === topics.cloudStatus) {
      const status = decode(CloudStatusSchema, payload);
      if (!status.ok) return;
      const wasOnline = state.cloudOnline;
      state.cloudOnline = status.value.state === "online";
      if (state.cloudOnline && !wasOnline) void this.resendUnacked("cloud online");
    }
  }

  /** (Re)arms the ack timer while entries are unacked; `progress` restarts it. */
  #armAckTimer(progress: boolean): void {
    if (progress || this.ackedUpTo >= this.lastSeq) {
      clearTimeout(this.#ackTimer);
      this.#ackTimer = undefined;
    }
    if (this.#stopped || this.#ackTimer !== undefined || this.ackedUpTo >= this.lastSeq) return;
    this.#ackTimer = setTimeout(() => {
      this.#ackTimer = undefined;
      void this.resendUnacked("ack timeout");
    }, this.#o.ackTimeoutMs);
  }
}

/**
 * One QoS 1 publish: true at its PUBACK, false when the connection closes
 * first (the message is then lost, as on any dead link). Never waits on a
 * client that is already down: it has no automatic reconnect.
 */
function deliver(client: MqttClient, topic: string, payload: string, dup: boolean): Promise<boolean> {
  if (!client.connected) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onClose = () => resolve(false);
    client.once("close", onClose);
    client.publish(topic, payload, { qos: 1, dup }, (err) => {
      client.off("close", onClose);
      resolve(!err);
    });
  });
}
