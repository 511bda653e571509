/**
 * The v1 topic tree. Every topic string in PayLane is built or parsed here;
 * nothing else concatenates topic levels.
 *
 *   paylane/v1/{site}/{device}/{channel}        device channels
 *   paylane/v1/{site}/{device}/cmd/{name}       commands to a device
 *   paylane/v1/cloud/status                     the cloud's own birth / will / heartbeat
 *   paylane/v1/cloud/alerts/{site}/{alert}      alerts raised by the cloud (retained while firing)
 */
export const PROTOCOL_VERSION = 1;
export const ROOT = "paylane/v1";

/** Channels a device publishes on. */
export const DEVICE_OUT = ["status", "events", "telemetry", "state", "cmd-result"] as const;
/** Channels the cloud publishes to a device. */
export const DEVICE_IN = ["ack", "config", "errors"] as const;

export type DeviceOutChannel = (typeof DEVICE_OUT)[number];
export type DeviceInChannel = (typeof DEVICE_IN)[number];
export type Channel = DeviceOutChannel | DeviceInChannel | "cmd";

export interface DeviceAddress {
  site: string;
  device: string;
}

/**
 * Site and device ids become topic levels, MQTT usernames and database keys,
 * so they are restricted to a set that is safe in all three: no `/`, `+`, `#`.
 */
export const ID_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;
/** `cloud` is the level of the cloud's own status topic. */
export const RESERVED_SITES = new Set(["cloud"]);

export function assertAddress(addr: DeviceAddress): void {
  if (!ID_PATTERN.test(addr.site) || RESERVED_SITES.has(addr.site)) {
    throw new TypeError(`invalid site id ${JSON.stringify(addr.site)}: expected ${ID_PATTERN} and not "cloud"`);
  }
  if (!ID_PATTERN.test(addr.device)) {
    throw new TypeError(`invalid device id ${JSON.stringify(addr.device)}: expected ${ID_PATTERN}`);
  }
}

function deviceTopic(addr: DeviceAddress, ...rest: string[]): string {
  assertAddress(addr);
  return [ROOT, addr.site, addr.device, ...rest].join("/");
}

export const topics = {
  status: (a: DeviceAddress) => deviceTopic(a, "status"),
  events: (a: DeviceAddress) => deviceTopic(a, "events"),
  ack: (a: DeviceAddress) => deviceTopic(a, "ack"),
  telemetry: (a: DeviceAddress) => deviceTopic(a, "telemetry"),
  // config (desired, retained) and state (what the device applied) are in the MQTT contract; issue 14 implements them.
  config: (a: DeviceAddress) => deviceTopic(a, "config"),
  state: (a: DeviceAddress) => deviceTopic(a, "state"),
  cmdResult: (a: DeviceAddress) => deviceTopic(a, "cmd-result"),
  errors: (a: DeviceAddress) => deviceTopic(a, "errors"),
  cmd: (a: DeviceAddress, name: string) => {
    if (!ID_PATTERN.test(name)) throw new TypeError(`invalid command name ${JSON.stringify(name)}`);
    return deviceTopic(a, "cmd", name);
  },
  /** Every command of one device: `…/cmd/+`. */
  cmdAll: (a: DeviceAddress) => deviceTopic(a, "cmd", "+"),
  /** `…/cmd/`: what a command topic starts with, before its name. */
  cmdPrefix: (a: DeviceAddress) => `${deviceTopic(a, "cmd")}/`,
  /** Everything under one device: what its ACL allows it to touch. */
  deviceTree: (a: DeviceAddress) => deviceTopic(a, "#"),
  /** Every device's desired config (the cloud watches what operators set). */
  fleetConfig: (site = "+") => [ROOT, site, "+", "config"].join("/"),
  /** Every command to every device of a site (or every site). */
  fleetCommands: (site = "+") => [ROOT, site, "+", "cmd", "+"].join("/"),
  /**
   * What the cloud committed of a device's journal, without bodies (seq, id,
   * kind, at): the events feed viewers may read. Published by the cloud.
   */
  eventsMeta: (a: DeviceAddress) => {
    assertAddress(a);
    return `${ROOT}/cloud/events/${a.site}/${a.device}`;
  },
  /** The events feed of every device of a site (or of every site). */
  fleetEventsMeta: (site = "+") => `${ROOT}/cloud/events/${site}/+`,
  /** One channel of every device of every site (or of one site). */
  fleet: (channel: DeviceOutChannel, site = "+") => [ROOT, site, "+", channel].join("/"),
  cloudStatus: `${ROOT}/cloud/status`,
  /**
   * One alert of a site, retained while it fires (a late subscriber sees what
   * is firing now); its resolution is published live and the retained copy
   * cleared. `alert` is the alert's key made safe for a topic level (alertTopicLevel).
   */
  alert: (site: string, alert: string) => {
    if (!ID_PATTERN.test(site) || RESERVED_SITES.has(site))
      throw new TypeError(`invalid site id ${JSON.stringify(site)}`);
    if (!ALERT_LEVEL.test(alert)) throw new TypeError(`invalid alert level ${JSON.stringify(alert)}`);
    return `${ROOT}/cloud/alerts/${site}/${alert}`;
  },
  /** Every alert of one site (or of every site). */
  alerts: (site = "+") => `${ROOT}/cloud/alerts/${site}/+`,
} as const;

