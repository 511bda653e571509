/**
 * The notifications service: turns what the bridge hears from the fleet
 * (status, telemetry, commits) into alerts, keeps each alert's state (in
 * memory for speed, in Postgres for restarts) and hands every change to the
 * sinks (delivery.ts, sinks.ts).
 *
 * One alert per key (alertKey: rule, site, device). A key fires once and is
 * de-duplicated while firing; it resolves when its condition clears (or, for
 * event-like rules, after ALERT_EVENT_RESOLVE_S or by an operator), and may
 * fire again. The bridge's listeners only update the in-memory state and
 * queue the rest, so they return at once: alerts never slow ingest.
 *
 * Where each rule comes from:
 *   device-offline              status: offline (not a stale Will) for ALERT_DEVICE_OFFLINE_S; a birth cancels it
 *   paper-*, *-disconnected,
 *   backlog-high, oldest-*,
 *   exposure-near-cap           each telemetry report (rules.ts)
 *   staff-called,
 *   journal-rolled-back         journal entries committed to the inbox
 *   ledger-exception            ledger_exceptions rows (a journaled payment or top-up the
 *                               ledger would not post) and wallet overdrafts opened by offline payments
 * The last three are found by a scan after each commit that applied entries,
 * and every ALERT_SCAN_INTERVAL_S (which also catches what a restart missed).
 */
import { randomUUID } from "node:crypto";
import type { EventEmitter } from "node:events";
import {
  type Alert,
  type AlertRule,
  alertKey,
  type DeviceAddress,
  realTimers,
  type Status,
  type Telemetry,
  type Timers,
} from "@paylane/protocol";
import type { Logger } from "pino";
import { Counter, Gauge, type Registry as MetricsRegistry } from "prom-client";
import type { FleetEvents } from "../bridge/bridge.ts";
import type { CloudConfig } from "../config.ts";
import type { Database } from "../db/database.ts";
import { DeliveryQueue, type RetryPolicy, sinkMetrics } from "./delivery.ts";
import { type AlertThresholds, isEventLike, SEVERITY, telemetryConditions } from "./rules.ts";
import { MqttSink, PagerDutySink, type Publish, type Sink, WebhookSink } from "./sinks.ts";
import { AlertStore } from "./store.ts";

export interface AlertSettings extends AlertThresholds {
  scanIntervalMs: number;
  retry: RetryPolicy;
  webhook?: { url: string; secret: string };
  pagerDuty?: { url: string; routingKey: string };
}

/** The longest wait between two tries of a sink. */
const MAX_RETRY_DELAY_MS = 5 * 60_000;
/** The event scan re-reads this far behind its mark: batches committing concurrently may land out of order. */
const SCAN_OVERLAP_MS = 60_000;
/** Commits come many a second on a busy fleet: the scan they ask for runs at most this often. */
const COMMIT_SCAN_GAP_MS = 1000;

export function alertSettings(c: CloudConfig): AlertSettings {
  return {
    deviceOfflineMs: c.ALERT_DEVICE_OFFLINE_S * 1000,
    backlogMax: c.ALERT_BACKLOG_MAX,
    oldestUnackedSeconds: c.ALERT_OLDEST_UNACKED_S,
    exposurePercent: c.ALERT_EXPOSURE_PERCENT,
    eventResolveMs: c.ALERT_EVENT_RESOLVE_S * 1000,
    scanIntervalMs: c.ALERT_SCAN_INTERVAL_S * 1000,
    retry: {
      maxAttempts: c.ALERT_SINK_MAX_ATTEMPTS,
      initialDelayMs: c.ALERT_SINK_RETRY_MS,
      maxDelayMs: Math.max(c.ALERT_SINK_RETRY_MS, MAX_RETRY_DELAY_MS),
    },
    webhook:
      c.ALERT_WEBHOOK_URL && c.ALERT_WEBHOOK_SECRET
        ? { url: c.ALERT_WEBHOOK_URL, secret: c.ALERT_WEBHOOK_SECRET }
        : undefined,
    pagerDuty: c.PAGERDUTY_ROUTING_KEY
      ? { url: c.PAGERDUTY_EVENTS_URL, routingKey: c.PAGERDUTY_ROUTING_KEY }
      : undefined,
  };
}

