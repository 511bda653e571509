/**
 * A Mosquitto 2 configuration made from the identity registry, so the same
 * devices, bridge and operators can use Mosquitto instead of the aedes
 * gateway with the same rights (gateway/src/acl.ts).
 *
 * Why the dynamic-security plugin and not `password_file` + `acl_file`:
 * Mosquitto's password file splits each line at the first `:`, so it cannot
 * hold the bridge's `svc:cloud` nor any operator's `ops:{id}` (mosquitto_passwd
 * refuses them: "Username must not contain the ':' character"). The plugin's
 * JSON file holds the same PBKDF2-SHA512 hashes as the password file's `$7$`
 * lines (101 iterations, 12-byte salt), any username, and per-role ACLs that
 * Mosquitto checks on publish, on subscribe and on every delivered message
 * (`publishClientReceive`) — which is what lets an operator subscribe with
 * `+` for the site and still receive only its granted sites.
 *
 * The registry holds scrypt hashes only, which Mosquitto cannot check: the
 * plain secrets come from a separate file, and each is checked against the
 * registry before it is hashed again for Mosquitto.
 *
 * What Mosquitto cannot do that aedes does (docs/operators.md): it does not
 * refuse a retained message on a channel that is never retained, it does not
 * close the connection of a client that publishes outside its ACL (the message
 * is dropped; MQTT 5 clients get PUBACK 0x87), and it cannot stamp the `by`
 * field of an operator's command.
 */
