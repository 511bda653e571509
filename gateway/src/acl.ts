/**
 * Topic ACLs of the gateway: pure functions from an identity and a topic to a
 * decision. Deny by default: anything not matched by a rule below is refused,
 * unlike aedes' own defaults, which allow everything.
 *
 * A device may publish and subscribe only under its own `{site}/{device}`
 * (docs/architecture.md, "Identities and ACLs"). Topics are parsed with the
 * protocol's `parseTopic` and compared with what its `topics` builder makes;
 * nothing here builds a topic by concatenation.
 */
import {
  type Channel,
  type DeviceAddress,
  deviceIdentity,
  ID_PATTERN,
  type Identity,
  type OperatorRole,
  parseAlertTopic,
  parseTopic,
  RESERVED_SITES,
  ROOT,
  type ServiceRole,
  topics,
} from "@paylane/protocol";

type OperatorIdentity = Extract<Identity, { kind: "operator" }>;

export type Decision = { allowed: true } | { allowed: false; reason: string };

const ALLOW: Decision = { allowed: true };
const deny = (reason: string): Decision => ({ allowed: false, reason });

/** What a device sends (the "device →" channels of protocol/src/topics.ts, DEVICE_OUT). */
export const DEVICE_PUBLISH = new Set<Channel>(["status", "events", "telemetry", "state", "cmd-result"]);
/** Only the birth/Will and the reported configuration are retained (docs/architecture.md, MQTT contract). */
const DEVICE_RETAIN = new Set<Channel>(["status", "state"]);
/** What is addressed to a device ("→ device" channels): a device may read these, exactly. */
export const DEVICE_SUBSCRIBE = new Set<Channel>(["ack", "config", "errors", "cmd"]);
/**
 * What a device sends and may read back: its own `status`, so a late Will of
 * an older session that overwrote its birth is seen and answered with the
 * birth again (docs/status.md).
 */
export const DEVICE_READ_BACK = new Set<Channel>(["status"]);

/** What the cloud bridge sends to devices. */
export const BRIDGE_PUBLISH = new Set<Channel>(["ack", "config", "errors", "cmd"]);
/** `config` is the desired state: retained so a device that connects later still gets it. */
const BRIDGE_RETAIN = new Set<Channel>(["config"]);

const ROOT_LEVELS = ROOT.split("/");
/** A command name the topics builder accepts; only its level count and position matter. */
const CMD_PROBE = "probe";

const sameDevice = (a: DeviceAddress, b: DeviceAddress) => a.site === b.site && a.device === b.device;
const label = (a: DeviceAddress) => deviceIdentity.username(a);

/** A PUBLISH (or a Will, see `checkWill`) by `identity` to `topic`. */
export function checkPublish(identity: Identity, topic: string, retain: boolean): Decision {
  if (identity.kind === "device") return checkDevicePublish(identity.address, topic, retain);
  if (identity.kind === "operator") return checkOperatorPublish(identity, topic, retain);
  return checkServicePublish(identity.role, topic, retain);
}

/** Roles that may steer kiosks (commands, desired configuration). */
const STEERING_ROLES = new Set<OperatorRole>(["operator", "admin"]);
/** What operators read of each kiosk: never `events` (bodies hold member ids), never `ack`. */
export const OPERATOR_READ = new Set<string>(["status", "telemetry", "state", "cmd-result", "config"]);

/** Whether the operator's grant covers `site` (admins: every site). */
export function grantsSite(op: OperatorIdentity, site: string): boolean {
  return op.role === "admin" || op.sites.includes(site);
}

function checkOperatorPublish(op: OperatorIdentity, topic: string, retain: boolean): Decision {
  if (!STEERING_ROLES.has(op.role)) return deny(`operator ${op.id} is a viewer: viewers publish nothing`);
  const parsed = parseTopic(topic);
  if (!parsed || (parsed.channel !== "cmd" && parsed.channel !== "config")) {
    return deny(`operator ${op.id} may publish only a kiosk's cmd/{name} or config, not ${topic}`);
  }
  if (!grantsSite(op, parsed.site)) return deny(`operator ${op.id} is not granted site ${parsed.site}`);
  if (retain && parsed.channel !== "config") return deny("commands are never retained; only config is");
  return ALLOW;
}

function checkDevicePublish(own: DeviceAddress, topic: string, retain: boolean): Decision {
  const parsed = parseTopic(topic);
  if (!parsed || !sameDevice(parsed, own)) {
    return deny(`device ${label(own)} may publish only under its own subtree, not to ${topic}`);
  }
  if (!DEVICE_PUBLISH.has(parsed.channel)) {
    return deny(`device ${label(own)} may not publish to ${parsed.channel}: that channel is addressed to the device`);
  }
  if (retain && !DEVICE_RETAIN.has(parsed.channel)) {
    return deny(`retained messages are allowed on status and state only, not on ${parsed.channel}`);
  }
  return ALLOW;
}