export interface AlertServiceOptions {
  db: Database;
  settings: AlertSettings;
  /** Publishes as the cloud (the bridge's publish): the live feed. */
  publish: Publish;
  logger: Logger;
  metrics: MetricsRegistry;
  now: () => Date;
  timers?: Timers;
  /** Only this site's alerts (tests sharing a database); default every site. */
  site?: string;
  /** Only these sites' alerts (CLOUD_SITES); with `site`, both count. */
  sites?: readonly string[];
  /**
   * Whether this instance records alert changes and notifies the sinks (default always). Every
   * cloud instance hears the same statuses and telemetry and so keeps the same firing set (its
   * API answers from it); only the leader (bridge/leader.ts) writes it down and notifies, so N
   * instances page once.
   */
  leads?: () => boolean;
}

/** What an operator's resolve did. */
export type OperatorResolve = "resolved" | "not-firing" | "not-event-like";

const deviceKey = (d: DeviceAddress) => `${d.site}/${d.device}`;

interface Raise {
  rule: AlertRule;
  site: string;
  device?: string;
  summary: string;
  detail?: Record<string, unknown>;
}

interface SourceEvent extends Raise {
  at: Date;
}

export class AlertService {
  readonly #o: AlertServiceOptions;
  readonly #timers: Timers;
  readonly #log: Logger;
  readonly store: AlertStore;
  readonly #queues: DeliveryQueue[];
  readonly #firing = new Map<string, Alert>();
  /** Event-like keys: the newest source event already taken into account (epoch ms). */
  #lastEvent = new Map<string, number>();
  /** Devices offline, not yet long enough: their device-offline timer. */
  readonly #offlineTimers = new Map<string, unknown>();
  /** Each device's current session (from its newest birth): an offline Will of an older one is stale. */
  readonly #sessions = new Map<string, number>();
  /** Firing event-like alerts: when they resolve by themselves. */
  readonly #expiries = new Map<string, unknown>();
  /** State writes, in order, so the database sees a key's changes in the order they happened. */
  #writes: Promise<void> = Promise.resolve();
  #scanning: Promise<void> | undefined;
  #scanAgain = false;
  #scanTimer: unknown;
  #soonTimer: unknown;
  #lastScanAt = Number.NEGATIVE_INFINITY;
  #stopped = false;
  readonly #fired: Counter<"rule">;
  readonly #resolved: Counter<"rule">;
  readonly #scanFailures: Counter;
  #detach: (() => void) | undefined;

  readonly #sites: readonly string[] | undefined;

