/**
 * Desired and reported configuration (AWS IoT shadow / Azure twin style):
 * the cloud or an operator publishes the desired settings, retained, on a
 * device's `config`; the device applies what it can, field by field, and
 * reports on its retained `state` what is in force, with the version it
 * answers and every field it refused and why. A config that does not parse
 * at all changes nothing: the last good one stays.
 */
import { z } from "zod";

const isoTime = z.iso.datetime({ offset: true });

export const KIOSK_MODES = ["in-service", "maintenance", "out-of-service"] as const;
export type KioskMode = (typeof KIOSK_MODES)[number];

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace"] as const;

/**
 * Each setting validated on its own, so one bad field is refused with its
 * reason while the others apply. The device owns what each one means.
 */
export const CONFIG_SETTINGS = {
  /** How long the screen waits on an unfinished interaction before returning to idle. */
  idleTimeoutSeconds: z.number().int().min(5).max(600),
  /** How often telemetry is published. */
  telemetryIntervalSeconds: z.number().int().min(1).max(3600),
  /** No heartbeat and no ack for this long while the broker is up: the cloud is unreachable. */
  cloudLivenessSeconds: z.number().int().min(3).max(300),
  /** Offline payment caps, in minor units; they can only lower what the cloud's site limits allow. */
  offlineCaps: z
    .object({
      perCardMinor: z.number().int().min(0).optional(),
      perKioskMinor: z.number().int().min(0).optional(),
    })
    .strict(),
  /** Texts shown on the kiosk screen. */
  screenTexts: z
    .object({
      welcome: z.string().max(200).optional(),
      maintenance: z.string().max(200).optional(),
      outOfService: z.string().max(200).optional(),
    })
    .strict(),
  mode: z.enum(KIOSK_MODES),
  logLevel: z.enum(LOG_LEVELS),
} as const;
export type ConfigSettingName = keyof typeof CONFIG_SETTINGS;
export type ConfigSettings = { [K in ConfigSettingName]?: z.infer<(typeof CONFIG_SETTINGS)[K]> };
export const CONFIG_SETTING_NAMES = Object.keys(CONFIG_SETTINGS) as ConfigSettingName[];

/** `config` (→ device, retained): the desired settings. */
export const DesiredConfigSchema = z.object({
  /** Grows with every change; the device reports the version it answers. */
  version: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  /** Unchecked here: each field is checked by its CONFIG_SETTINGS schema, alone. */
  settings: z.record(z.string(), z.unknown()),
  /** Who set it (an operator id, or "cloud"). */
  by: z.string().max(128).optional(),
  at: isoTime.optional(),
});
export type DesiredConfig = z.infer<typeof DesiredConfigSchema>;

/** Bounds of a report, so the state a kiosk answers with always fits in a packet whatever it was sent. */
export const MAX_REJECTED_REPORTED = 20;
const MAX_FIELD_CHARS = 64;
const MAX_REASON_CHARS = 300;
const clipReason = (reason: string) =>
  reason.length > MAX_REASON_CHARS ? `${reason.slice(0, MAX_REASON_CHARS - 1)}…` : reason;

export const RejectedSettingSchema = z.object({
  field: z.string().max(MAX_FIELD_CHARS),
  reason: z.string().max(MAX_REASON_CHARS),
});

/**
 * The refusals to report: at most MAX_REJECTED_REPORTED, the rest counted in
 * one last line, each reason clipped.
 */
export function boundRejected(rejected: ReadonlyArray<{ field: string; reason: string }>) {
  const clipped = rejected.map((r) => ({ field: r.field.slice(0, MAX_FIELD_CHARS), reason: clipReason(r.reason) }));
  if (clipped.length <= MAX_REJECTED_REPORTED) return clipped;
  const kept = clipped.slice(0, MAX_REJECTED_REPORTED - 1);
  const more = clipped.length - kept.length;
  return [...kept, { field: "…", reason: `${more} more fields refused` }];
}

/** `state` (device →, retained): what the device applied. */
export const ReportedStateSchema = z.object({
  /** The desired version this answers (0: none received yet). */
  version: z.number().int().min(0),
  /** The settings in force now (the last good value of each). */
  applied: z.record(z.string(), z.unknown()),
  /** Fields of that version refused, with why; their previous value stays in force. */
  rejected: z.array(RejectedSettingSchema).max(MAX_REJECTED_REPORTED),
  /** The whole desired config was refused (unreadable); nothing of it applied. */
  error: z.string().max(1000).optional(),
  at: isoTime,
});
export type ReportedState = z.infer<typeof ReportedStateSchema>;

/**
 * Checks each desired setting alone: unknown names and bad values are refused
 * with a reason naming the field; the rest is returned to apply.
 */
export function checkSettings(settings: Record<string, unknown>): {
  accepted: ConfigSettings;
  rejected: Array<{ field: string; reason: string }>;
} {
  const accepted: Record<string, unknown> = {};
  const rejected: Array<{ field: string; reason: string }> = [];
  let listedKnown = false;
  for (const [field, value] of Object.entries(settings)) {
    // Own keys only: `constructor` or `__proto__` must read as unknown, not as Object's members.
    const schema = Object.hasOwn(CONFIG_SETTINGS, field)
      ? (CONFIG_SETTINGS as Record<string, z.ZodType>)[field]
      : undefined;
    if (!schema) {
      // The known names once: a config of many unknown fields must not grow a report past a packet.
      const known = listedKnown ? "" : `; known: ${CONFIG_SETTING_NAMES.join(", ")}`;
      listedKnown = true;
      rejected.push({ field: field.slice(0, MAX_FIELD_CHARS), reason: `unknown setting${known}` });
      continue;
    }
    const parsed = schema.safeParse(value);
    if (parsed.success) accepted[field] = parsed.data;
    else rejected.push({ field, reason: clipReason(parsed.error.issues.map((i) => i.message).join("; ")) });
  }
  return { accepted: accepted as ConfigSettings, rejected };
}

/**
 * Fields whose reported value differs from the desired one (drift): the
 * device refused them or has not applied this version yet.
 */
export function configDrift(desired: DesiredConfig | null, reported: ReportedState | null): string[] {
  if (!desired) return [];
  if (!reported || reported.version < desired.version) return Object.keys(desired.settings);
  return Object.keys(desired.settings).filter(
    (k) => JSON.stringify(desired.settings[k]) !== JSON.stringify(reported.applied[k]),
  );
}
