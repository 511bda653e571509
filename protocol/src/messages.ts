/**
 * Payload schemas for every v1 topic. Payloads are UTF-8 JSON.
 * Types are inferred from the schemas, so the wire and the code cannot drift.
 */
import { z } from "zod";
import { ExposureSchema, PaymentBodySchema, TerminalSettlementBodySchema, TopupBodySchema } from "./payments.ts";
import { PROTOCOL_VERSION } from "./topics.ts";

const isoTime = z.iso.datetime({ offset: true });
const seq = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);

/**
 * `session`: the device's connection counter, one more on every CONNECT and
 * never reused (kept in the journal's database). The birth and the Will of a
 * connection carry the same number, so a Will the broker fires late, for a
 * connection the device has already replaced, is older than the birth in
 * force and is ignored (Sparkplug B's bdSeq).
 */
const session = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

/** `status` (retained): birth on connect, Last Will on loss. */
export const StatusSchema = z.discriminatedUnion("state", [
  z.object({
    state: z.literal("online"),
    version: z.string().min(1),
    bootedAt: isoTime,
    protocol: z.literal(PROTOCOL_VERSION),
    /** Absent from devices older than issue 14: such a birth is always taken as current. */
    session: session.optional(),
  }),
  /** The Will (no `at`: the broker publishes it) or a clean shutdown's own goodbye (with `at`). */
  z.object({ state: z.literal("offline"), at: isoTime.optional(), session: session.optional() }),
]);
export type Status = z.infer<typeof StatusSchema>;

/**
 * `paylane/v1/cloud/status` (retained): Sparkplug-style STATE of the cloud
 * (the host application). While online the cloud republishes it every
 * `heartbeatSeconds` with a fresh `heartbeatAt`: a kiosk that hears neither a
 * heartbeat nor an ack for a while takes the cloud as unreachable even though
 * its own TCP session is up (a hung cloud keeps its broker session for a
 * keepalive and a half).
 */
export const CloudStatusSchema = z.discriminatedUnion("state", [
  z.object({
    state: z.literal("online"),
    since: isoTime,
    instance: z.string().min(1),
    heartbeatAt: isoTime.optional(),
    heartbeatSeconds: z.number().positive().max(3600).optional(),
  }),
  z.object({ state: z.literal("offline") }),
]);
export type CloudStatus = z.infer<typeof CloudStatusSchema>;

/**
 * One journal entry as it travels. The envelope is validated first; the body
 * is validated against the schema of its `kind`, so an unknown kind or a bad
 * body is refused for that entry alone.
 */
export const EntrySchema = z.object({
  seq,
  id: z.uuid(),
  kind: z.string().min(1).max(64),
  at: isoTime,
  body: z.record(z.string(), z.unknown()),
});
export type Entry = z.infer<typeof EntrySchema>;

export const CredentialSchema = z.discriminatedUnion("type", [
  /** NFC card UID, upper-case hex, 4, 7 or 10 bytes. */
  z.object({ type: z.literal("card"), uid: z.string().regex(/^([0-9A-F]{8}|[0-9A-F]{14}|[0-9A-F]{20})$/) }),
  z.object({ type: z.literal("code"), code: z.string().regex(/^[A-Z0-9]{4,16}$/) }),
]);
export type Credential = z.infer<typeof CredentialSchema>;

/** Body of a `checkin` entry: the kiosk's local decision and what it rested on. */
export const CheckinBodySchema = z.object({
  memberId: z.string().min(1).max(128),
  credential: CredentialSchema,
  /** Version of the member replica the decision was made against. */
  replicaVersion: z.number().int().min(0),
  /** True when the kiosk could not see the cloud at decision time. */
  offline: z.boolean(),
});
export type CheckinBody = z.infer<typeof CheckinBodySchema>;

/** Someone pressed the kiosk's "call staff" button: an alert for ops, delivered like any entry (exactly once). */
export const StaffCallBodySchema = z.object({
  source: z.enum(["button", "screen"]),
});
export type StaffCallBody = z.infer<typeof StaffCallBodySchema>;

/** The kiosk's journal was damaged and replaced: an alert for ops (the damaged file is kept on the kiosk). */
export const JournalRecoveredBodySchema = z.object({
  damagedFile: z.string().min(1).max(256),
  /** The cloud's acked seq the new journal continues after. */
  continuedAfter: z.number().int().min(0),
  reason: z.string().max(1000),
});
export type JournalRecoveredBody = z.infer<typeof JournalRecoveredBodySchema>;

