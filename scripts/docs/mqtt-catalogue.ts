/**
 * What the MQTT reference is made from: each v1 channel with the protocol's
 * own topic builder, its zod payload schema, its QoS and retain rule, and an
 * example payload (checked against the schema when the document is built);
 * and the roles whose access is read from the gateway's ACL functions.
 *
 * Nothing here is a schema or a topic string: topics come from
 * `topics` (protocol/src/topics.ts), payloads from protocol's zod schemas,
 * access from gateway/src/acl.ts. What is stated here is what the code keeps
 * in its publish calls (QoS) and the prose around each channel.
 */
import {
  AckSchema,
  AlertSchema,
  CloudStatusSchema,
  COMMAND_ARGS,
  CONFIG_SETTINGS,
  CommandResultSchema,
  CommandSchema,
  DesiredConfigSchema,
  type DeviceAddress,
  ENTRY_KINDS,
  EntrySchema,
  ErrorReportSchema,
  EventBatchSchema,
  EventsMetaSchema,
  type Identity,
  ReportedStateSchema,
  StatusSchema,
  TelemetrySchema,
  topics,
} from "@paylane/protocol";
import { z } from "zod";

/** Values the topic builders accept, replaced by `{site}`, `{device}`, … in a channel's address. */
export const PLACEHOLDERS = {
  site: "xsitex",
  device: "xdevicex",
  command: "xcommandx",
  alert: "xalertx",
} as const;
export type Placeholder = keyof typeof PLACEHOLDERS;

/** Concrete values a channel is probed with against the ACL. */
export const OWN: DeviceAddress = { site: "venue-1", device: "kiosk-1" };
/** Another site's kiosk: what a role may not reach unless it holds every site. */
export const OTHER: DeviceAddress = { site: "venue-2", device: "kiosk-9" };
export interface Probe {
  site: string;
  device: string;
  command: string;
  alert: string;
}
const probeOf = (a: DeviceAddress): Probe => ({
  ...a,
  command: "reboot",
  alert: `device-offline_${a.site}_${a.device}`,
});
export const OWN_PROBE = probeOf(OWN);
export const OTHER_PROBE = probeOf(OTHER);

export type RoleId = "kiosk" | "cloud" | "viewer" | "operator" | "admin";

export interface RoleSpec {
  id: RoleId;
  title: string;
  /** The MQTT username this role connects with. */
  username: string;
  description: string;
  /** The identity the ACL is asked about, granted OWN's site (and device). */
  identity: Identity;
}

export const ROLES: readonly RoleSpec[] = [
  {
    id: "kiosk",
    title: "Kiosk (device)",
    username: "{site}/{device}",
    description: "A kiosk's daemon, with its own registry credentials; client id `paylane:{site}:{device}`.",
    identity: { kind: "device", address: OWN },
  },
  {
    id: "cloud",
    title: "Cloud (bridge service)",
    username: "svc:{id}",
    description: "The cloud's bridge: ingests what kiosks send, acks, commands and configures them.",
    identity: { kind: "service", id: "cloud", role: "bridge" },
  },
  {
    id: "viewer",
    title: "Operator role viewer",
    username: "ops:{id}",
    description: "A person or tool that reads the kiosks of its granted sites; publishes nothing.",
    identity: { kind: "operator", id: "ref-viewer", role: "viewer", sites: [OWN.site] },
  },
  {
    id: "operator",
    title: "Operator role operator",
    username: "ops:{id}",
    description: "A viewer that also sends commands and desired configuration to the kiosks of its sites.",
    identity: { kind: "operator", id: "ref-operator", role: "operator", sites: [OWN.site] },
  },
  {
    id: "admin",
    title: "Operator role admin",
    username: "ops:{id}",
    description: "An operator of every site.",
    identity: { kind: "operator", id: "ref-admin", role: "admin", sites: [] },
  },
];

export interface MessageSpec {
  /** The message's key in components.messages. */
  id: string;
  title: string;
  /** The zod schema the receiver validates this payload with. */
  schema: z.ZodType;
  /** Its key in components.schemas. */
  schemaId: string;
  /** An example payload; the build fails if the schema refuses it. */
  example: unknown;
  /** For a command: its name, whose `args` schema narrows the payload. */
  command?: string;
}

export interface ChannelSpec {
  id: string;
  /** The key of `topics` this channel's address is built with. */
  builder: keyof typeof topics;
  /** The concrete topic, from the protocol's builder. */
  topic: (p: Probe) => string;
  title: string;
  description: string;
  qos: 0 | 1;
  retained: "never" | "always" | "while firing";
  messages: MessageSpec[];
}

const AT = "2026-12-04T10:00:00.000Z";
const LATER = "2026-12-04T10:00:01.250Z";
const ENTRY_ID = "0b8a6a8e-3f0c-4b0e-9a4e-8d2f5f7a1c11";