import { pbkdf2Sync, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import {
  deviceIdentity,
  OPERATOR_ROLES,
  type OperatorRole,
  operatorUsername,
  type RegistryFile,
  ROOT,
  serviceUsername,
  topics,
} from "@paylane/protocol";
import {
  BRIDGE_PUBLISH,
  DEVICE_PUBLISH,
  DEVICE_READ_BACK,
  DEVICE_SUBSCRIBE,
  OPERATOR_READ,
  SHARE_PREFIX,
} from "./acl.ts";

/** Mosquitto 2's own parameters for PBKDF2-SHA512 (`$7$` in mosquitto_passwd). */
const PBKDF2 = { iterations: 101, saltBytes: 12, keyBytes: 64, digest: "sha512" } as const;

/** Where Debian and Ubuntu (any architecture) and a source build put the plugin. */
export const DYNSEC_PLUGIN_PATHS = [
  "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
  "/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so",
  "/usr/lib/arm-linux-gnueabihf/mosquitto_dynamic_security.so",
  "/usr/local/lib/mosquitto_dynamic_security.so",
];

export const findDynsecPlugin = (): string | undefined => DYNSEC_PLUGIN_PATHS.find((p) => existsSync(p));

export interface Pbkdf2Hash {
  password: string;
  salt: string;
  iterations: number;
}

/** `secret` hashed as Mosquitto checks it: base64 of PBKDF2-SHA512 and its salt. */
export function mosquittoHash(secret: string, salt = randomBytes(PBKDF2.saltBytes)): Pbkdf2Hash {
  const key = pbkdf2Sync(secret, salt, PBKDF2.iterations, PBKDF2.keyBytes, PBKDF2.digest);
  return { password: key.toString("base64"), salt: salt.toString("base64"), iterations: PBKDF2.iterations };
}

export type AclType = "publishClientSend" | "publishClientReceive" | "subscribeLiteral" | "subscribePattern";
export interface Acl {
  acltype: AclType;
  topic: string;
  priority: number;
  allow: boolean;
}
export interface DynsecRole {
  rolename: string;
  textname?: string;
  acls: Acl[];
}
export interface DynsecClient extends Pbkdf2Hash {
  username: string;
  textname?: string;
  roles: { rolename: string }[];
}
/** The plugin's configuration file (`plugin_opt_config_file`). */
export interface DynsecConfig {
  defaultACLAccess: {
    publishClientSend: boolean;
    publishClientReceive: boolean;
    subscribe: boolean;
    unsubscribe: boolean;
  };
  clients: DynsecClient[];
  groups: never[];
  roles: DynsecRole[];
}

const allow = (acltype: AclType, topic: string): Acl => ({ acltype, topic, priority: 0, allow: true });
const send = (topic: string) => allow("publishClientSend", topic);
const receive = (topic: string) => allow("publishClientReceive", topic);
/** The subscription must be this filter, character for character (its wildcards are literal). */
const subscribeExactly = (filter: string) => allow("subscribeLiteral", filter);
/** The subscription must fall within this filter (a narrower filter or a topic it matches). */
const subscribeWithin = (filter: string) => allow("subscribePattern", filter);

const at = (...levels: string[]) => [ROOT, ...levels].join("/");
/** Channels by direction, from acl.ts's own sets (`cmd/{name}` is one level deeper and has its own patterns). */
const DEVICE_SENDS: string[] = [...DEVICE_PUBLISH];
/** Addressed to the device, plus its own `status` read back (a late Will over its birth is answered). */
const DEVICE_READS: string[] = [...DEVICE_SUBSCRIBE, ...DEVICE_READ_BACK].filter((c) => c !== "cmd");
const BRIDGE_SENDS: string[] = [...BRIDGE_PUBLISH].filter((c) => c !== "cmd");
/** What operators read of each kiosk: never `events`, `ack` or `errors`. */
const OPERATOR_READS: string[] = [...OPERATOR_READ];

/** A device: its own subtree only (acl.ts, checkDevicePublish and checkDeviceSubscribe). */
function deviceRole(site: string, device: string): DynsecRole {
  const a = { site, device };
  return {
    rolename: `device:${deviceIdentity.username(a)}`,
    acls: [
      ...DEVICE_SENDS.map((c) => send(at(site, device, c))),
      subscribeExactly(topics.deviceTree(a)),
      ...DEVICE_READS.map((c) => subscribeExactly(at(site, device, c))),
      // cmd/+ and cmd/{name}
      subscribeWithin(topics.cmdAll(a)),
      subscribeExactly(topics.cloudStatus),
      receive(topics.deviceTree(a)),
      receive(topics.cloudStatus),
    ],
  };
}

/** The cloud bridge: reads the whole v1 tree, writes what is addressed to devices and the cloud's own topics. */
function bridgeRole(): DynsecRole {
  return {
    rolename: "service:bridge",
    acls: [
      ...BRIDGE_SENDS.map((c) => send(at("+", "+", c))),
      send(at("+", "+", "cmd", "+")),
      send(topics.cloudStatus),
      send(topics.alerts("+")),
      send(topics.fleetEventsMeta("+")),
      subscribeWithin(`${ROOT}/#`),
      // Mosquitto 2 checks a shared subscription's whole filter, `$share/{group}/` included, against the
      // subscribe ACLs (acl.ts strips it first): several bridges share the ingest as `$share/bridge/...`.
      subscribeWithin(`${SHARE_PREFIX}/+/${ROOT}/#`),
      receive(`${ROOT}/#`),
    ],
  };
}

/**
 * An operator (acl.ts, checkOperatorPublish / checkOperatorSubscribe /
 * checkForward). Subscriptions may name a granted site or hold `+` for the
 * site (then every delivered message is checked against the granted sites by
 * `publishClientReceive`); an admin's `+` stands for every site.
 */
function operatorRole(id: string, role: OperatorRole, sites: readonly string[]): DynsecRole {
  const granted = role === "admin" ? ["+"] : sites;
  const acls: Acl[] = [subscribeExactly(topics.cloudStatus), receive(topics.cloudStatus)];
  const feeds = [
    (site: string) => topics.alerts(site),
    (site: string) => topics.fleetEventsMeta(site),
    ...OPERATOR_READS.map((c) => (site: string) => at(site, "+", c)),
  ];
  for (const feed of feeds) {
    acls.push(subscribeExactly(feed("+")));
    for (const site of granted) acls.push(subscribeWithin(feed(site)), receive(feed(site)));
  }
  if (role !== "viewer") {
    for (const site of granted) acls.push(send(at(site, "+", "cmd", "+")), send(at(site, "+", "config")));
  }
  return {
    rolename: `operator:${id}`,
    textname: `${role} of ${role === "admin" ? "every site" : sites.join(", ")}`,
    acls,
  };
}

export interface MosquittoIdentities {
  config: DynsecConfig;
  /** Registry usernames with no secret in the secrets file: they cannot connect to this Mosquitto. */
  missing: string[];
}

/**
 * The plugin configuration for every identity of `registry` whose secret is
 * in `secrets` (username → plain secret). Deny by default: every right
 * comes from a role made from acl.ts's rules.
 */
export function dynsecConfig(registry: RegistryFile, secrets: Readonly<Record<string, string>>): MosquittoIdentities {
  const config: DynsecConfig = {
    defaultACLAccess: { publishClientSend: false, publishClientReceive: false, subscribe: false, unsubscribe: true },
    clients: [],
    groups: [],
    roles: [],
  };
  const missing: string[] = [];
  const add = (username: string, role: DynsecRole) => {
    const secret = secrets[username];
    if (secret === undefined) {
      missing.push(username);
      return;
    }
    if (!config.roles.some((r) => r.rolename === role.rolename)) config.roles.push(role);
    config.clients.push({ username, ...mosquittoHash(secret), roles: [{ rolename: role.rolename }] });
  };
  for (const d of registry.devices) add(deviceIdentity.username(d), deviceRole(d.site, d.device));
  for (const s of registry.services) add(serviceUsername(s.id), bridgeRole());
  for (const o of registry.operators ?? []) {
    if (!OPERATOR_ROLES.includes(o.role)) continue;
    add(operatorUsername(o.id), operatorRole(o.id, o.role, o.sites ?? []));
  }
  return { config, missing };
}

export interface MosquittoConfOptions {
  port: number;
  host: string;
  pluginPath: string;
  /** Absolute path of the plugin's configuration file. */
  dynsecPath: string;
  /** The registry it was made from, named in the header. */
  source: string;
}

/** `mosquitto.conf`: one listener, nobody anonymous, every right from the plugin. */
export function mosquittoConf(o: MosquittoConfOptions): string {
  return [
    `# Made by \`paylane-gateway mosquitto-config\` from ${o.source}.`,
    "# Do not edit: change the registry (paylane-gateway operator add|remove) and make it again.",
    `listener ${o.port} ${o.host}`,
    "allow_anonymous false",
    "# Identities, PBKDF2-SHA512 hashes and ACLs (see docs/operators.md for why not password_file).",
    `plugin ${o.pluginPath}`,
    `plugin_opt_config_file ${o.dynsecPath}`,
    "",
  ].join("\n");
}