/**
 * The cloud holds seqs beyond the kiosk's journal (restored from an older
 * copy, or entries published with the kiosk's credentials): the journal moved
 * past the cloud's mark with this entry, the first of a new epoch. An alert for ops.
 */
export const JournalRolledBackBodySchema = z.object({
  epoch: z.number().int().min(1),
  /** The journal's last seq when the rollback was found. */
  localLastSeq: z.number().int().min(0),
  /** The cloud's contiguous acked seq then: this entry's seq is the next one. */
  cloudAckedSeq: z.number().int().min(0),
  /** How the kiosk learned the cloud's mark: the stream endpoint, or an ack beyond its journal. */
  detectedBy: z.enum(["stream", "ack"]),
});
export type JournalRolledBackBody = z.infer<typeof JournalRolledBackBodySchema>;

/** Every entry kind the v1 cloud applies, with its body schema. */
export const ENTRY_KINDS = {
  checkin: CheckinBodySchema,
  "staff-call": StaffCallBodySchema,
  "journal-recovered": JournalRecoveredBodySchema,
  "journal-rolled-back": JournalRolledBackBodySchema,
  payment: PaymentBodySchema,
  topup: TopupBodySchema,
  "terminal-settlement": TerminalSettlementBodySchema,
} as const;
export type EntryKind = keyof typeof ENTRY_KINDS;

/**
 * `events`: a batch of journal entries, in seq order. `device` repeats the
 * sender so a batch published on another device's topic (possible on a broker
 * without ACLs) is recognised and refused instead of corrupting that stream.
 */
export const EventBatchSchema = z.object({
  device: z.string().min(1),
  entries: z.array(z.unknown()).min(1).max(1000),
});
export type EventBatch = { device: string; entries: Entry[] };

/**
 * `ack`: every entry up to and including `upTo` is committed in Postgres.
 * `conflicts` lists seqs at which the cloud already held ANOTHER entry than
 * the one this device just sent (a forged publish with its credentials, or a
 * journal restored from an older copy). Both entries are kept; the device
 * must keep its own copy of each of these seqs until ops resolve them.
 */
export const AckSchema = z.object({
  upTo: z.number().int().min(0),
  conflicts: z.array(seq).max(1000).optional(),
});
export type Ack = z.infer<typeof AckSchema>;

