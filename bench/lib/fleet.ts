/**
 * Simulated kiosks for the ingest benchmark: raw mqtt.js clients with their
 * own device credentials that publish pre-encoded `events` batches of valid
 * check-ins with gap-free seqs, QoS 1, keeping a bounded window of unacked
 * entries like the real device uplink (`device/src/uplink.ts`), and resending
 * from the last ack when no ack progress is seen for `ackTimeoutMs`.
 */
import { randomUUID } from "node:crypto";
import {
  AckSchema,
  CheckinBodySchema,
  CloudStatusSchema,
  type DeviceAddress,
  decode,
  deviceIdentity,
  type Entry,
  EntrySchema,
  EventBatchSchema,
  encode,
  topics,
} from "@paylane/protocol";
import mqtt, { type MqttClient } from "mqtt";

export interface FleetOptions {
  url: string;
  site: string;
  /** device id -> secret */
  secrets: ReadonlyMap<string, string>;
  eventsPerDevice: number;
  /** Entries 1..history of each device are already committed and acked; the run starts after them. */
  history: number;
  batchSize: number;
  window: number;
  ackTimeoutMs: number;
  /** Gives up (rejects) when no device's ack advanced for this long. */
  stallMs: number;
}

interface Batch {
  payload: Buffer;
  lastSeq: number;
  sentAt: number;
}

export interface FleetResult {
  /** ms from the first publish until every device saw `ack {upTo: last}`. */
  elapsedMs: number;
  /** publish -> covering ack, per batch (first publish of the batch), ms. */
  latencies: number[];
  published: number;
  resends: number;
  acksReceived: number;
}

/** One valid check-in entry, body checked against the real schema. */
export function checkinEntry(seq: number, memberId: string, at: Date): Entry {
  const body = CheckinBodySchema.parse({
    memberId,
    credential: { type: "card", uid: "04A2B3C4" },
    replicaVersion: 1,
    offline: false,
  });
  return { seq, id: randomUUID(), kind: "checkin", at: at.toISOString(), body };
}

class SimDevice {
  readonly address: DeviceAddress;
  readonly batches: Batch[] = [];
  /** The last seq this device publishes. */
  readonly total: number;
  client!: MqttClient;
  next = 0;
  ackedUpTo = 0;
  lastProgress = 0;
  published = 0;
  resends = 0;
  acks = 0;
  readonly latencies: number[] = [];
  #firstUnacked = 0;
  #done: () => void = () => {};
  readonly done: Promise<void>;

  constructor(
    address: DeviceAddress,
    readonly o: FleetOptions,
  ) {
    this.address = address;
    this.total = o.history + o.eventsPerDevice;
    this.ackedUpTo = o.history;
    const at = new Date();
    for (let first = o.history + 1; first <= this.total; first += o.batchSize) {
      const last = Math.min(this.total, first + o.batchSize - 1);
      const entries: Entry[] = [];
      // Checked against the envelope schema too (before timing): what we send is what a device sends.
      for (let seq = first; seq <= last; seq++)
        entries.push(EntrySchema.parse(checkinEntry(seq, `m-${seq % 1000}`, at)));
      const payload = encode(EventBatchSchema, { device: address.device, entries });
      this.batches.push({ payload, lastSeq: last, sentAt: 0 });
    }
    this.done = new Promise((resolve) => {
      this.#done = resolve;
    });
  }

