/**
 * Alerts the cloud raises for ops (the notifications service). One alert has
 * a stable key, e.g. `device-offline:s1:k1`: it fires once, stays firing
 * (de-duplicated) while its condition holds, resolves, and may fire again.
 * Published retained on `paylane/v1/cloud/alerts/{site}/{key}` while firing,
 * and sent to the configured sinks (signed webhook, PagerDuty Events v2 with
 * the key as dedup_key).
 */
import { z } from "zod";

const isoTime = z.iso.datetime({ offset: true });

export const ALERT_RULES = [
  "device-offline",
  "paper-low",
  "paper-out",
  "reader-disconnected",
  "printer-disconnected",
  "backlog-high",
  "oldest-unacked-high",
  "exposure-near-cap",
  "staff-called",
  "journal-rolled-back",
  "ledger-exception",
] as const;
export type AlertRule = (typeof ALERT_RULES)[number];

export const ALERT_SEVERITIES = ["info", "warning", "critical"] as const;
export type AlertSeverity = (typeof ALERT_SEVERITIES)[number];

export const AlertSchema = z.object({
  key: z.string().min(1).max(200),
  rule: z.enum(ALERT_RULES),
  severity: z.enum(ALERT_SEVERITIES),
  state: z.enum(["firing", "resolved"]),
  site: z.string(),
  device: z.string().optional(),
  summary: z.string().max(1024),
  detail: z.record(z.string(), z.unknown()).optional(),
  firedAt: isoTime,
  resolvedAt: isoTime.optional(),
  /** When this message was made. */
  at: isoTime,
});
export type Alert = z.infer<typeof AlertSchema>;

/** The key of a rule's alert for one device (or a whole site when `device` is absent). */
export const alertKey = (rule: AlertRule, site: string, device?: string) =>
  device ? `${rule}:${site}:${device}` : `${rule}:${site}`;
