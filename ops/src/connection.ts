/**
 * How paylane-ops reaches the broker: which URL and which operator login
 * (flags, environment, or the demo site's ops-credentials.json), and the
 * MQTT connection itself, with every refusal turned into one line a person
 * can act on. The password is never printed: errors name the user only.
 */
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { ConfigError, oneLine } from "@paylane/protocol/service";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { z } from "zod";

export const DEFAULT_URL = "mqtt://127.0.0.1:1883";
export const ROLES = ["viewer", "operator"] as const;
export type LoginRole = (typeof ROLES)[number];

/** The repository root: `npm start` keeps its data folder here unless PAYLANE_DATA says otherwise (scripts/site.ts). */
const repoRoot = join(import.meta.dirname, "..", "..");

/** Exit codes of paylane-ops: 0 ok, 1 failed (refused, command failed), 2 bad usage, 3 timed out. */
export const OPS_EXIT = { ok: 0, failed: 1, usage: 2, timeout: 3 } as const;

/** A failure to report in one line, with its exit code. */
export class OpsError extends Error {
  override name = "OpsError";
  constructor(
    message: string,
    readonly exitCode: number = OPS_EXIT.failed,
  ) {
    super(message);
  }
}

/** The connection flags every sub-command takes (see main.ts). */
export interface ConnectionOptions {
  url?: string;
  credentials?: string;
  as?: LoginRole;
  username?: string;
  password?: string;
}

export interface Login {
  url: string;
  username?: string;
  password?: string;
  /** Where the login came from, for error lines ("--credentials … as operator"). */
  source: string;
}

const CredentialsFileSchema = z.object({
  viewer: z.object({ username: z.string().min(1), password: z.string().min(1) }).optional(),
  operator: z.object({ username: z.string().min(1), password: z.string().min(1) }).optional(),
});

/** `<PAYLANE_DATA>/ops-credentials.json`, where `npm start` writes the demo site's operator logins. */
export function defaultCredentialsPath(env: NodeJS.ProcessEnv = process.env): string {
  const data = env.PAYLANE_DATA?.trim() ? resolve(env.PAYLANE_DATA) : join(repoRoot, ".paylane");
  return join(data, "ops-credentials.json");
}

/**
 * Resolves the broker URL and the login, in this order: --username/--password,
 * PAYLANE_OPS_USERNAME/PAYLANE_OPS_PASSWORD, --credentials (or the demo
 * site's file when it exists) picked by --as; else no login (an anonymous
 * broker such as a development Mosquitto).
 */
export function resolveLogin(o: ConnectionOptions, defaultRole: LoginRole, env = process.env): Login {
  const url = o.url ?? (env.MQTT_URL?.trim() || DEFAULT_URL);
  if (!/^(mqtts?|wss?|tcp|ssl):\/\//.test(url) || !URL.canParse(url)) {
    throw new ConfigError(`--url: expected a broker URL such as ${DEFAULT_URL}, got ${JSON.stringify(url)}`);
  }
  const username = o.username ?? (env.PAYLANE_OPS_USERNAME?.trim() || undefined);
  const password = o.password ?? (env.PAYLANE_OPS_PASSWORD || undefined);
  if (username !== undefined || password !== undefined) {
    if (!username) throw new ConfigError("--password needs --username (or PAYLANE_OPS_USERNAME)");
    if (!password) throw new ConfigError("--username needs --password (or PAYLANE_OPS_PASSWORD)");
    return { url, username, password, source: `user ${username}` };
  }
  const role = o.as ?? defaultRole;
  const path = o.credentials ?? defaultCredentialsPath(env);
  if (!o.credentials && !existsSync(path)) return { url, source: "no login (anonymous)" };
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new ConfigError(`--credentials: cannot read ${path}: ${oneLine(err)}`);
  }
  const file = CredentialsFileSchema.safeParse(parsed);
  if (!file.success) {
    throw new ConfigError(
      `--credentials: ${path} is not an ops-credentials.json ({ "viewer": {...}, "operator": {...} })`,
    );
  }
  const login = file.data[role];
  if (!login) throw new ConfigError(`--as ${role}: ${path} holds no ${role} login`);
  return { url, ...login, source: `${login.username} (${role} from ${path})` };
}

/** CONNACK codes in words: MQTT 3.1.1 (1–5) and MQTT 5 (128+). */
const CONNACK_REFUSALS: Record<number, string> = {
  1: "unacceptable protocol version",
  2: "client id rejected",
  3: "server unavailable",
  4: "bad user name or password",
  5: "not authorized",
  134: "bad user name or password",
  135: "not authorized",
  136: "server unavailable",
  138: "banned",
};

/**
 * Connects and resolves once the broker accepted the login. Speaks MQTT 5
 * first (a refused PUBLISH then comes back as a negative PUBACK, e.g. from
 * Mosquitto) and falls back to 3.1.1 for brokers without 5, such as aedes
 * (which closes the connection on a refused PUBLISH instead).
 */
