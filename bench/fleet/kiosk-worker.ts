/**
 * Simulated kiosks for the fleet benchmark, in a process of their own (the
 * parent forks a few so the load generator is not the bottleneck). Each is a
 * bare mqtt.js client with its own device credentials, from its own loopback
 * address (127.0.0.x, as kiosks come from their own addresses), that does
 * what a kiosk does on the wire: a retained birth with a session counter and
 * a Will carrying it, telemetry every `telemetryMs` (QoS 0, as the uplink),
 * and one check-in every `checkinMs` (an `events` batch of one valid entry,
 * QoS 1), timing publish → the `ack` that covers its seq.
 */
import { connect as tcpConnect } from "node:net";
import {
  AckSchema,
  type DeviceAddress,
  decode,
  deviceIdentity,
  EventBatchSchema,
  encode,
  PROTOCOL_VERSION,
  StatusSchema,
  TelemetrySchema,
  topics,
} from "@paylane/protocol";
import { MqttClient } from "mqtt";
import { reportFailures } from "../lib/child.ts";
import { checkinEntry } from "../lib/fleet.ts";

export interface KioskSpec {
  device: string;
  secret: string;
  localAddress: string;
  /** The gateway port this kiosk connects to (a TCP load balancer's pick); default: the message's port. */
  port?: number;
}

export type WorkerIn =
  | { type: "connect"; host: string; port: number; site: string; kiosks: KioskSpec[] }
  | { type: "load"; telemetryMs: number; checkinMs: number }
  | { type: "pause" }
  | { type: "mark" }
  | { type: "collect" }
  | { type: "stop" };

export interface WorkerStats {
  /** publish → covering ack of each check-in published since the last mark and acked since the last collect, ms. */
  latencies: number[];
  /** Check-ins published / telemetry reports published since the last collect. */
  checkins: number;
  telemetry: number;
  /** Check-ins still unacked now, and of them older than 1 s. */
  pending: number;
  pendingOver1s: number;
  connected: number;
  total: number;
  /** device -> session number of its current (or last) connection. */
  sessions: Record<string, number>;
}

export type WorkerOut =
  | { type: "connected"; connected: number; failed: string[] }
  | { type: "stats"; stats: WorkerStats }
  | { type: "error"; message: string }
  | { type: "exit" };

const bootedAt = new Date().toISOString();

class Kiosk {
  readonly address: DeviceAddress;
  readonly client: MqttClient;
  session = 1;
  seq = 0;
  connected = false;
  /** seq -> performance.now() of its publish */
  readonly pending = new Map<number, number>();
  #timers: NodeJS.Timeout[] = [];