/** An alert's topic level: its key with every character outside [A-Za-z0-9._:-] replaced. */
const ALERT_LEVEL = /^[A-Za-z0-9._:-]{1,200}$/;
export function alertTopicLevel(key: string): string {
  return key.replace(/[^A-Za-z0-9._:-]/g, "_").slice(0, 200);
}

/** The site of an alert topic, or null for anything else. */
export function parseAlertTopic(topic: string): { site: string; alert: string } | null {
  const levels = topic.split("/");
  if (levels.length !== 6 || `${levels[0]}/${levels[1]}` !== ROOT || levels[2] !== "cloud" || levels[3] !== "alerts") {
    return null;
  }
  const [, , , , site, alert] = levels as [string, string, string, string, string, string];
  if (!ID_PATTERN.test(site) || RESERVED_SITES.has(site) || !ALERT_LEVEL.test(alert)) return null;
  return { site, alert };
}

export interface ParsedTopic extends DeviceAddress {
  channel: Channel;
  /** The command name, for `cmd/{name}`. */
  command?: string;
}

const CHANNELS = new Set<string>([...DEVICE_OUT, ...DEVICE_IN]);

/** Parses a device topic; returns null for anything outside the v1 device tree. */
export function parseTopic(topic: string): ParsedTopic | null {
  const levels = topic.split("/");
  if (levels.length < 5 || `${levels[0]}/${levels[1]}` !== ROOT) return null;
  const [, , site, device, channel, command, ...extra] = levels as string[];
  if (!site || !device || !channel || extra.length > 0) return null;
  if (!ID_PATTERN.test(site) || RESERVED_SITES.has(site) || !ID_PATTERN.test(device)) return null;
  if (channel === "cmd") {
    if (command === undefined || !ID_PATTERN.test(command)) return null;
    return { site, device, channel, command };
  }
  if (command !== undefined || !CHANNELS.has(channel)) return null;
  return { site, device, channel: channel as Channel };
}

/** MQTT identity of a device: username `{site}/{device}`, client id `paylane:{site}:{device}`. */
export const deviceIdentity = {
  username: (a: DeviceAddress) => {
    assertAddress(a);
    return `${a.site}/${a.device}`;
  },
  clientId: (a: DeviceAddress) => {
    assertAddress(a);
    return `paylane:${a.site}:${a.device}`;
  },
  parseUsername(username: string): DeviceAddress | null {
    const parts = username.split("/");
    if (parts.length !== 2) return null;
    const [site, device] = parts as [string, string];
    if (!ID_PATTERN.test(site) || RESERVED_SITES.has(site) || !ID_PATTERN.test(device)) return null;
    return { site, device };
  },
};