const message = (
  id: string,
  title: string,
  schema: z.ZodType,
  example: unknown,
  extra?: Partial<MessageSpec>,
): MessageSpec => ({ id, title, schema, schemaId: id, example, ...extra });

const commandExamples: Record<string, Record<string, unknown>> = {
  unlock: { seconds: 5 },
  "replay-from": { from: 41 },
  "set-mode": { mode: "maintenance" },
};

/** Every command a kiosk knows, each its own message on `cmd/{command}`. */
const commandMessages: MessageSpec[] = Object.keys(COMMAND_ARGS).map((name) =>
  message(
    `command.${name}`,
    `Command ${name}`,
    CommandSchema,
    {
      id: `cmd-${name}-1`,
      args: commandExamples[name] ?? {},
      expiresAt: "2026-12-04T10:05:00.000Z",
      by: "alice",
    },
    { schemaId: "Command", command: name },
  ),
);

export const CHANNELS: readonly ChannelSpec[] = [
  {
    id: "status",
    builder: "status",
    topic: (p) => topics.status(p),
    title: "Kiosk status",
    description:
      "The kiosk's birth on every connect and its Last Will (`offline`, set at CONNECT) on loss. `session` grows on every connect, so a late Will of an older session is told apart from the birth in force.",
    qos: 1,
    retained: "always",
    messages: [
      message("Status", "Birth or Will", StatusSchema, {
        state: "online",
        version: "1.0.0",
        bootedAt: AT,
        protocol: 1,
        session: 7,
      }),
    ],
  },
  {
    id: "events",
    builder: "events",
    topic: (p) => topics.events(p),
    title: "Journal entries",
    description:
      "A batch of journal entries in seq order. `(device, seq)` is the idempotency key: the cloud commits each entry once and answers on `ack` only after the Postgres commit; an entry it refuses is named on `errors` and never blocks the others. Several cloud bridges share this channel through an MQTT 5 shared subscription `$share/{group}/paylane/v1/{site}/+/events` (CLOUD_SHARE_GROUP), so each batch reaches one of them.",
    qos: 1,
    retained: "never",
    messages: [
      message("EventBatch", "A batch of journal entries", EventBatchSchema, {
        device: OWN.device,
        entries: [
          {
            seq: 42,
            id: ENTRY_ID,
            kind: "checkin",
            at: AT,
            body: {
              memberId: "m-ada",
              credential: { type: "card", uid: "04A2B3C4" },
              replicaVersion: 12,
              offline: false,
            },
          },
        ],
      }),
    ],
  },
  {
    id: "ack",
    builder: "ack",
    topic: (p) => topics.ack(p),
    title: "Commit acknowledgement",
    description:
      "Every entry up to `upTo` is committed in Postgres; the kiosk may compact them. `conflicts`: seqs at which the cloud holds another entry than the kiosk's (both kept for ops).",
    qos: 1,
    retained: "never",
    messages: [message("Ack", "Committed up to a seq", AckSchema, { upTo: 42 })],
  },
  {
    id: "telemetry",
    builder: "telemetry",
    topic: (p) => topics.telemetry(p),
    title: "Kiosk telemetry",
    description: "Periodic health: reader, printer paper, disk, temperature, journal backlog, ack latency.",
    qos: 0,
    retained: "never",
    messages: [
      message("Telemetry", "Health report", TelemetrySchema, {
        at: AT,
        backlog: 0,
        ackedUpTo: 42,
        lastSeq: 42,
        replicaVersion: 12,
        reader: "ok",
        uptimeSeconds: 3600,
        printer: { state: "ok", paper: "near-end" },
        cloudLink: "online",
        mode: "in-service",
        configVersion: 3,
      }),
    ],
  },
  {
    id: "config",
    builder: "config",
    topic: (p) => topics.config(p),
    title: "Desired configuration",
    description:
      "The settings the cloud or an operator wants in force; each setting is checked on its own, so one bad field is refused while the others apply. The kiosk answers on `state`. The gateway stamps `by` with the operator's id.",
    qos: 1,
    retained: "always",
    messages: [
      message("DesiredConfig", "Desired settings", DesiredConfigSchema, {
        version: 3,
        settings: { idleTimeoutSeconds: 30, mode: "in-service", screenTexts: { welcome: "Tap your card" } },
        by: "alice",
        at: AT,
      }),
    ],
  },
  {
    id: "state",
    builder: "state",
    topic: (p) => topics.state(p),
    title: "Reported configuration",
    description:
      "What the kiosk applied of the desired configuration, the version it answers and every field it refused.",
    qos: 1,
    retained: "always",
    messages: [
      message("ReportedState", "Applied settings", ReportedStateSchema, {
        version: 3,
        applied: { idleTimeoutSeconds: 30, mode: "in-service" },
        rejected: [{ field: "logLevel", reason: "expected one of fatal, error, warn, info, debug, trace" }],
        at: LATER,
      }),
    ],
  },
  {
    id: "command",
    builder: "cmd",
    topic: (p) => topics.cmd(p, p.command),
    title: "Command to a kiosk",
    description:
      "One command; the kiosk answers on `cmd-result` (`accepted`, then `done`, `failed` or `expired`). A command delivered twice runs once. Never retained. The gateway stamps `by` with the operator's id.",
    qos: 1,
    retained: "never",
    messages: commandMessages,
  },
  {
    id: "cmd-result",
    builder: "cmdResult",
    topic: (p) => topics.cmdResult(p),
    title: "Command result",
    description:
      "Each step of a command: `accepted`, then `done` (with a result), `failed` or `expired` (with a reason).",
    qos: 1,
    retained: "never",
    messages: [
      message("CommandResult", "A step of a command", CommandResultSchema, {
        id: "cmd-reboot-1",
        command: "reboot",
        status: "done",
        at: LATER,
      }),
    ],
  },
  {
    id: "errors",
    builder: "errors",
    topic: (p) => topics.errors(p),
    title: "Refusals",
    description: "Why a message of the kiosk's (or one entry of a batch) was refused; counted in the cloud's metrics.",
    qos: 1,
    retained: "never",
    messages: [
      message("ErrorReport", "A refused message or entry", ErrorReportSchema, {
        code: "unknown-kind",
        reason: 'entries[0].kind: no schema for kind "teleport"',
        seq: 43,
        id: ENTRY_ID,
        at: LATER,
      }),
    ],
  },
  {
    id: "cloud-status",
    builder: "cloudStatus",
    topic: () => topics.cloudStatus,
    title: "Cloud status",
    description:
      "The cloud's own online state (Sparkplug STATE): a birth with a heartbeat while online, a Will of `offline`. A kiosk that hears neither heartbeat nor ack takes the cloud as unreachable even while the broker is up.",
    qos: 1,
    retained: "always",
    messages: [
      message("CloudStatus", "Cloud birth, heartbeat or Will", CloudStatusSchema, {
        state: "online",
        since: AT,
        instance: "cloud-a",
        heartbeatAt: LATER,
        heartbeatSeconds: 15,
      }),
    ],
  },
  {
    id: "cloud-events",
    builder: "eventsMeta",
    topic: (p) => topics.eventsMeta(p),
    title: "Committed-events feed",
    description:
      "What the cloud committed of a kiosk's journal, without bodies: no member id or card UID reaches viewers.",
    qos: 0,
    retained: "never",
    messages: [
      message("EventsMeta", "Committed entries (metadata)", EventsMetaSchema, {
        site: OWN.site,
        device: OWN.device,
        entries: [{ seq: 42, id: ENTRY_ID, kind: "checkin", at: AT }],
        committedAt: LATER,
      }),
    ],
  },
  {
    id: "cloud-alert",
    builder: "alert",
    topic: (p) => topics.alert(p.site, p.alert),
    title: "Alert",
    description:
      "One alert of a site, retained while it fires (a late subscriber sees what fires now); its resolution is published live and the retained copy cleared with an empty payload.",
    qos: 1,
    retained: "while firing",
    messages: [
      message("Alert", "Firing or resolved alert", AlertSchema, {
        key: `device-offline:${OWN.site}:${OWN.device}`,
        rule: "device-offline",
        severity: "warning",
        state: "firing",
        site: OWN.site,
        device: OWN.device,
        summary: `${OWN.device} at ${OWN.site} is offline`,
        firedAt: AT,
        at: AT,
      }),
    ],
  },
];

/**
 * Keys of `topics` that build subscription filters rather than one channel:
 * each is documented by the channels its filter matches.
 */
export const FILTER_BUILDERS: Partial<Record<keyof typeof topics, (p: Probe) => string>> = {
  cmdAll: (p) => topics.cmdAll(p),
  cmdPrefix: (p) => `${topics.cmdPrefix(p)}+`,
  deviceTree: (p) => topics.deviceTree(p),
  fleetConfig: () => topics.fleetConfig(),
  fleetCommands: () => topics.fleetCommands(),
  fleetEventsMeta: () => topics.fleetEventsMeta(),
  fleet: () => topics.fleet("status"),
  alerts: () => topics.alerts(),
};

/** Schemas the payloads refer to that are not a message's payload themselves. */
export const PART_SCHEMAS: Record<string, z.ZodType> = {
  Entry: EntrySchema,
  ...Object.fromEntries(Object.entries(ENTRY_KINDS).map(([kind, schema]) => [`EntryBody.${kind}`, schema])),
  ...Object.fromEntries(Object.entries(COMMAND_ARGS).map(([name, schema]) => [`CommandArgs.${name}`, schema])),
  ConfigSettings: z.object(CONFIG_SETTINGS).partial(),
};