  constructor(o: AlertServiceOptions) {
    this.#o = o;
    const sites = [...(o.site ? [o.site] : []), ...(o.sites ?? [])];
    this.#sites = sites.length > 0 ? [...new Set(sites)].sort() : undefined;
    this.#timers = o.timers ?? realTimers;
    this.#log = o.logger.child({ part: "alerts" });
    this.store = new AlertStore(o.db);
    const metrics = sinkMetrics(o.metrics);
    const sinks: Sink[] = [new MqttSink(o.publish)];
    if (o.settings.webhook) sinks.push(new WebhookSink(o.settings.webhook.url, o.settings.webhook.secret, o.now));
    if (o.settings.pagerDuty) sinks.push(new PagerDutySink(o.settings.pagerDuty.url, o.settings.pagerDuty.routingKey));
    this.#queues = sinks.map(
      (sink) => new DeliveryQueue(sink, { policy: o.settings.retry, timers: this.#timers, logger: this.#log, metrics }),
    );
    this.#fired = new Counter({
      name: "paylane_alerts_fired_total",
      help: "Alerts fired, by rule",
      labelNames: ["rule"],
      registers: [o.metrics],
    });
    this.#resolved = new Counter({
      name: "paylane_alerts_resolved_total",
      help: "Alerts resolved, by rule",
      labelNames: ["rule"],
      registers: [o.metrics],
    });
    this.#scanFailures = new Counter({
      name: "paylane_alert_scan_failures_total",
      help: "Scans for event-like alerts (staff calls, rollbacks, ledger exceptions) that failed; the next one retries",
      registers: [o.metrics],
    });
    const firing = this.#firing;
    new Gauge({
      name: "paylane_alerts_firing",
      help: "Alerts firing now",
      registers: [o.metrics],
      collect() {
        this.set(firing.size);
      },
    });
  }

  /** The sinks alerts go to, by name (mqtt, webhook, pagerduty). */
  get sinks(): string[] {
    return this.#queues.map((q) => q.sink.name);
  }

  /**
   * Loads what is firing (a restart forgets nothing and fires nothing again) and starts the periodic scan.
   * The live feed's retained copies are published again, as they were: a change saved just before the
   * last stop may not have reached the broker, and a broker without persistence may have lost them.
   * The webhook and PagerDuty get nothing: for them that would be firing again.
   */
  async start(): Promise<void> {
    const mqtt = this.#queues.find((q) => q.sink.name === "mqtt");
    for (const a of await this.store.firing(this.#sites)) {
      this.#firing.set(a.key, a);
      if (isEventLike(a.rule)) this.#armExpiry(a);
      if (this.#leads()) mqtt?.push({ id: randomUUID(), alert: a });
    }
    this.#lastEvent = await this.store.lastEvents();
    await this.store.mark(this.#markId, this.#o.now());
    this.#scheduleScan();
    this.#log.info({ firing: this.#firing.size, sinks: this.sinks }, "alerts started");
  }

  /** Listens to the bridge's fleet feed; each listener returns at once. */
  attach(fleet: EventEmitter<FleetEvents>): void {
    const onStatus = (d: DeviceAddress, s: Status) => this.#onStatus(d, s);
    const onTelemetry = (d: DeviceAddress, t: Telemetry) => this.#onTelemetry(d, t);
    const onCommitted = (outcome: { applied: number }) => {
      if (outcome.applied > 0) this.#scanSoon();
    };
    fleet.on("status", onStatus);
    fleet.on("telemetry", onTelemetry);
    fleet.on("committed", onCommitted);
    this.#detach = () => {
      fleet.off("status", onStatus);
      fleet.off("telemetry", onTelemetry);
      fleet.off("committed", onCommitted);
    };
  }

  /** The alerts firing now (this instance's view). */
  active(site?: string): Alert[] {
    return [...this.#firing.values()].filter((a) => site === undefined || a.site === site);
  }

  /** An operator resolves an event-like alert (a condition-driven one resolves when its condition clears). */
  resolveByOperator(key: string, operator: string): OperatorResolve {
    const a = this.#firing.get(key);
    if (!a) return "not-firing";
    if (!isEventLike(a.rule)) return "not-event-like";
    this.#resolve(key, `ops:${operator}`);
    return "resolved";
  }

  /** Resolves once every state change made so far is in the database (not waiting for any sink). */
  async saved(): Promise<void> {
    for (let writes = this.#writes; ; writes = this.#writes) {
      await writes;
      if (writes === this.#writes) return;
    }
  }

  /** Resolves when state writes, scans and every sink's queue are done (tests). */
  async idle(): Promise<void> {
    for (;;) {
      const writes = this.#writes;
      await this.#scanning;
      await writes;
      await Promise.all(this.#queues.map((q) => q.idle()));
      if (writes === this.#writes && !this.#scanning && this.#queues.every((q) => q.length === 0)) return;
    }
  }

  /** Stops listening and timing; waits for state writes (the database is closed next), drops undelivered changes. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#detach?.();
    this.#timers.clearTimeout(this.#scanTimer);
    this.#timers.clearTimeout(this.#soonTimer);
    for (const t of this.#offlineTimers.values()) this.#timers.clearTimeout(t);
    for (const t of this.#expiries.values()) this.#timers.clearTimeout(t);
    this.#offlineTimers.clear();
    this.#expiries.clear();
    await this.#scanning;
    await this.#writes;
    for (const q of this.#queues) q.stop();
  }

  get #markId(): string {
    return `events:${this.#sites?.join(",") ?? "*"}`;
  }

  #onStatus(d: DeviceAddress, s: Status): void {
    if (this.#stopped || !this.#mine(d.site)) return;
    const dk = deviceKey(d);
    if (s.state === "online") {
      if (s.session !== undefined) this.#sessions.set(dk, s.session);
      this.#timers.clearTimeout(this.#offlineTimers.get(dk));
      this.#offlineTimers.delete(dk);
      this.#resolve(alertKey("device-offline", d.site, d.device), "condition");
      return;
    }
    const current = this.#sessions.get(dk);
    // A Will of a session the device has since replaced (Sparkplug): the device is online.
    if (s.session !== undefined && current !== undefined && s.session < current) return;
    const key = alertKey("device-offline", d.site, d.device);
    if (this.#firing.has(key) || this.#offlineTimers.has(dk)) return;
    const since = s.at ? new Date(s.at) : this.#o.now();
    const due = since.getTime() + this.#o.settings.deviceOfflineMs - this.#o.now().getTime();
    this.#offlineTimers.set(
      dk,
      this.#timers.setTimeout(
        () => {
          this.#offlineTimers.delete(dk);
          const minutes = Math.round((this.#o.now().getTime() - since.getTime()) / 60_000);
          this.#fire({
            rule: "device-offline",
            site: d.site,
            device: d.device,
            summary: `${d.device} is offline (for ${minutes} min)`,
            detail: { offlineSince: since.toISOString() },
          });
        },
        Math.max(0, due),
      ),
    );
  }

  #onTelemetry(d: DeviceAddress, t: Telemetry): void {
    if (this.#stopped || !this.#mine(d.site)) return;
    for (const c of telemetryConditions(d.device, t, this.#o.settings)) {
      if (c.holds === true) {
        this.#fire({ rule: c.rule, site: d.site, device: d.device, summary: c.summary, detail: c.detail });
      } else if (c.holds === false) {
        this.#resolve(alertKey(c.rule, d.site, d.device), "condition");
      }
    }
  }

  /** Fires `r` unless its key is already firing (de-duplicated). Returns whether it fired. */
  #fire(r: Raise, eventAt?: Date): boolean {
    const key = alertKey(r.rule, r.site, r.device);
    if (this.#firing.has(key)) return false;
    const at = this.#o.now().toISOString();
    const alert: Alert = {
      key,
      rule: r.rule,
      severity: SEVERITY[r.rule],
      state: "firing",
      site: r.site,
      ...(r.device ? { device: r.device } : {}),
      summary: r.summary.slice(0, 1024),
      ...(r.detail ? { detail: r.detail } : {}),
      firedAt: at,
      at,
    };
    this.#firing.set(key, alert);
    this.#fired.inc({ rule: r.rule });
    if (isEventLike(r.rule)) this.#armExpiry(alert);
    this.#log.info({ key, severity: alert.severity }, "alert firing");
    this.#write(() => this.store.fire(alert, eventAt), alert);
    return true;
  }

  #resolve(key: string, by: string): void {
    const firing = this.#firing.get(key);
    if (!firing) return;
    this.#firing.delete(key);
    this.#timers.clearTimeout(this.#expiries.get(key));
    this.#expiries.delete(key);
    const at = this.#o.now().toISOString();
    const resolved: Alert = { ...firing, state: "resolved", resolvedAt: at, at };
    this.#resolved.inc({ rule: firing.rule });
    this.#log.info({ key, by }, "alert resolved");
    // An operator's resolve is written by the instance the request came to, leader or not; a resolve
    // the database already had (another instance was first) is not sent to the sinks again.
    this.#write(() => this.store.resolve(resolved, by), resolved, by.startsWith("ops:"));
  }

  /** Records the change, then queues it for every sink; a failed write is logged, the alert still goes out. */
  #write(persist: () => Promise<unknown>, alert: Alert, always = false): void {
    const delivery = { id: randomUUID(), alert };
    this.#writes = this.#writes.then(async () => {
      if (!always && !this.#leads()) return; // the leader records and notifies; this instance keeps its view only
      try {
        if ((await persist()) === false) return;
      } catch (err) {
        this.#log.error({ key: alert.key, err: (err as Error).message }, "alert state not saved");
      }
      if (!this.#stopped) for (const q of this.#queues) q.push(delivery);
    });
  }

  #armExpiry(a: Alert): void {
    const due = Date.parse(a.firedAt) + this.#o.settings.eventResolveMs - this.#o.now().getTime();
    this.#expiries.set(
      a.key,
      this.#timers.setTimeout(() => this.#resolve(a.key, "expiry"), Math.max(0, due)),
    );
  }

  #mine(site: string): boolean {
    return this.#sites === undefined || this.#sites.includes(site);
  }

  #leads(): boolean {
    return this.#o.leads?.() ?? true;
  }

  /** Looks for new event-like alerts now (coalesced: a scan asked for while one runs runs once more after it). */
  scan(): void {
    if (this.#stopped) return;
    if (this.#scanning) {
      this.#scanAgain = true;
      return;
    }
    this.#scanning = (async () => {
      do {
        this.#scanAgain = false;
        try {
          await this.#scanOnce();
        } catch (err) {
          this.#scanFailures.inc();
          this.#log.warn({ err: (err as Error).message }, "alert scan failed; the next one retries");
        }
      } while (this.#scanAgain && !this.#stopped);
    })().finally(() => {
      this.#scanning = undefined;
    });
  }

  /** A scan now, or (right after one) once COMMIT_SCAN_GAP_MS has passed since it. */
  #scanSoon(): void {
    if (this.#soonTimer !== undefined) return;
    const wait = this.#lastScanAt + COMMIT_SCAN_GAP_MS - this.#o.now().getTime();
    if (wait <= 0) {
      this.scan();
      return;
    }
    this.#soonTimer = this.#timers.setTimeout(() => {
      this.#soonTimer = undefined;
      this.scan();
    }, wait);
  }

  #scheduleScan(): void {
    this.#scanTimer = this.#timers.setTimeout(() => {
      this.scan();
      if (!this.#stopped) this.#scheduleScan();
    }, this.#o.settings.scanIntervalMs);
  }

  async #scanOnce(): Promise<void> {
    this.#lastScanAt = this.#o.now().getTime();
    const mark = await this.store.mark(this.#markId, this.#o.now());
    const from = new Date(mark.getTime() - SCAN_OVERLAP_MS);
    const events = await this.#sourceEvents(from);
    let newest = mark.getTime();
    for (const e of events) {
      if (this.#stopped) return;
      const key = alertKey(e.rule, e.site, e.device);
      const at = e.at.getTime();
      newest = Math.max(newest, at);
      if (at <= (this.#lastEvent.get(key) ?? Number.NEGATIVE_INFINITY)) continue; // already taken into account
      this.#lastEvent.set(key, at);
      if (!this.#fire(e, e.at)) {
        // de-duplicated: the firing alert covers it; remembered so it never fires the key later
        this.#writes = this.#writes.then(() =>
          this.store
            .sawEvent(key, e.at)
            .catch((err: Error) => this.#log.warn({ key, err: err.message }, "alert event mark not saved")),
        );
      }
    }
    await this.#writes;
    if (newest > mark.getTime() && this.#leads()) await this.store.setMark(this.#markId, new Date(newest));
  }

  /** Staff calls, journal rollbacks, ledger exceptions and overdrafts recorded since `from`, oldest first. */
  async #sourceEvents(from: Date): Promise<SourceEvent[]> {
    const sites = this.#sites ?? null;
    const { rows: entries } = await this.#o.db.query<{
      site_id: string;
      device_id: string;
      seq: number;
      kind: string;
      body: Record<string, unknown>;
      received_at: Date;
    }>(
      `SELECT site_id, device_id, seq, kind, body, received_at FROM inbox
       WHERE kind IN ('staff-call', 'journal-rolled-back') AND outcome = 'applied' AND received_at > $1
         AND ($2::text[] IS NULL OR site_id = ANY($2))
       ORDER BY received_at, site_id, device_id, seq`,
      [from, sites],
    );
    const { rows: exceptions } = await this.#o.db.query<{
      site_id: string;
      device_id: string;
      seq: number;
      reason: string;
      recorded_at: Date;
    }>(
      `SELECT site_id, device_id, seq, reason, recorded_at FROM ledger_exceptions
       WHERE recorded_at > $1 AND ($2::text[] IS NULL OR site_id = ANY($2))
       ORDER BY recorded_at, site_id, device_id, seq`,
      [from, sites],
    );
    const { rows: overdrafts } = await this.#o.db.query<{
      site_id: string;
      member_id: string;
      device_id: string | null;
      balance_at_open: number;
      opened_at: Date;
    }>(
      `SELECT o.site_id, o.member_id, l.origin_device AS device_id, o.balance_at_open, o.opened_at
       FROM wallet_overdrafts o JOIN ledger_entries l ON l.id = o.opened_by
       WHERE o.opened_at > $1 AND ($2::text[] IS NULL OR o.site_id = ANY($2))
       ORDER BY o.opened_at`,
      [from, sites],
    );
    const events: SourceEvent[] = [
      ...entries.map(
        (r): SourceEvent =>
          r.kind === "staff-call"
            ? {
                rule: "staff-called",
                site: r.site_id,
                device: r.device_id,
                summary: `${r.device_id}: a customer asked for staff (${String(r.body.source ?? "button")})`,
                detail: { seq: Number(r.seq), source: r.body.source },
                at: new Date(r.received_at),
              }
            : {
                rule: "journal-rolled-back",
                site: r.site_id,
                device: r.device_id,
                summary: `${r.device_id}: its journal was rolled back and continues after the cloud's seq ${String(r.body.cloudAckedSeq)}`,
                detail: { seq: Number(r.seq), ...r.body },
                at: new Date(r.received_at),
              },
      ),
      ...exceptions.map(
        (r): SourceEvent => ({
          rule: "ledger-exception",
          site: r.site_id,
          device: r.device_id,
          summary: `${r.device_id}: seq ${r.seq} was not posted to the ledger: ${r.reason}`,
          detail: { kind: "not-posted", seq: Number(r.seq), reason: r.reason },
          at: new Date(r.recorded_at),
        }),
      ),
      ...overdrafts.map(
        (r): SourceEvent => ({
          rule: "ledger-exception",
          site: r.site_id,
          ...(r.device_id ? { device: r.device_id } : {}),
          summary: `${r.device_id ?? r.site_id}: an offline payment overdrew member ${r.member_id}'s wallet (${r.balance_at_open})`,
          detail: { kind: "overdraft", memberId: r.member_id, balanceAtOpen: Number(r.balance_at_open) },
          at: new Date(r.opened_at),
        }),
      ),
    ];
    return events.sort((a, b) => a.at.getTime() - b.at.getTime());
  }
}