function checkServicePublish(role: ServiceRole, topic: string, retain: boolean): Decision {
  if (role !== "bridge") return deny(`service role ${role} may not publish`);
  // The cloud's birth and Will (Sparkplug-style STATE), retained by design.
  if (topic === topics.cloudStatus) return ALLOW;
  // Alerts are retained while they fire; the committed-events feed is live only.
  if (parseAlertTopic(topic)) return ALLOW;
  if (cloudEventsSite(topic) !== undefined) {
    return retain ? deny("the committed-events feed is never retained") : ALLOW;
  }
  const parsed = parseTopic(topic);
  if (!parsed || !BRIDGE_PUBLISH.has(parsed.channel)) {
    return deny(`the bridge may publish only a device's ack, config, errors or cmd/{name}, not ${topic}`);
  }
  if (retain && !BRIDGE_RETAIN.has(parsed.channel)) {
    return deny(`the bridge may retain only config, not ${parsed.channel}`);
  }
  return ALLOW;
}

/**
 * The Will of a CONNECT. It is published by the broker on the client's
 * behalf, possibly long after the client is gone, so it is held to the
 * narrowest rule: a device's Will is its own `status`, the bridge's is
 * `paylane/v1/cloud/status`.
 */
export function checkWill(identity: Identity, topic: string, retain: boolean): Decision {
  if (identity.kind === "device") {
    const parsed = parseTopic(topic);
    if (!parsed || !sameDevice(parsed, identity.address) || parsed.channel !== "status") {
      return deny(`the Will of device ${label(identity.address)} must be its own status topic, not ${topic}`);
    }
    return ALLOW;
  }
  if (identity.kind === "operator") return deny(`operator ${identity.id} may not set a Will`);
  if (identity.role === "bridge" && topic === topics.cloudStatus) return checkPublish(identity, topic, retain);
  return deny(`the Will of service ${identity.id} must be ${topics.cloudStatus}, not ${topic}`);
}

export interface SharedFilter {
  /** The share name, or null for an ordinary subscription. */
  group: string | null;
  filter: string;
}

export const SHARE_PREFIX = "$share";

/**
 * Splits an MQTT 5 shared subscription `$share/{ShareName}/{filter}` (MQTT 5
 * §4.8.2). Returns null when the `$share` form is malformed: the ShareName is
 * empty or holds `/`, `+` or `#` [MQTT-4.8.2-1], or no filter follows it
 * [MQTT-4.8.2-2].
 */
export function splitSharedFilter(filter: string): SharedFilter | null {
  const levels = filter.split("/");
  if (levels[0] !== SHARE_PREFIX) return { group: null, filter };
  const [, group, ...rest] = levels;
  if (!group || group.includes("+") || group.includes("#") || rest.length === 0) return null;
  return { group, filter: rest.join("/") };
}

/**
 * Checks wildcard syntax: `+` and `#` fill a whole level and `#` comes last
 * [MQTT-4.7.1-2], [MQTT-4.7.1-3]. aedes checks this too; the ACL must not
 * depend on it, so a malformed filter can never read as a prefix match.
 */
function wellFormedFilter(levels: readonly string[]): boolean {
  return levels.every((level, i) => {
    if (level === "#") return i === levels.length - 1;
    return level === "+" || !(level.includes("+") || level.includes("#"));
  });
}

/** A SUBSCRIBE by `identity` to the topic filter `filter` (possibly `$share/...`). */
export function checkSubscribe(identity: Identity, filter: string): Decision {
  const shared = splitSharedFilter(filter);
  if (!shared) return deny(`malformed shared subscription ${filter}: expected $share/{group}/{filter}`);
  if (!wellFormedFilter(shared.filter.split("/"))) return deny(`malformed topic filter ${filter}`);
  if (identity.kind === "device") {
    if (shared.group !== null) return deny("shared subscriptions are for services, not devices");
    return checkDeviceSubscribe(identity.address, shared.filter);
  }
  if (identity.kind === "operator") {
    if (shared.group !== null) return deny("shared subscriptions are for services, not operators");
    return checkOperatorSubscribe(identity, shared.filter);
  }
  return checkServiceSubscribe(identity.role, shared.filter);
}

/**
 * Operators subscribe to a kiosk channel they may read, to the cloud's
 * status, alerts and committed-events feed. A site level may be `+`: what is
 * delivered is then filtered per message by `checkForward`, so a viewer of
 * site A never receives site B's messages (Mosquitto's ACL does the same on
 * delivery).
 */