export async function connect(login: Login, { timeoutMs = 10_000 } = {}): Promise<MqttClient> {
  const base: IClientOptions = {
    clientId: `paylane-ops-${randomBytes(6).toString("hex")}`,
    username: login.username,
    password: login.password,
    clean: true,
    reconnectPeriod: 0,
    connectTimeout: timeoutMs,
  };
  try {
    return await mqtt.connectAsync(login.url, { ...base, protocolVersion: 5 }, false);
  } catch (err) {
    if (refusalCode(err) !== 1 && !closedEarly(err)) throw connectError(login, err);
  }
  try {
    return await mqtt.connectAsync(login.url, { ...base, protocolVersion: 4 }, false);
  } catch (err) {
    throw connectError(login, err);
  }
}

function refusalCode(err: unknown): number | undefined {
  const code = (err as { code?: unknown })?.code;
  return typeof code === "number" ? code : undefined;
}

/** A 3.1.1-only broker answering an MQTT 5 CONNECT may just close the socket. */
function closedEarly(err: unknown): boolean {
  return /connection closed|ECONNRESET|client disconnecting/i.test(oneLine(err));
}

function connectError(login: Login, err: unknown): OpsError {
  const who = login.username
    ? `the login of ${login.username}`
    : "an anonymous login (pass --credentials or --username)";
  const code = refusalCode(err);
  if (code !== undefined && CONNACK_REFUSALS[code]) {
    return new OpsError(`${login.url} refused ${who}: ${CONNACK_REFUSALS[code]}`);
  }
  const text = oneLine(err);
  if (/ECONNREFUSED/.test(text)) return new OpsError(`cannot reach the broker at ${login.url}: connection refused`);
  return new OpsError(`cannot connect to ${login.url} as ${login.username ?? "anonymous"}: ${text}`);
}

/**
 * Subscribes to `filters`; a filter the broker refuses (SUBACK 0x80) is an
 * error naming it: the login may not read that site or topic.
 */
export async function subscribe(client: MqttClient, filters: string[], who: string): Promise<void> {
  let grants: Array<{ topic: string; qos: number }>;
  try {
    grants = await client.subscribeAsync(filters, { qos: 1 });
  } catch (err) {
    const granted = (err as { packet?: { granted?: number[] } }).packet?.granted;
    const refused = granted ? filters.filter((_, i) => (granted[i] ?? 128) >= 128) : filters;
    throw new OpsError(
      `the broker refused ${who} reading ${refused.join(", ")}: not authorized for that site or topic`,
    );
  }
  const refused = grants.filter((g) => g.qos >= 128).map((g) => g.topic);
  if (refused.length > 0) {
    throw new OpsError(
      `the broker refused ${who} reading ${refused.join(", ")}: not authorized for that site or topic`,
    );
  }
}

/**
 * Publishes at QoS 1 and resolves once the broker took it. A refusal is an
 * error: MQTT 5 answers it with a negative PUBACK; a 3.1.1 broker with ACLs
 * (the PayLane gateway) closes the connection, as 3.1.1 has no other way.
 */
export function publish(
  client: MqttClient,
  topic: string,
  payload: string,
  { retain = false, who }: { retain?: boolean; who: string },
): Promise<void> {
  return new Promise((resolvePublish, reject) => {
    const refused = (why: string) =>
      new OpsError(
        `the broker refused ${who} publishing to ${topic}: ${why} (a viewer publishes nothing; an operator only to granted sites)`,
      );
    const onClose = () => reject(refused("it closed the connection"));
    client.once("close", onClose);
    client.publish(topic, payload, { qos: 1, retain }, (err) => {
      client.off("close", onClose);
      if (!err) {
        resolvePublish();
        return;
      }
      const code = refusalCode(err);
      reject(code === 135 ? refused("not authorized") : refused(oneLine(err)));
    });
  });
}

/** Who is connected, for error lines. */
export const whoOf = (login: Login) => login.username ?? "this anonymous login";

/**
 * Collects the retained messages of `filters`: the broker sends them right
 * after the SUBACK, and nothing marks their end, so the collection ends once
 * the topics have been quiet for `quietMs`.
 */
export async function retainedSnapshot(
  client: MqttClient,
  filters: string[],
  who: string,
  quietMs = 400,
): Promise<Map<string, Buffer>> {
  const found = new Map<string, Buffer>();
  let timer: NodeJS.Timeout | undefined;
  let done: () => void = () => {};
  const quiet = new Promise<void>((r) => {
    done = r;
  });
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(done, quietMs);
  };
  const onMessage = (topic: string, payload: Buffer, packet: { retain?: boolean }) => {
    if (!packet.retain) return;
    if (payload.length === 0) found.delete(topic);
    else found.set(topic, payload);
    arm();
  };
  client.on("message", onMessage);
  try {
    await subscribe(client, filters, who);
    arm();
    await quiet;
  } finally {
    clearTimeout(timer);
    client.off("message", onMessage);
  }
  return found;
}