  async connect(): Promise<void> {
    const a = this.address;
    const client = await mqtt.connectAsync(this.o.url, {
      clientId: deviceIdentity.clientId(a),
      username: deviceIdentity.username(a),
      password: this.o.secrets.get(a.device),
      protocolVersion: 4,
      clean: true,
      reconnectPeriod: 0,
    });
    (client.stream as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
    const ackTopic = topics.ack(a);
    // Like the real uplink, start only once the cloud's retained STATE says online: the bridge
    // announces it after its subscriptions are granted, so nothing is published into the void.
    let cloudOnline: () => void = () => {};
    const online = new Promise<void>((resolve) => {
      cloudOnline = resolve;
    });
    client.on("message", (topic, payload) => {
      if (topic === ackTopic) {
        const ack = decode(AckSchema, payload);
        if (ack.ok) this.#onAck(ack.value.upTo);
      } else if (topic === topics.cloudStatus) {
        const status = decode(CloudStatusSchema, payload);
        if (status.ok && status.value.state === "online") cloudOnline();
      }
    });
    this.client = client;
    const granted = await client.subscribeAsync([ackTopic, topics.cloudStatus], { qos: 1 });
    const refused = granted.find((g) => g.qos === 128);
    if (refused) throw new Error(`subscription to ${refused.topic} refused`);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      online,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${a.device}: the cloud's STATE never said online`)), 10_000);
      }),
    ]).finally(() => clearTimeout(timer));
  }

  start(): void {
    this.lastProgress = performance.now();
    this.#pump();
  }

  #pump(): void {
    const topic = topics.events(this.address);
    while (this.next < this.batches.length) {
      const b = this.batches[this.next]!;
      if (b.lastSeq - this.ackedUpTo > this.o.window) break;
      if (b.sentAt === 0) b.sentAt = performance.now();
      this.client.publish(topic, b.payload, { qos: 1 });
      this.published++;
      this.next++;
    }
  }

  #onAck(upTo: number): void {
    this.acks++;
    if (upTo <= this.ackedUpTo) return;
    const now = performance.now();
    this.ackedUpTo = upTo;
    this.lastProgress = now;
    while (this.#firstUnacked < this.batches.length && this.batches[this.#firstUnacked]!.lastSeq <= upTo) {
      this.latencies.push(now - this.batches[this.#firstUnacked]!.sentAt);
      this.#firstUnacked++;
    }
    if (this.ackedUpTo >= this.total) {
      this.#done();
      return;
    }
    this.#pump();
  }

  /** Like the device's ack timeout: resend everything after the last ack. */
  checkAckTimeout(now: number): void {
    if (this.ackedUpTo >= this.total || now - this.lastProgress < this.o.ackTimeoutMs) return;
    this.lastProgress = now;
    this.resends++;
    this.next = this.#firstUnacked;
    this.#pump();
  }

  async close(): Promise<void> {
    await this.client?.endAsync().catch(() => this.client.endAsync(true));
  }
}

export class Fleet {
  readonly devices: SimDevice[];

  constructor(readonly o: FleetOptions) {
    this.devices = [...o.secrets.keys()].map((device) => new SimDevice({ site: o.site, device }, o));
  }

  get acked(): number {
    return this.devices.reduce((n, d) => n + d.ackedUpTo - this.o.history, 0);
  }

  async connect(): Promise<void> {
    await Promise.all(this.devices.map((d) => d.connect()));
  }

  /** Publishes everything and resolves when every device is acked to its last seq. */
  async run(onTick?: (acked: number) => void): Promise<FleetResult> {
    const t0 = performance.now();
    for (const d of this.devices) d.start();
    let timer: NodeJS.Timeout | undefined;
    let lastAcked = 0;
    let lastAdvance = t0;
    const stalled = new Promise<never>((_, reject) => {
      timer = setInterval(() => {
        const now = performance.now();
        for (const d of this.devices) d.checkAckTimeout(now);
        const acked = this.acked;
        if (acked !== lastAcked) {
          lastAcked = acked;
          lastAdvance = now;
        } else if (now - lastAdvance > this.o.stallMs) {
          reject(new Error(`no ack progress for ${this.o.stallMs} ms (acked ${acked} entries)`));
        }
        onTick?.(acked);
      }, 1000);
    });
    try {
      await Promise.race([Promise.all(this.devices.map((d) => d.done)), stalled]);
    } finally {
      clearInterval(timer);
    }
    const elapsedMs = performance.now() - t0;
    return {
      elapsedMs,
      latencies: this.devices.flatMap((d) => d.latencies).sort((a, b) => a - b),
      published: this.devices.reduce((n, d) => n + d.published, 0),
      resends: this.devices.reduce((n, d) => n + d.resends, 0),
      acksReceived: this.devices.reduce((n, d) => n + d.acks, 0),
    };
  }

  async close(): Promise<void> {
    await Promise.all(this.devices.map((d) => d.close()));
  }
}
