/**
 * A small fleet for gateway tests: a registry (kiosks, the bridge, an
 * operator), mqtt.js clients under those identities, a recorder of what a
 * client receives, and a Redis key prefix of its own per test file (removed
 * at the end), so parallel tests on the shared Redis never meet.
 */
import { randomUUID } from "node:crypto";
import {
  type DeviceAddress,
  deviceIdentity,
  hashSecret,
  operatorUsername,
  Registry,
  type RegistryFile,
  serviceUsername,
} from "@paylane/protocol";
import { Redis } from "ioredis";
import { connectAsync, type IClientOptions, type MqttClient } from "mqtt";

export const REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

export const k1: DeviceAddress = { site: "s1", device: "k1" };
export const k2: DeviceAddress = { site: "s1", device: "k2" };
export const k3: DeviceAddress = { site: "s2", device: "k3" };
export const SECRET = "secret-of-everyone";
export const BRIDGE = "cloud";
export const OPERATOR = "olivia";

export async function fleetRegistryFile(): Promise<RegistryFile> {
  const secretHash = await hashSecret(SECRET);
  return {
    version: 1,
    devices: [k1, k2, k3].map((a) => ({ ...a, secretHash })),
    services: [{ id: BRIDGE, role: "bridge", secretHash }],
    operators: [{ id: OPERATOR, role: "operator", sites: ["s1"], secretHash }],
  };
}

export const fleetRegistry = async () => new Registry(await fleetRegistryFile());

/** A prefix no other test uses; `clear()` deletes every key under it. */
export function redisPrefix(what: string) {
  const prefix = `test-${what}-${randomUUID().slice(0, 8)}`;
  return {
    prefix,
    async clear(): Promise<number> {
      const redis = new Redis(REDIS_URL);
      try {
        let removed = 0;
        for await (const keys of redis.scanStream({ match: `${prefix}:*`, count: 500 })) {
          if ((keys as string[]).length > 0) removed += await redis.del(...(keys as string[]));
        }
        return removed;
      } finally {
        redis.disconnect();
      }
    },
  };
}

export class Clients {
  #open: MqttClient[] = [];

  async connect(port: number, options: IClientOptions): Promise<MqttClient> {
    const client = await connectAsync(`mqtt://127.0.0.1:${port}`, {
      reconnectPeriod: 0,
      protocolVersion: 4,
      clean: true,
      connectTimeout: 5000,
      ...options,
    });
    this.#open.push(client);
    return client;
  }

  device(port: number, address: DeviceAddress, extra: IClientOptions = {}) {
    return this.connect(port, {
      clientId: deviceIdentity.clientId(address),
      username: deviceIdentity.username(address),
      password: SECRET,
      ...extra,
    });
  }

  bridge(port: number, clientId: string, extra: IClientOptions = {}) {
    return this.connect(port, { clientId, username: serviceUsername(BRIDGE), password: SECRET, ...extra });
  }

  operator(port: number, clientId = "ops-tool", extra: IClientOptions = {}) {
    return this.connect(port, { clientId, username: operatorUsername(OPERATOR), password: SECRET, ...extra });
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.#open.map((c) => c.endAsync(true)));
    this.#open = [];
  }
}

export interface Received {
  topic: string;
  payload: string;
  qos: number;
  retain: boolean;
}

/** Everything `client` receives, and a way to wait for a message or a count. */
export function recorder(client: MqttClient) {
  const seen: Received[] = [];
  const waiters: (() => void)[] = [];
  client.on("message", (topic, payload, packet) => {
    seen.push({ topic, payload: payload.toString("utf8"), qos: packet.qos, retain: packet.retain });
    for (const w of waiters.splice(0)) w();
  });
  const changed = () => new Promise<void>((resolve) => waiters.push(resolve));
  return {
    seen,
    async next(match: (m: Received) => boolean): Promise<Received> {
      for (;;) {
        const m = seen.find(match);
        if (m) return m;
        await changed();
      }
    },
    changed,
  };
}

/**
 * Resolves once `done()` holds, checked after each message any of `recorders`
 * gets; rejects naming `what` after `ms` of real time (a bound, not a wait).
 */
export async function until(
  recorders: { changed: () => Promise<void> }[],
  done: () => boolean,
  ms: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done()) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      ...recorders.map((r) => r.changed()),
      new Promise((resolve) => {
        timer = setTimeout(resolve, Math.min(left, 200));
      }),
    ]);
    clearTimeout(timer);
  }
}

/** Polls `check` (a state with no event to wait on, e.g. Redis or an HTTP probe) until it holds, bounded. */
export async function eventually(check: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/**
 * The gateway options of a suite that runs in both modes: in memory, or on
 * Redis with a prefix of its own when GATEWAY_TEST_ON_REDIS is set (the
 * `*-on-redis.test.ts` files import the suite with it). `clear()` removes the
 * suite's keys.
 */
export function suiteSharing(what: string) {
  if (!process.env.GATEWAY_TEST_ON_REDIS) return { options: {}, clear: async () => 0 };
  const keys = redisPrefix(what);
  return {
    options: { redis: { url: REDIS_URL, prefix: keys.prefix }, instance: `${what}-on-redis` },
    clear: keys.clear,
  };
}