export const ERROR_CODES = [
  "malformed-json",
  "invalid-batch",
  "invalid-entry",
  "unknown-kind",
  "invalid-body",
  "wrong-device",
  "unknown-device",
  "invalid-status",
  /** Another entry is held at this seq: both are kept for ops (see AckSchema.conflicts). */
  "seq-collision",
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** `errors`: why a message (or one entry of it) was refused. */
export const ErrorReportSchema = z.object({
  code: z.enum(ERROR_CODES),
  reason: z.string(),
  seq: seq.optional(),
  id: z.string().optional(),
  at: isoTime,
});
export type ErrorReport = z.infer<typeof ErrorReportSchema>;

/** `telemetry` (QoS 0): periodic health. */
export const TelemetrySchema = z.object({
  at: isoTime,
  backlog: z.number().int().min(0),
  ackedUpTo: z.number().int().min(0),
  lastSeq: z.number().int().min(0),
  replicaVersion: z.number().int().min(0),
  reader: z.enum(["ok", "degraded", "disconnected"]),
  /** The reader's wire health since the daemon started: what a flaky cable or a dying chip looks like. */
  readerStats: z
    .object({
      reads: z.number().int().min(0),
      timeouts: z.number().int().min(0),
      nacksSent: z.number().int().min(0),
      reinits: z.number().int().min(0),
      reconnects: z.number().int().min(0),
      /** Bytes of garbage plus frames with a bad checksum, length or ending. */
      discarded: z.number().int().min(0),
    })
    .optional(),
  uptimeSeconds: z.number().min(0),
  /** How long the oldest unacked journal entry has waited (0: nothing waiting). */
  oldestUnackedAgeSeconds: z.number().min(0).optional(),
  /**
   * The slowest publish → ack round trip of an `events` batch since the
   * previous telemetry (seconds); absent: no batch was acked meanwhile.
   */
  ackLatencySeconds: z.number().min(0).optional(),
  /** Since the member replica was last pulled; null: never. */
  replicaAgeSeconds: z.number().min(0).nullable().optional(),
  /** Seqs at which the cloud holds another entry than the kiosk's (ack.conflicts): a fault ops must resolve. */
  journalConflicts: z.number().int().min(0).optional(),
  /** "failing": the journal cannot make writes durable (disk full, I/O error) and check-ins are refused. */
  storage: z.enum(["ok", "failing"]).optional(),
  /** Offline payment exposure; absent on kiosks that take no payments. */
  payments: ExposureSchema.optional(),
  /** Absent or null: the kiosk has no printer. Paper near-end / out reach ops here. */
  printer: z
    .object({
      state: z.enum(["ok", "degraded", "disconnected"]),
      paper: z.enum(["ok", "near-end", "out", "unknown"]),
      lastError: z.string().optional(),
    })
    .nullable()
    .optional(),
  /** Absent or null: no card terminal. "disconnected" while its line is gone and being relinked (hot-plug). */
  terminal: z
    .object({
      type: z.enum(["zvt", "zvt-serial", "zvt-simulator"]),
      state: z.enum(["ready", "busy", "disconnected"]),
      /** Link attempts after the first: a terminal that keeps going away shows here. */
      reconnects: z.number().int().min(0),
    })
    .nullable()
    .optional(),
  /** How the kiosk sees its cloud: "unreachable" = broker up, but no heartbeat and no ack for the liveness window. */
  cloudLink: z.enum(["online", "unreachable", "broker-down"]).optional(),
  /** The operating mode set by `cmd/set-mode` or desired configuration. */
  mode: z.enum(["in-service", "maintenance", "out-of-service"]).optional(),
  /** The desired-configuration version in force (0: none received yet). */
  configVersion: z.number().int().min(0).optional(),
  memory: z
    .object({
      rssBytes: z.number().int().min(0),
      freeBytes: z.number().int().min(0),
      totalBytes: z.number().int().min(0),
    })
    .optional(),
  /** The filesystem of the journal. */
  disk: z.object({ freeBytes: z.number().int().min(0), totalBytes: z.number().int().min(0) }).optional(),
  /** null: the board has no thermal zone to read. */
  cpuTemperatureC: z.number().nullable().optional(),
  versions: z.object({ device: z.string(), node: z.string(), protocol: z.number().int() }).optional(),
  /** Absent or null: no GPIO roles configured. */
  gpio: z
    .object({
      backend: z.string(),
      state: z.enum(["ok", "degraded", "disconnected"]),
      lastError: z.string().optional(),
      /** A Firmata board's link: "reconnecting" while it is gone and being reopened. */
      board: z
        .object({
          state: z.enum(["connected", "reconnecting", "disconnected"]),
          attempts: z.number().int().min(0),
          lastError: z.string().optional(),
        })
        .optional(),
    })
    .nullable()
    .optional(),
});
export type Telemetry = z.infer<typeof TelemetrySchema>;

/**
 * `paylane/v1/cloud/events/{site}/{device}`: entries the cloud committed,
 * without their bodies (no member ids or card UIDs reach viewers).
 */
export const EventsMetaSchema = z.object({
  site: z.string(),
  device: z.string(),
  entries: z.array(z.object({ seq, id: z.string(), kind: z.string(), at: isoTime })),
  committedAt: isoTime,
});
export type EventsMeta = z.infer<typeof EventsMetaSchema>;

/** `GET …/devices/{device}/stream/entries`: a range of a device's seqs, at most 1000. */
export const STREAM_ENTRIES_MAX = 1000;
export const StreamEntriesQuerySchema = z
  .object({
    after: z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
    upTo: z.coerce.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  })
  .refine((q) => q.upTo > q.after && q.upTo - q.after <= STREAM_ENTRIES_MAX, {
    error: `upTo: must be above after, by at most ${STREAM_ENTRIES_MAX}`,
    path: ["upTo"],
  });

/** What the cloud holds at each seq of the range (`id` null: an entry it refused, kept in quarantine). */
export const StreamEntriesSchema = z.object({
  items: z.array(z.object({ seq, id: z.string().nullable() })),
});
export type StreamEntries = z.infer<typeof StreamEntriesSchema>;
