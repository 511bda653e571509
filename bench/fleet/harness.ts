/**
 * The fleet benchmark's site: gateways (gateway/src/main.ts, aedes) and cloud
 * nodes (cloud/src/main.ts) each in its own process, on real Postgres (a
 * schema of its own, dropped at close) and Redis (a key prefix of its own),
 * and simulated kiosks in a few worker processes (kiosk-worker.ts). One of
 * each by default; with several, the gateways share sessions and retained
 * messages through Redis (GATEWAY_REDIS_URL), kiosks are spread over them as
 * a TCP load balancer would, and the cloud nodes split the ingest on the
 * `$share/bridge/…` subscription (the first serves the API too). Used by
 * bench/fleet.bench.ts, bench/fleet-scale.bench.ts and, small, by
 * test/integration/fleet-small.test.ts.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { mintOperatorToken, openPg } from "@paylane/cloud";
import {
  decode,
  hashSecret,
  operatorUsername,
  Registry,
  type RegistryFile,
  StatusSchema,
  topics,
} from "@paylane/protocol";
import { Redis } from "ioredis";
import mqtt from "mqtt";
import { Child } from "../lib/child.ts";
import { procMemory } from "../lib/proc-memory.ts";
import type { KioskSpec, WorkerIn, WorkerOut, WorkerStats } from "./kiosk-worker.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const SITE = "fleet";
const JWT_SECRET = randomBytes(24).toString("base64url");

export interface FleetSiteOptions {
  /** Kiosks the registry holds (the most any step uses). */
  maxKiosks: number;
  workers: number;
  /** Gateway instances (default 1); more than one share Redis. */
  gateways?: number;
  /** Cloud nodes taking the ingest (default 1): the first in role all (it serves the API), the others role bridge. */
  bridges?: number;
  databaseUrl?: string;
  redisUrl?: string;
  /** Where registries with hashed secrets are kept between runs (hashing thousands of scrypt secrets is slow). */
  cacheDir?: string;
  log?: (line: string) => void;
}

interface Credentials {
  registry: RegistryFile;
  kiosks: Array<[string, string]>;
  cloudSecret: string;
  viewerSecret: string;
}