  constructor(
    site: string,
    readonly spec: KioskSpec,
    host: string,
    port: number,
    readonly out: Stats,
  ) {
    this.address = { site, device: spec.device };
    const status = topics.status(this.address);
    this.client = new MqttClient(() => tcpConnect({ host, port, localAddress: spec.localAddress }) as never, {
      clientId: deviceIdentity.clientId(this.address),
      username: deviceIdentity.username(this.address),
      password: spec.secret,
      protocolVersion: 4,
      clean: true,
      keepalive: 30,
      reconnectPeriod: 1000,
      // A CONNECT waits its turn behind other kiosks' scrypt checks in a storm: don't give up and start over.
      connectTimeout: 600_000,
      will: { topic: status, payload: this.#will(), qos: 1, retain: true },
    });
    this.client.on("error", () => {}); // refused or reset: reconnectPeriod tries again
    this.client.on("connect", () => {
      this.connected = true;
      this.client.publish(
        status,
        encode(StatusSchema, {
          state: "online",
          version: "bench",
          bootedAt,
          protocol: PROTOCOL_VERSION,
          session: this.session,
        }),
        { qos: 1, retain: true },
      );
      // A check-in lost with the broker is sent again, as the uplink resends after an ack timeout.
      for (const seq of this.pending.keys()) this.#publishCheckin(seq);
    });
    this.client.on("close", () => {
      if (!this.connected) return;
      this.connected = false;
      // The next connection is a new session; its Will says so.
      this.session++;
      this.client.options.will = { topic: status, payload: this.#will(), qos: 1, retain: true };
    });
    const ack = topics.ack(this.address);
    this.client.subscribe(ack, { qos: 1 });
    this.client.on("message", (_topic, payload) => {
      const a = decode(AckSchema, payload);
      if (!a.ok) return;
      const now = performance.now();
      for (const [seq, sentAt] of this.pending) {
        if (seq > a.value.upTo) continue;
        if (sentAt >= window.since) this.out.latencies.push(now - sentAt);
        this.pending.delete(seq);
      }
    });
  }

  #will(): Buffer {
    return encode(StatusSchema, { state: "offline", session: this.session });
  }

  waitConnected(): Promise<boolean> {
    if (this.connected) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), 300_000);
      this.client.once("connect", () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  /** Telemetry and check-ins on their periods, each kiosk at its own phase so the load is spread. */
  startLoad(telemetryMs: number, checkinMs: number): void {
    this.stopLoad();
    const every = (ms: number, fn: () => void) => {
      const first = setTimeout(() => {
        fn();
        this.#timers.push(setInterval(fn, ms));
      }, Math.random() * ms);
      this.#timers.push(first);
    };
    every(telemetryMs, () => this.#telemetry());
    every(checkinMs, () => this.#checkin());
  }

  stopLoad(): void {
    for (const t of this.#timers) clearTimeout(t);
    this.#timers = [];
  }

  #telemetry(): void {
    if (!this.connected) return;
    const report = encode(TelemetrySchema, {
      at: new Date().toISOString(),
      backlog: this.pending.size,
      ackedUpTo: this.seq - this.pending.size,
      lastSeq: this.seq,
      replicaVersion: 1,
      reader: "ok",
      uptimeSeconds: Math.round(process.uptime()),
      oldestUnackedAgeSeconds: 0,
      storage: "ok",
      cloudLink: "online",
      mode: "in-service",
      memory: { rssBytes: 80_000_000, freeBytes: 500_000_000, totalBytes: 1_000_000_000 },
      disk: { freeBytes: 10_000_000_000, totalBytes: 16_000_000_000 },
      cpuTemperatureC: 48.5,
    });
    this.client.publish(topics.telemetry(this.address), report, { qos: 0 });
    this.out.telemetry++;
  }

  #checkin(): void {
    if (!this.connected) return;
    this.seq++;
    this.pending.set(this.seq, performance.now());
    this.#publishCheckin(this.seq);
    this.out.checkins++;
  }

  #publishCheckin(seq: number): void {
    const entry = checkinEntry(seq, `m-${seq % 10}`, new Date());
    const batch = encode(EventBatchSchema, { device: this.address.device, entries: [entry] });
    this.client.publish(topics.events(this.address), batch, { qos: 1 });
  }

  async close(): Promise<void> {
    this.stopLoad();
    await this.client.endAsync(true).catch(() => {});
  }
}

interface Stats {
  latencies: number[];
  checkins: number;
  telemetry: number;
}

reportFailures();
const send = (m: WorkerOut) => process.send?.(m);
const kiosks: Kiosk[] = [];
/** Only check-ins published since the last `mark` are timed. */
const window = { since: 0 };
const stats: Stats = { latencies: [], checkins: 0, telemetry: 0 };
let load: { telemetryMs: number; checkinMs: number } | undefined;

process.on("message", async (m: WorkerIn) => {
  if (m.type === "connect") {
    const fresh = m.kiosks.map((k) => new Kiosk(m.site, k, m.host, k.port ?? m.port, stats));
    kiosks.push(...fresh);
    const ok = await Promise.all(fresh.map((k) => k.waitConnected()));
    if (load) for (const k of fresh) k.startLoad(load.telemetryMs, load.checkinMs);
    send({
      type: "connected",
      connected: ok.filter(Boolean).length,
      failed: fresh.filter((_, i) => !ok[i]).map((k) => k.spec.device),
    });
  } else if (m.type === "load") {
    load = { telemetryMs: m.telemetryMs, checkinMs: m.checkinMs };
    for (const k of kiosks) k.startLoad(m.telemetryMs, m.checkinMs);
  } else if (m.type === "mark") {
    window.since = performance.now();
  } else if (m.type === "pause") {
    load = undefined;
    for (const k of kiosks) k.stopLoad();
  } else if (m.type === "collect") {
    const now = performance.now();
    let pending = 0;
    let pendingOver1s = 0;
    const sessions: Record<string, number> = {};
    for (const k of kiosks) {
      sessions[k.address.device] = k.session;
      for (const sentAt of k.pending.values()) {
        pending++;
        if (now - sentAt > 1000) pendingOver1s++;
      }
    }
    send({
      type: "stats",
      stats: {
        ...stats,
        pending,
        pendingOver1s,
        connected: kiosks.filter((k) => k.connected).length,
        total: kiosks.length,
        sessions,
      },
    });
    // Each kiosk holds the same object: reset it in place.
    stats.latencies = [];
    stats.checkins = 0;
    stats.telemetry = 0;
  } else if (m.type === "stop") {
    await Promise.all(kiosks.map((k) => k.close()));
    process.disconnect?.();
  }
});
