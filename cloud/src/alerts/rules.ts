/**
 * What each alert rule means: its severity, whether it is event-like (it
 * resolves after a while or by an operator, not by a condition clearing),
 * and, for the rules a kiosk's telemetry decides, whether a report says the
 * condition holds. Pure functions: the notifier (notifier.ts) keeps the state.
 */
import type { AlertRule, AlertSeverity, Telemetry } from "@paylane/protocol";

export interface AlertThresholds {
  /** A device offline this long raises device-offline. */
  deviceOfflineMs: number;
  /** More unacked journal entries than this raises backlog-high. */
  backlogMax: number;
  /** An oldest unacked entry older than this (seconds) raises oldest-unacked-high. */
  oldestUnackedSeconds: number;
  /** Offline exposure at or above this percentage of the kiosk's cap raises exposure-near-cap. */
  exposurePercent: number;
  /** Event-like alerts resolve this long after they fired (an operator may resolve them sooner). */
  eventResolveMs: number;
}

export const SEVERITY: Record<AlertRule, AlertSeverity> = {
  "device-offline": "critical",
  "paper-low": "warning",
  "paper-out": "critical",
  "reader-disconnected": "critical",
  "printer-disconnected": "warning",
  "backlog-high": "warning",
  "oldest-unacked-high": "warning",
  "exposure-near-cap": "warning",
  "staff-called": "warning",
  "journal-rolled-back": "critical",
  "ledger-exception": "critical",
};

/** Rules raised by something that happened (a journal entry, a ledger row), not by a state that can clear. */
export const EVENT_RULES: ReadonlySet<AlertRule> = new Set(["staff-called", "journal-rolled-back", "ledger-exception"]);

export const isEventLike = (rule: AlertRule) => EVENT_RULES.has(rule);

export interface Condition {
  rule: AlertRule;
  /** Whether the condition holds now; undefined: the report does not say (keep the alert as it is). */
  holds: boolean | undefined;
  summary: string;
  detail: Record<string, unknown>;
}

/** Each telemetry-driven rule's condition in one kiosk's report. */
export function telemetryConditions(device: string, t: Telemetry, th: AlertThresholds): Condition[] {
  const printer = t.printer ?? undefined;
  // "unknown" paper (a printer that does not answer) says nothing about the roll: printer-disconnected covers it.
  const paperKnown = printer !== undefined && printer.paper !== "unknown";
  const oldest = t.oldestUnackedAgeSeconds;
  const exposure = t.payments;
  const exposureShare = exposure && exposure.cap > 0 ? exposure.offlineExposure / exposure.cap : undefined;
  return [
    {
      rule: "paper-low",
      holds: paperKnown ? printer.paper === "near-end" : printer === undefined ? false : undefined,
      summary: `${device}: receipt paper is running low`,
      detail: { paper: printer?.paper ?? null },
    },
    {
      rule: "paper-out",
      holds: paperKnown ? printer.paper === "out" : printer === undefined ? false : undefined,
      summary: `${device}: receipt paper is out`,
      detail: { paper: printer?.paper ?? null },
    },
    {
      rule: "reader-disconnected",
      holds: t.reader === "disconnected",
      summary: `${device}: card reader disconnected`,
      detail: { reader: t.reader },
    },
    {
      rule: "printer-disconnected",
      holds: printer?.state === "disconnected",
      summary: `${device}: receipt printer disconnected`,
      detail: { printer: printer?.state ?? null, ...(printer?.lastError ? { lastError: printer.lastError } : {}) },
    },
    {
      rule: "backlog-high",
      holds: t.backlog > th.backlogMax,
      summary: `${device}: ${t.backlog} journal entries not yet acked by the cloud (threshold ${th.backlogMax})`,
      detail: { backlog: t.backlog, threshold: th.backlogMax },
    },
    {
      rule: "oldest-unacked-high",
      holds: oldest === undefined ? false : oldest > th.oldestUnackedSeconds,
      summary: `${device}: oldest unacked journal entry waited ${Math.round(oldest ?? 0)} s (threshold ${th.oldestUnackedSeconds} s)`,
      detail: { oldestUnackedAgeSeconds: oldest ?? 0, threshold: th.oldestUnackedSeconds },
    },
    {
      rule: "exposure-near-cap",
      holds: exposureShare === undefined ? false : exposureShare * 100 >= th.exposurePercent,
      summary: `${device}: offline payment exposure at ${Math.round((exposureShare ?? 0) * 100)} % of its cap`,
      detail: exposure
        ? {
            offlineExposure: exposure.offlineExposure,
            cap: exposure.cap,
            currency: exposure.currency,
            offlinePayments: exposure.offlinePayments,
            thresholdPercent: th.exposurePercent,
          }
        : {},
    },
  ];
}