/** The registry for `n` kiosks with their secrets: read from the cache, or made (and cached) once. */
async function credentials(n: number, cacheDir: string, log: (s: string) => void): Promise<Credentials> {
  const path = join(cacheDir, `fleet-registry-${n}.json`);
  // Any cached registry at least this large will do: a step uses its first n kiosks.
  const cached = (await readdir(cacheDir).catch(() => [] as string[]))
    .map((f) => ({ f, size: Number(/^fleet-registry-(\d+)\.json$/.exec(f)?.[1]) }))
    .filter((c) => c.size >= n)
    .sort((a, b) => a.size - b.size);
  for (const c of cached) {
    try {
      return JSON.parse(await readFile(join(cacheDir, c.f), "utf8")) as Credentials;
    } catch {
      // unreadable: try the next, or make one
    }
  }
  log(`hashing ${n} kiosk secrets (scrypt, once; cached in ${path})…`);
  const secret = () => randomBytes(18).toString("base64url");
  const kiosks = Array.from(
    { length: n },
    (_, i) => [`k${String(i + 1).padStart(5, "0")}`, secret()] as [string, string],
  );
  const cloudSecret = secret();
  const viewerSecret = secret();
  const registry: RegistryFile = {
    version: 1,
    devices: await Promise.all(
      kiosks.map(async ([device, s]) => ({ site: SITE, device, secretHash: await hashSecret(s) })),
    ),
    services: [{ id: "cloud", role: "bridge", secretHash: await hashSecret(cloudSecret) }],
    operators: [{ id: "bench-viewer", role: "viewer", sites: [SITE], secretHash: await hashSecret(viewerSecret) }],
  };
  const creds = { registry, kiosks, cloudSecret, viewerSecret };
  await mkdir(cacheDir, { recursive: true, mode: 0o700 });
  await writeFile(path, JSON.stringify(creds), { mode: 0o600 });
  return creds;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Polls `check` until it answers; a check that throws an Error named fatal ends the wait at once. */
async function until<T>(check: () => Promise<T | undefined>, what: string, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check().catch((err: Error) => {
      if (err.message.endsWith("process exited")) throw new Error(`${what}: ${err.message}`);
      return undefined;
    });
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A service of the repository in its own Node process (so its pid is the one /proc tells about). */
class Service {
  readonly proc: ChildProcess;
  readonly exited: Promise<void>;

  constructor(
    readonly name: string,
    main: string,
    env: Record<string, string>,
  ) {
    this.proc = spawn(process.execPath, ["--import", "tsx", join(ROOT, main)], {
      cwd: ROOT,
      env: { ...process.env, LOG_LEVEL: "error", ...env },
      stdio: ["ignore", "inherit", "inherit"],
    });
    this.exited = new Promise((resolve) => this.proc.once("exit", () => resolve()));
  }

  get pid(): number {
    return this.proc.pid!;
  }

  async stop(graceMs = 10_000): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill("SIGTERM");
    const timer = setTimeout(() => this.proc.kill("SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

/** CPU (user + system) ticks of a process, from /proc/<pid>/stat (fields 14 and 15). */
export function cpuTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // comm may hold spaces or parentheses: the fields after the last ')' are fixed
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return Number.NaN;
  }
}

export interface ProcessUse {
  /** CPU over the window, % of one core. */
  cpuPercent: number;
  rssMb: number;
}

/** Starts metering processes' CPU; the returned function ends the window. */
export function meter(pids: Record<string, number>): () => Record<string, ProcessUse> {
  const t0 = performance.now();
  const before = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuTicks(pid)]));
  return () => {
    const seconds = (performance.now() - t0) / 1000;
    const out: Record<string, ProcessUse> = {};
    for (const [k, pid] of Object.entries(pids)) {
      const ticks = cpuTicks(pid) - before[k]!;
      out[k] = { cpuPercent: (ticks / 100 / seconds) * 100, rssMb: (procMemory(pid)?.rssKb ?? Number.NaN) / 1024 };
    }
    return out;
  };
}

export interface Collected extends Omit<WorkerStats, "latencies"> {
  /** Sorted. */
  latencies: number[];
}

export interface StormResult {
  kiosks: number;
  /** From the gateway's stop to the new one listening. */
  gatewayUpMs: number;
  /** From the stop to every kiosk connected again in a new session. */
  reconnectedMs: number;
  /** From the stop to the cloud's presence online (a birth after the restart) for every kiosk; NaN: never. */
  presenceOnlineMs: number;
  presenceWrong: string[];
  /** Kiosks whose retained status on the new broker is not online with their current session. */
  retainedWrong: string[];
}

export class FleetSite {
  readonly #o: Required<Omit<FleetSiteOptions, "log">> & { log: (s: string) => void };
  readonly schema = `bench_fleet_${randomBytes(5).toString("hex")}`;
  readonly redisPrefix = `bench:fleet:${randomBytes(5).toString("hex")}:`;
  #creds!: Credentials;
  #dir = "";
  #mqttPorts: number[] = [];
  #httpPorts: number[] = [];
  #cloudPorts: number[] = [];
  readonly gateways: Service[] = [];
  readonly clouds: Service[] = [];
  readonly workers: Array<Child<WorkerIn, WorkerOut>> = [];
  /** Kiosks connected so far (the first `connected` of the registry). */
  connected = 0;
  #token = "";