function checkOperatorSubscribe(op: OperatorIdentity, filter: string): Decision {
  const refuse = () =>
    deny(
      `operator ${op.id} may subscribe to ${ROOT}/{site}/{device}/{status|telemetry|state|cmd-result|config}, ${topics.cloudStatus}, ${ROOT}/cloud/alerts/{site}/+ and ${ROOT}/cloud/events/{site}/{device}, not ${filter}`,
    );
  if (filter === topics.cloudStatus) return ALLOW;
  const levels = filter.split("/");
  if (levels.length < 5 || levels[0] !== ROOT_LEVELS[0] || levels[1] !== ROOT_LEVELS[1]) return refuse();
  const siteOk = (site: string) => site === "+" || grantsSite(op, site);
  if (levels[2] === "cloud") {
    const [, , , feed, site, last, ...extra] = levels as string[];
    if ((feed !== "alerts" && feed !== "events") || !site || !last || extra.length > 0) return refuse();
    if (last === "#") return refuse();
    return siteOk(site) ? ALLOW : deny(`operator ${op.id} is not granted site ${site}`);
  }
  const [, , site, device, channel, ...extra] = levels as string[];
  if (!site || !device || !channel || extra.length > 0 || device === "#") return refuse();
  if (!OPERATOR_READ.has(channel)) return refuse();
  return siteOk(site) ? ALLOW : deny(`operator ${op.id} is not granted site ${site}`);
}

/**
 * A message about to be delivered to a subscriber: operators receive only
 * their granted sites' messages (their filters may hold `+` for the site).
 */
export function checkForward(identity: Identity, topic: string): Decision {
  if (identity.kind !== "operator") return ALLOW;
  if (topic === topics.cloudStatus) return ALLOW;
  const alert = parseAlertTopic(topic);
  const site = alert?.site ?? parseTopic(topic)?.site ?? cloudEventsSite(topic);
  if (site === undefined || !grantsSite(identity, site)) {
    return deny(`operator ${identity.id} is not granted the site of ${topic}`);
  }
  return ALLOW;
}

/** The site of a `topics.eventsMeta` topic (`paylane/v1/cloud/events/{site}/{device}`), else undefined. */
function cloudEventsSite(topic: string): string | undefined {
  const levels = topic.split("/");
  if (levels.length !== 6 || levels[0] !== ROOT_LEVELS[0] || levels[1] !== ROOT_LEVELS[1]) return undefined;
  const [, , cloud, events, site, device] = levels as [string, string, string, string, string, string];
  if (cloud !== "cloud" || events !== "events") return undefined;
  const valid = ID_PATTERN.test(site) && !RESERVED_SITES.has(site) && ID_PATTERN.test(device);
  return valid ? site : undefined;
}

function checkDeviceSubscribe(own: DeviceAddress, filter: string): Decision {
  if (filter === topics.deviceTree(own) || filter === topics.cloudStatus) return ALLOW;
  if (isOwnCommandWildcard(own, filter)) return ALLOW;
  // Any other filter must be an exact topic: parseTopic refuses `+` and `#`,
  // so no wildcard can reach another site or device.
  const parsed = parseTopic(filter);
  if (parsed && sameDevice(parsed, own) && DEVICE_SUBSCRIBE.has(parsed.channel)) return ALLOW;
  if (parsed && sameDevice(parsed, own) && DEVICE_READ_BACK.has(parsed.channel)) return ALLOW;
  return deny(
    `device ${label(own)} may subscribe only to its own ack, config, errors, status, cmd/+, cmd/{name}, # and to ${topics.cloudStatus}, not ${filter}`,
  );
}

/** `paylane/v1/{site}/{device}/cmd/+`, compared level by level with the builder's `cmd` topic. */
function isOwnCommandWildcard(own: DeviceAddress, filter: string): boolean {
  const template = topics.cmd(own, CMD_PROBE).split("/");
  const levels = filter.split("/");
  if (levels.length !== template.length || levels.at(-1) !== "+") return false;
  return levels.slice(0, -1).every((level, i) => level === template[i]);
}

function checkServiceSubscribe(role: ServiceRole, filter: string): Decision {
  if (role !== "bridge") return deny(`service role ${role} may not subscribe`);
  const levels = filter.split("/");
  // Literal `paylane` and `v1` levels, then at least one more: the whole v1
  // tree and nothing outside it (`#`, `+/v1/...`, `paylane/+/...`, `$SYS/...`).
  const underRoot = levels.length > ROOT_LEVELS.length && ROOT_LEVELS.every((level, i) => levels[i] === level);
  if (!underRoot) return deny(`the bridge may subscribe only under ${ROOT}/, not ${filter}`);
  return ALLOW;
}
