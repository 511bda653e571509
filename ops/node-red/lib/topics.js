/**
 * The few PayLane v1 topics the nodes use. Node-RED loads nodes with
 * `require`, so it cannot import the TypeScript protocol package; these
 * strings are a copy of protocol/src/topics.ts, and test/topics.test.ts
 * checks them against it so the two cannot drift.
 */
"use strict";

const ROOT = "paylane/v1";
/** Site and device ids: what protocol's ID_PATTERN accepts. */
const ID_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;
/** The commands a kiosk knows (protocol's COMMAND_NAMES). */
const COMMAND_NAMES = [
  "reboot",
  "self-test",
  "print-test",
  "unlock",
  "replay-from",
  "set-mode",
  "rotate-logs",
  "rotate-credentials",
];

/** A topic level: the id itself, or `+` when the filter is empty (every site / every device). */
function level(id) {
  if (id === undefined || id === null || id === "") return "+";
  if (!ID_PATTERN.test(id)) throw new TypeError(`invalid id ${JSON.stringify(id)}: expected ${ID_PATTERN}`);
  return id;
}

const topics = {
  ROOT,
  ID_PATTERN,
  COMMAND_NAMES,
  /** A kiosk's retained birth / Will; empty site or device: every one. */
  status: (site, device) => `${ROOT}/${level(site)}/${level(device)}/status`,
  /** A kiosk's answers to commands. */
  cmdResult: (site, device) => `${ROOT}/${level(site)}/${level(device)}/cmd-result`,
  /** A command to one kiosk (never a wildcard). */
  cmd(site, device, name) {
    if (!ID_PATTERN.test(site ?? "") || !ID_PATTERN.test(device ?? "")) {
      throw new TypeError(`a command needs a site and a device id, got ${JSON.stringify({ site, device })}`);
    }
    if (!COMMAND_NAMES.includes(name)) {
      throw new TypeError(`unknown command ${JSON.stringify(name)}: expected one of ${COMMAND_NAMES.join(", ")}`);
    }
    return `${ROOT}/${site}/${device}/cmd/${name}`;
  },
  /** What the cloud committed of kiosks' journals, without bodies. */
  eventsMeta: (site, device) => `${ROOT}/cloud/events/${level(site)}/${level(device)}`,
  /** Alerts of a site (or every site), retained while firing. */
  alerts: (site) => `${ROOT}/cloud/alerts/${level(site)}/+`,

  /** `{site, device, channel}` of a kiosk topic, or null. */
  parseDevice(topic) {
    const levels = topic.split("/");
    if (levels.length !== 5 || `${levels[0]}/${levels[1]}` !== ROOT || levels[2] === "cloud") return null;
    return { site: levels[2], device: levels[3], channel: levels[4] };
  },
  /** `{site, device}` of a committed-events topic, or null. */
  parseEventsMeta(topic) {
    const levels = topic.split("/");
    if (levels.length !== 6 || `${levels[0]}/${levels[1]}` !== ROOT || levels[2] !== "cloud" || levels[3] !== "events")
      return null;
    return { site: levels[4], device: levels[5] };
  },
};

/** Whether an MQTT topic filter (with `+` and `#`) matches a topic. */
function matches(filter, topic) {
  const f = filter.split("/");
  const t = topic.split("/");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return true;
    if (i >= t.length || (f[i] !== "+" && f[i] !== t[i])) return false;
  }
  return f.length === t.length;
}

module.exports = { ...topics, matches };