  constructor(o: FleetSiteOptions) {
    this.#o = {
      databaseUrl: "postgres://postgres@127.0.0.1:5432/test",
      redisUrl: "redis://127.0.0.1:6379",
      gateways: 1,
      bridges: 1,
      cacheDir: join(tmpdir(), "paylane-fleet-bench"),
      log: () => {},
      ...o,
    };
  }

  get gateway(): Service | undefined {
    return this.gateways[0];
  }

  get cloud(): Service | undefined {
    return this.clouds[0];
  }

  /** Every gateway and cloud process by name: gateway, cloud (one of each) or gateway1, gateway2, cloud1, … */
  get pids(): Record<string, number> {
    const name = (kind: string, i: number, n: number) => (n === 1 ? kind : `${kind}${i + 1}`);
    return Object.fromEntries([
      ...this.gateways.map((g, i) => [name("gateway", i, this.gateways.length), g.pid]),
      ...this.clouds.map((c, i) => [name("cloud", i, this.clouds.length), c.pid]),
    ]);
  }

  get workerPids(): number[] {
    return this.workers.map((w) => w.pid!);
  }

  async start(): Promise<void> {
    this.#creds = await credentials(this.#o.maxKiosks, this.#o.cacheDir, this.#o.log);
    this.#dir = await mkdtemp(join(tmpdir(), "paylane-fleet-"));
    await Registry.save(join(this.#dir, "registry.json"), this.#creds.registry);
    for (let i = 0; i < this.#o.gateways; i++) {
      this.#mqttPorts.push(await freePort());
      this.#httpPorts.push(await freePort());
    }
    for (let i = 0; i < this.#o.bridges; i++) this.#cloudPorts.push(await freePort());
    await this.startGateways();
    // The first node first: it applies the migrations the others then find done.
    for (let i = 0; i < this.#o.bridges; i++) {
      const cloud = new Service(`cloud${i + 1}`, "cloud/src/main.ts", {
        REGISTRY_PATH: join(this.#dir, "registry.json"),
        CLOUD_PORT: String(this.#cloudPorts[i]),
        CLOUD_ROLE: i === 0 ? "all" : "bridge",
        CLOUD_INSTANCE: `cloud-${i + 1}`,
        // Each node on its own gateway, as each would be behind a load balancer.
        MQTT_URL: `mqtt://127.0.0.1:${this.#mqttPorts[i % this.#mqttPorts.length]}`,
        CLOUD_MQTT_SECRET: this.#creds.cloudSecret,
        DATABASE_URL: this.#o.databaseUrl,
        DATABASE_SCHEMA: this.schema,
        REDIS_URL: this.#o.redisUrl,
        REDIS_PREFIX: this.redisPrefix,
        CLOUD_JWT_SECRET: JWT_SECRET,
        CLOUD_RATE_PER_ADDRESS: "0",
        CLOUD_RATE_PER_CREDENTIAL: "0",
      });
      this.clouds.push(cloud);
      await until(
        async () => {
          if (cloud.proc.exitCode !== null) throw new Error(`the ${cloud.name} process exited`);
          return (await fetch(`http://127.0.0.1:${this.#cloudPorts[i]}/readyz`)).status === 200 ? true : undefined;
        },
        `${cloud.name} ready`,
        120_000,
      );
    }
    this.#token = await mintOperatorToken(JWT_SECRET, { sub: "bench", role: "admin" });
    for (let i = 0; i < this.#o.workers; i++) {
      this.workers.push(new Child(`kiosks-${i + 1}`, new URL("./kiosk-worker.ts", import.meta.url)));
    }
  }

  get cloudUrl(): string {
    return `http://127.0.0.1:${this.#cloudPorts[0]}`;
  }

  /** Starts every gateway (again, after a storm's stop) on its ports; several share Redis under the site's prefix. */
  async startGateways(): Promise<void> {
    const clustered = this.#mqttPorts.length > 1;
    this.gateways.length = 0;
    for (const [i, port] of this.#mqttPorts.entries()) {
      const gateway = new Service(`gateway${i + 1}`, "gateway/src/main.ts", {
        REGISTRY_PATH: join(this.#dir, "registry.json"),
        MQTT_PORT: String(port),
        GATEWAY_HTTP_PORT: String(this.#httpPorts[i]),
        ...(clustered
          ? {
              GATEWAY_REDIS_URL: this.#o.redisUrl,
              GATEWAY_REDIS_PREFIX: `${this.redisPrefix}gw:`,
              GATEWAY_INSTANCE: `gateway-${i + 1}`,
            }
          : {}),
      });
      this.gateways.push(gateway);
    }
    await Promise.all(
      this.gateways.map((gateway, i) =>
        until(
          async () => {
            if (gateway.proc.exitCode !== null) throw new Error(`the ${gateway.name} process exited`);
            return (await fetch(`http://127.0.0.1:${this.#httpPorts[i]}/readyz`)).ok ? true : undefined;
          },
          `${gateway.name} listening`,
          60_000,
        ),
      ),
    );
  }

  /** Connects kiosks up to `n` in all (spread over the workers); resolves when each is connected or gave up. */
  async connectUpTo(n: number): Promise<{ connected: number; failed: string[] }> {
    const specs: KioskSpec[] = this.#creds.kiosks.slice(this.connected, n).map(([device, secret], i) => ({
      device,
      secret,
      // Kiosks come from their own addresses (the gateway limits connects and password checks per address).
      localAddress: `127.0.${1 + Math.floor((this.connected + i) / 250)}.${2 + ((this.connected + i) % 250)}`,
      port: this.#mqttPorts[(this.connected + i) % this.#mqttPorts.length],
    }));
    const parts = this.workers.map((_, w) => specs.filter((_, i) => i % this.workers.length === w));
    const answers = await Promise.all(
      this.workers.map(async (worker, w) => {
        worker.send({ type: "connect", host: "127.0.0.1", port: this.#mqttPorts[0]!, site: SITE, kiosks: parts[w]! });
        return worker.next("connected");
      }),
    );
    this.connected = n;
    return {
      connected: answers.reduce((s, a) => s + a.connected, 0),
      failed: answers.flatMap((a) => a.failed),
    };
  }

  load(telemetryMs: number, checkinMs: number): void {
    for (const w of this.workers) w.send({ type: "load", telemetryMs, checkinMs });
  }

  /** Starts a measuring window: only check-ins published from now on are timed. */
  mark(): void {
    for (const w of this.workers) w.send({ type: "mark" });
  }

  pause(): void {
    for (const w of this.workers) w.send({ type: "pause" });
  }

  /** Every worker's numbers since the last collect, merged (and reset there). */
  async collect(): Promise<Collected> {
    const all = await Promise.all(
      this.workers.map(async (w) => {
        const answer = w.next("stats");
        w.send({ type: "collect" });
        return (await answer).stats;
      }),
    );
    return {
      latencies: all.flatMap((s) => s.latencies).sort((a, b) => a - b),
      checkins: all.reduce((n, s) => n + s.checkins, 0),
      telemetry: all.reduce((n, s) => n + s.telemetry, 0),
      pending: all.reduce((n, s) => n + s.pending, 0),
      pendingOver1s: all.reduce((n, s) => n + s.pendingOver1s, 0),
      connected: all.reduce((n, s) => n + s.connected, 0),
      total: all.reduce((n, s) => n + s.total, 0),
      sessions: Object.assign({}, ...all.map((s) => s.sessions)),
    };
  }

  /** The cloud's presence of every kiosk (GET /api/v1/devices). */
  async presence(): Promise<Array<{ device: string; state: string; statusAt: string | null }>> {
    type Page = { items: Array<{ device: string; state: string; statusAt: string | null }>; next: string | null };
    const all: Page["items"] = [];
    // The overview comes in pages (limit/before → next), 1000 kiosks at most each.
    for (let before = ""; ; ) {
      const res = await fetch(`${this.cloudUrl}/api/v1/devices?site=${SITE}&limit=1000&before=${before}`, {
        headers: { authorization: `Bearer ${this.#token}` },
      });
      if (!res.ok) throw new Error(`GET /api/v1/devices: ${res.status}`);
      const page = (await res.json()) as Page;
      all.push(...page.items);
      if (!page.next) return all;
      before = page.next;
    }
  }

  /** The retained status of every kiosk on the broker, as an ops viewer subscribing now sees it. */
  async retainedStatuses(expect: number): Promise<Map<string, { state: string; session?: number }>> {
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${this.#mqttPorts[0]}`, {
      username: operatorUsername("bench-viewer"),
      password: this.#creds.viewerSecret,
      clientId: `bench-viewer-${randomBytes(3).toString("hex")}`,
      reconnectPeriod: 0,
    });
    const seen = new Map<string, { state: string; session?: number }>();
    try {
      let last = Date.now();
      client.on("message", (topic, payload, packet) => {
        if (!packet.retain) return;
        const s = decode(StatusSchema, payload);
        if (!s.ok) return;
        seen.set(topic.split("/")[3]!, { state: s.value.state, session: s.value.session });
        last = Date.now();
      });
      await client.subscribeAsync(topics.fleet("status", SITE), { qos: 1 });
      // Retained messages follow the SUBACK at once; done when all came or none for a second.
      await until(
        async () => (seen.size >= expect || Date.now() - last > 1000 ? true : undefined),
        "retained statuses",
        60_000,
      );
    } finally {
      await client.endAsync(true).catch(() => {});
    }
    return seen;
  }

  /**
   * Restarts the gateways with the whole fleet connected (its retained
   * statuses go with it) and times the way back: every kiosk connected again
   * in a new session, the cloud's presence online from a birth after the
   * restart, and every retained status on the new broker online with the
   * kiosk's current session.
   */
  async reconnectStorm(timeoutMs: number): Promise<StormResult> {
    const before = (await this.collect()).sessions;
    const n = Object.keys(before).length;
    const t0 = performance.now();
    const restartedAt = new Date();
    await Promise.all(this.gateways.map((g) => g.stop()));
    await this.startGateways();
    const gatewayUpMs = performance.now() - t0;
    const deadline = Date.now() + timeoutMs;
    const left = () => Math.max(1, deadline - Date.now());
    let sessions: Record<string, number> = {};
    const reconnectedMs = await until(
      async () => {
        const s = await this.collect();
        sessions = s.sessions;
        const back = Object.entries(s.sessions).every(([d, session]) => session > before[d]!);
        return s.connected === s.total && back ? performance.now() - t0 : undefined;
      },
      "every kiosk reconnected",
      left(),
    );
    let presenceWrong: string[] = [];
    const presenceOnlineMs = await until(
      async () => {
        // The registry may hold more kiosks than are connected: only the connected ones count.
        const items = (await this.presence()).filter((p) => p.device in before);
        presenceWrong = items
          .filter((p) => p.state !== "online" || !p.statusAt || new Date(p.statusAt) < restartedAt)
          .map((p) => p.device);
        return presenceWrong.length === 0 && items.length === n ? performance.now() - t0 : undefined;
      },
      "the cloud's presence online for every kiosk",
      left(),
    ).catch(() => Number.NaN);
    const retained = await this.retainedStatuses(n);
    const retainedWrong = Object.entries(sessions)
      .filter(([d, session]) => retained.get(d)?.state !== "online" || retained.get(d)?.session !== session)
      .map(([d]) => d);
    return { kiosks: n, gatewayUpMs, reconnectedMs, presenceOnlineMs, presenceWrong, retainedWrong };
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.stop({ type: "stop" }, 10_000).catch(() => {})));
    await Promise.all(this.clouds.map((c) => c.stop()));
    await Promise.all(this.gateways.map((g) => g.stop()));
    const db = await openPg({ url: this.#o.databaseUrl, schema: "public" }).catch(() => undefined);
    await db?.query(`DROP SCHEMA IF EXISTS ${this.schema} CASCADE`).catch(() => {});
    await db?.close();
    const redis = new Redis(this.#o.redisUrl, { lazyConnect: true });
    try {
      await redis.connect();
      let cursor = "0";
      do {
        const [next, keys] = await redis.scan(cursor, "MATCH", `${this.redisPrefix}*`, "COUNT", 1000);
        cursor = next;
        if (keys.length > 0) await redis.del(...keys);
      } while (cursor !== "0");
    } catch {
      // Redis gone: nothing to clean
    } finally {
      redis.disconnect();
    }
    if (this.#dir) await rm(this.#dir, { recursive: true, force: true });
  }
}
