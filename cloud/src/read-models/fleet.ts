/**
 * The fleet read models behind the ops console (issue 16): the fleet
 * overview (`GET /api/v1/devices`) and one device's page
 * (`GET /api/v1/devices/{site}/{device}`). REST, GraphQL and the dashboard
 * read the fleet through here, so they show the same thing.
 *
 * Where each part comes from:
 *  - online/offline and since when, last seen, version, exposure: the presence
 *    store (Redis or in process: live, what the bridge applied);
 *  - backlog, ack latency, reader, paper, mode, peripherals: the device's
 *    newest row of device_telemetry (one index probe per device shown);
 *  - config drift: device_config (protocol's configDrift);
 *  - acked seq, enrolment: device_streams, enrolled_devices;
 *  - status history: device_status_history (cloud/src/fleet/status-history.ts).
 *
 * Listing by device id (the default) is one keyset query for the page and one
 * presence read for its rows. A filter or sort on presence (`online`,
 * `sort=status|since`) reads the presence of every device in scope (one Redis
 * pipeline), then fetches the rows of the page only.
 */
import {
  configDrift,
  type DesiredConfig,
  type DeviceAddress,
  ExposureSchema,
  type ReportedState,
  type Telemetry,
} from "@paylane/protocol";
import { z } from "zod";
import type { Queryable } from "../db/database.ts";
import { statusHistory } from "../fleet/status-history.ts";
import type { DevicePresence, PresenceStore } from "../presence/presence-store.ts";

// ---- the answers' shapes (also the OpenAPI documentation's) ------------------------------------

const IsoTime = z.iso.datetime({ offset: true });

export const FLEET_SORTS = ["device", "status", "since"] as const;
export type FleetSort = (typeof FLEET_SORTS)[number];

export const FleetQuerySchema = z.object({
  site: z.string().optional().describe("only this site (required for a token scoped to several sites)"),
  online: z
    .enum(["true", "false"])
    .optional()
    .describe("true: only kiosks online now; false: only offline or never seen"),
  search: z.string().max(100).optional().describe("part of the device id or of its site's id or name"),
  sort: z
    .enum(FLEET_SORTS)
    .default("device")
    .describe(
      "device: by site and device id; status: offline and unknown first, longest down first; since: newest status change first",
    ),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  before: z.string().optional().describe("the previous page's next"),
});
export type FleetQueryParams = z.infer<typeof FleetQuerySchema>;

export const FleetDeviceSchema = z.object({
  site: z.string(),
  device: z.string(),
  state: z.enum(["online", "offline", "unknown"]),
  lastSeen: IsoTime.nullable().describe("when the device last said anything"),
  statusAt: IsoTime.nullable().describe("since when it is in `state`"),
  version: z.string().nullable().describe("the daemon's version (its birth, else its newest telemetry)"),
  bootedAt: IsoTime.nullable(),
  payments: ExposureSchema.extend({ at: IsoTime }).nullable(),
  ackedSeq: z.number().int(),
  inRegistry: z.boolean(),
  enrolment: z
    .object({
      keyFingerprint: z.string().nullable(),
      enrolledAt: IsoTime,
      rotatedAt: IsoTime.nullable(),
      revokedAt: IsoTime.nullable(),
    })
    .nullable()
    .describe("null: registered by hand, not through a claim code"),
  telemetryAt: IsoTime.nullable().describe("the device's time of its newest telemetry; null: none yet"),
  backlog: z.number().int().nullable().describe("journal entries not acked yet"),
  ackLatencySeconds: z.number().nullable().describe("how long the oldest unacked entry has waited (0: none)"),
  reader: z.enum(["ok", "degraded", "disconnected"]).nullable(),
  printer: z.enum(["ok", "degraded", "disconnected"]).nullable().describe("null: no printer, or no telemetry"),
  paper: z.enum(["ok", "near-end", "out", "unknown"]).nullable(),
  mode: z.enum(["in-service", "maintenance", "out-of-service"]).nullable(),
  storage: z.enum(["ok", "failing"]).nullable(),
  drift: z.array(z.string()).describe("desired config fields not in force on the device"),
  desiredConfigVersion: z.number().int().nullable(),
  reportedConfigVersion: z.number().int().nullable().describe("null: the device never reported its config"),
});
export type FleetDevice = z.infer<typeof FleetDeviceSchema>;

export const FleetPageSchema = z.object({
  items: z.array(FleetDeviceSchema),
  next: z.string().nullable().describe("pass as `before` for the next page; null: this is the last"),
});
export type FleetPage = z.infer<typeof FleetPageSchema>;

const Aggregate = z.object({ avg: z.number(), max: z.number(), min: z.number() }).nullable();

export const DevicePageSchema = z.object({
  device: FleetDeviceSchema,
  statusHistory: z
    .array(
      z.object({
        state: z.enum(["online", "offline"]),
        at: IsoTime,
        session: z.number().int().nullable(),
        version: z.string().nullable(),
      }),
    )
    .describe("online/offline transitions, newest first"),
  checkins: z.array(
    z.object({
      id: z.string(),
      seq: z.number().int(),
      memberId: z.string().nullable(),
      memberName: z.string().nullable(),
      credential: z.string().nullable(),
      at: IsoTime,
      offline: z.boolean(),
    }),
  ),
  alerts: z.array(
    z.object({
      key: z.string(),
      rule: z.string(),
      severity: z.string(),
      state: z.enum(["firing", "resolved"]),
      summary: z.string(),
      firedAt: IsoTime,
      resolvedAt: IsoTime.nullable(),
      resolvedBy: z.string().nullable(),
    }),
  ),
  commands: z.array(
    z.object({
      id: z.string(),
      command: z.string(),
      status: z.string(),
      requestedBy: z.string().nullable(),
      requestedAt: IsoTime,
      answeredAt: IsoTime.nullable(),
      reason: z.string().nullable(),
      result: z.unknown(),
    }),
  ),
  peripherals: z.object({
    reader: z
      .object({ state: z.enum(["ok", "degraded", "disconnected"]), stats: z.record(z.string(), z.number()).nullable() })
      .nullable(),
    printer: z
      .object({ state: z.string(), paper: z.string(), lastError: z.string().nullable() })
      .nullable()
      .describe("null: no printer (or no telemetry yet)"),
    gpio: z.object({ backend: z.string(), state: z.string(), lastError: z.string().nullable() }).nullable(),
    storage: z.enum(["ok", "failing"]).nullable(),
  }),
  telemetry: z.object({
    latest: z.record(z.string(), z.unknown()).nullable().describe("the newest report as the kiosk sent it"),
    receivedAt: IsoTime.nullable(),
    last24h: z.object({
      reports: z.number().int(),
      backlog: Aggregate,
      ackLatencySeconds: Aggregate,
      memoryFreeBytes: Aggregate,
      diskFreeBytes: Aggregate,
      cpuTemperatureC: Aggregate,
    }),
  }),
  config: z.object({
    desired: z.record(z.string(), z.unknown()).nullable(),
    reported: z.record(z.string(), z.unknown()).nullable(),
    drift: z.array(z.string()),
  }),
});
export type DevicePage = z.infer<typeof DevicePageSchema>;

// ---- the queries ---------------------------------------------------------------------------------

export interface FleetScope {
  /** One site; undefined: every site. */
  site?: string;
  /** Part of the device id or of its site's id or name (case-insensitive). */
  search?: string;
}

export interface FleetQuery extends FleetScope {
  online?: boolean;
  sort?: FleetSort;
  limit: number;
  /** The sort key of the last item of the previous page (decoded from its `next`). */
  after?: string[] | null;
}

/** The cursor shape of each sort: its key's fields, all text. */
export const SORT_KEY_LENGTH: Record<FleetSort, number> = { device: 2, status: 4, since: 3 };

export interface FleetReadModelOptions {
  db: Queryable;
  presence: PresenceStore;
  /** Whether the broker's registry holds the device (it may connect). */
  inRegistry: (device: DeviceAddress) => boolean;
  now?: () => Date;
}

interface DeviceRow {
  site_id: string;
  id: string;
  acked_seq: string | number | null;
  key_fingerprint: string | null;
  enrolled_at: Date | null;
  rotated_at: Date | null;
  revoked_at: Date | null;
  desired: DesiredConfig | null;
  reported: ReportedState | null;
  t_at: Date | null;
  backlog: number | null;
  oldest_unacked_age_s: number | null;
  reader: string | null;
  printer: { state?: string; paper?: string } | null;
  mode: string | null;
  storage: string | null;
  device_version: string | null;
}

/**
 * The overview's columns of a device: the joins are on primary keys, the
 * newest telemetry is one backward probe of device_telemetry_device_at.
 */
export const DEVICE_COLUMNS = `d.site_id, d.id, s.acked_seq, e.key_fingerprint, e.enrolled_at, e.rotated_at, e.revoked_at,
       c.desired, c.reported, t.at AS t_at, t.backlog, t.oldest_unacked_age_s, t.report ->> 'reader' AS reader,
       t.report -> 'printer' AS printer, t.report ->> 'mode' AS mode, t.report ->> 'storage' AS storage,
       t.report -> 'versions' ->> 'device' AS device_version`;
export const DEVICE_JOINS = `LEFT JOIN device_streams s ON s.site_id = d.site_id AND s.device_id = d.id
       LEFT JOIN enrolled_devices e ON e.site_id = d.site_id AND e.device_id = d.id
       LEFT JOIN device_config c ON c.site_id = d.site_id AND c.device_id = d.id
       LEFT JOIN LATERAL (
         SELECT at, backlog, oldest_unacked_age_s, report FROM device_telemetry dt
         WHERE dt.site_id = d.site_id AND dt.device_id = d.id ORDER BY at DESC LIMIT 1
       ) t ON true`;
/** $1 site (or null), $2 search pattern (or null). */
const SCOPE = `($1::text IS NULL OR d.site_id = $1)
         AND ($2::text IS NULL OR d.id ILIKE $2 OR d.site_id ILIKE $2 OR st.name ILIKE $2)`;

/** The overview page in device order: the SQL the API runs (the benchmark runs it bare too). */
export const OVERVIEW_BY_DEVICE_SQL = `SELECT ${DEVICE_COLUMNS}
       FROM devices d JOIN sites st ON st.id = d.site_id
       ${DEVICE_JOINS}
       WHERE ${SCOPE} AND ($3::text IS NULL OR (d.site_id, d.id) > ($3, $4::text))
       ORDER BY d.site_id, d.id LIMIT $5`;

const iso = (d: Date | null) => d?.toISOString() ?? null;

/**
 * A row as a fleet reader without money:read sees it: the kiosk's offline
 * payment exposure is money (finance's, as GET /api/v1/exposure), so it is null.
 */
export function withoutExposure<T extends { payments: unknown }>(row: T): T {
  return { ...row, payments: null };
}

/** `%term%` for ILIKE, with the term's own % _ and \ taken literally. */
export function likePattern(search: string | undefined): string | null {
  if (search === undefined || search.trim() === "") return null;
  return `%${search.trim().replace(/[\\%_]/g, (ch) => `\\${ch}`)}%`;
}

function oneOf<T extends string>(values: readonly T[], v: string | null | undefined): T | null {
  return v != null && (values as readonly string[]).includes(v) ? (v as T) : null;
}

const LINK_STATES = ["ok", "degraded", "disconnected"] as const;

export class FleetReadModel {
  readonly #o: FleetReadModelOptions;

  constructor(o: FleetReadModelOptions) {
    this.#o = o;
  }

  /** One page of the overview, and the cursor of the next (null: the last page). */
  async overview(q: FleetQuery): Promise<FleetPage> {
    const sort = q.sort ?? "device";
    if (sort === "device" && q.online === undefined) return this.#byDevice(q);
    return this.#byPresence(q, sort);
  }

  async #byDevice(q: FleetQuery): Promise<FleetPage> {
    const { rows } = await this.#o.db.query<DeviceRow>(OVERVIEW_BY_DEVICE_SQL, [
      q.site ?? null,
      likePattern(q.search),
      q.after?.[0] ?? null,
      q.after?.[1] ?? null,
      q.limit,
    ]);
    const presence = await this.#o.presence.get(rows.map((r) => ({ site: r.site_id, device: r.id })));
    const items = rows.map((r, i) => this.#item(r, presence[i]!));
    const last = items.at(-1);
    return { items, next: items.length === q.limit && last ? encodeKey([last.site, last.device]) : null };
  }

  /** Filters and sorts on presence: every device in scope is read from the presence store, the page from SQL. */
  async #byPresence(q: FleetQuery, sort: FleetSort): Promise<FleetPage> {
    const { rows: ids } = await this.#o.db.query<{ site_id: string; id: string }>(
      `SELECT d.site_id, d.id FROM devices d JOIN sites st ON st.id = d.site_id WHERE ${SCOPE} ORDER BY d.site_id, d.id`,
      [q.site ?? null, likePattern(q.search)],
    );
    const all = await this.#o.presence.get(ids.map((r) => ({ site: r.site_id, device: r.id })));
    const wanted = q.online === undefined ? all : all.filter((p) => (p.state === "online") === q.online);
    const keyed = wanted.map((p) => ({ p, key: sortKey(sort, p) }));
    keyed.sort((a, b) => compareKeys(a.key, b.key));
    const after = q.after;
    const start = after ? keyed.findIndex((k) => compareKeys(k.key, after) > 0) : 0;
    const page = start < 0 ? [] : keyed.slice(start, start + q.limit);
    const rows = await this.rows(page.map((k) => k.p));
    const items = page.map((k, i) => this.#item(rows[i]!, k.p));
    const more = start >= 0 && start + q.limit < keyed.length;
    return { items, next: more ? encodeKey(page.at(-1)!.key) : null };
  }

  /** The overview rows of these devices, in the same order (a device the table lacks: an empty row). */
  async rows(devices: readonly DeviceAddress[]): Promise<DeviceRow[]> {
    if (devices.length === 0) return [];
    const { rows } = await this.#o.db.query<DeviceRow>(
      `SELECT ${DEVICE_COLUMNS}
       FROM unnest($1::text[], $2::text[]) AS want(site_id, id)
       JOIN devices d ON d.site_id = want.site_id AND d.id = want.id
       ${DEVICE_JOINS}`,
      [devices.map((d) => d.site), devices.map((d) => d.device)],
    );
    const byKey = new Map(rows.map((r) => [`${r.site_id}/${r.id}`, r]));
    return devices.map((d) => byKey.get(`${d.site}/${d.device}`) ?? emptyRow(d));
  }

  #item(r: DeviceRow, p: DevicePresence): FleetDevice {
    const address = { site: r.site_id, device: r.id };
    return {
      site: r.site_id,
      device: r.id,
      state: p.state,
      lastSeen: p.lastSeen,
      statusAt: p.statusAt,
      version: p.version ?? r.device_version,
      bootedAt: p.bootedAt,
      payments: p.payments,
      ackedSeq: Number(r.acked_seq ?? 0),
      inRegistry: this.#o.inRegistry(address),
      enrolment: r.enrolled_at
        ? {
            keyFingerprint: r.key_fingerprint,
            enrolledAt: r.enrolled_at.toISOString(),
            rotatedAt: iso(r.rotated_at),
            revokedAt: iso(r.revoked_at),
          }
        : null,
      telemetryAt: iso(r.t_at),
      backlog: r.backlog,
      ackLatencySeconds: r.oldest_unacked_age_s,
      reader: oneOf(LINK_STATES, r.reader),
      printer: oneOf(LINK_STATES, r.printer?.state),
      paper: oneOf(["ok", "near-end", "out", "unknown"] as const, r.printer?.paper),
      mode: oneOf(["in-service", "maintenance", "out-of-service"] as const, r.mode),
      storage: oneOf(["ok", "failing"] as const, r.storage),
      drift: configDrift(r.desired, r.reported),
      desiredConfigVersion: r.desired?.version ?? null,
      reportedConfigVersion: r.reported?.version ?? null,
    };
  }

  /** One device's page; null when the cloud does not know the device. */
  async device(address: DeviceAddress, o: { events?: number } = {}): Promise<DevicePage | null> {
    const events = o.events ?? 20;
    const { rows: found } = await this.#o.db.query<DeviceRow>(
      `SELECT ${DEVICE_COLUMNS} FROM devices d ${DEVICE_JOINS} WHERE d.site_id = $1 AND d.id = $2`,
      [address.site, address.device],
    );
    const row = found[0];
    if (!row) return null;
    const since = new Date((this.#o.now?.() ?? new Date()).getTime() - 86_400_000);
    const [presence, history, checkins, alerts, commands, latest, summary] = await Promise.all([
      this.#o.presence.get([address]),
      statusHistory(this.#o.db, address, 50),
      this.#checkins(address, events),
      this.#alerts(address, events),
      this.#commands(address, events),
      this.#latest(address),
      this.#summary(address, since),
    ]);
    const report = latest?.report ?? null;
    return {
      device: this.#item(row, presence[0]!),
      statusHistory: history,
      checkins,
      alerts,
      commands,
      peripherals: {
        reader: report
          ? { state: report.reader, stats: (report.readerStats as Record<string, number> | undefined) ?? null }
          : null,
        printer: report?.printer
          ? { state: report.printer.state, paper: report.printer.paper, lastError: report.printer.lastError ?? null }
          : null,
        gpio: report?.gpio
          ? { backend: report.gpio.backend, state: report.gpio.state, lastError: report.gpio.lastError ?? null }
          : null,
        storage: report?.storage ?? null,
      },
      telemetry: {
        latest: report as Record<string, unknown> | null,
        receivedAt: iso(latest?.received_at ?? null),
        last24h: summary,
      },
      config: {
        desired: row.desired as Record<string, unknown> | null,
        reported: row.reported as Record<string, unknown> | null,
        drift: configDrift(row.desired, row.reported),
      },
    };
  }

  async #checkins(a: DeviceAddress, limit: number): Promise<DevicePage["checkins"]> {
    // The inbox's primary key (site, device, seq) walked backwards: no scan of the site's check-ins.
    const { rows } = await this.#o.db.query<{
      entry_id: string;
      seq: string | number;
      member_id: string | null;
      member_name: string | null;
      credential: string | null;
      at: Date;
      offline: boolean | null;
    }>(
      `SELECT i.entry_id, i.seq, i.body ->> 'memberId' AS member_id, m.name AS member_name,
              i.body -> 'credential' ->> 'type' AS credential, i.at, (i.body ->> 'offline')::boolean AS offline
       FROM inbox i LEFT JOIN members m ON m.site_id = i.site_id AND m.id = i.body ->> 'memberId'
       WHERE i.site_id = $1 AND i.device_id = $2 AND i.kind = 'checkin' AND i.outcome = 'applied'
       ORDER BY i.seq DESC LIMIT $3`,
      [a.site, a.device, limit],
    );
    return rows.map((r) => ({
      id: r.entry_id,
      seq: Number(r.seq),
      memberId: r.member_id,
      memberName: r.member_name,
      credential: r.credential,
      at: r.at.toISOString(),
      offline: r.offline ?? false,
    }));
  }

  async #alerts(a: DeviceAddress, limit: number): Promise<DevicePage["alerts"]> {
    const { rows } = await this.#o.db.query<{
      key: string;
      rule: string;
      severity: string;
      state: "firing" | "resolved";
      summary: string;
      fired_at: Date;
      resolved_at: Date | null;
      resolved_by: string | null;
    }>(
      `SELECT key, rule, severity, state, summary, fired_at, resolved_at, resolved_by FROM alert_states
       WHERE site_id = $1 AND device_id = $2 ORDER BY fired_at DESC LIMIT $3`,
      [a.site, a.device, limit],
    );
    return rows.map((r) => ({
      key: r.key,
      rule: r.rule,
      severity: r.severity,
      state: r.state,
      summary: r.summary,
      firedAt: r.fired_at.toISOString(),
      resolvedAt: iso(r.resolved_at),
      resolvedBy: r.resolved_by,
    }));
  }

  async #commands(a: DeviceAddress, limit: number): Promise<DevicePage["commands"]> {
    const { rows } = await this.#o.db.query<{
      id: string;
      name: string;
      status: string;
      requested_by: string | null;
      requested_at: Date;
      answered_at: Date | null;
      reason: string | null;
      result: unknown;
    }>(
      `SELECT id, name, status, requested_by, requested_at, answered_at, reason, result FROM device_commands
       WHERE site_id = $1 AND device_id = $2 ORDER BY requested_at DESC, id DESC LIMIT $3`,
      [a.site, a.device, limit],
    );
    return rows.map((r) => ({
      id: r.id,
      command: r.name,
      status: r.status,
      requestedBy: r.requested_by,
      requestedAt: r.requested_at.toISOString(),
      answeredAt: iso(r.answered_at),
      reason: r.reason,
      result: r.result ?? null,
    }));
  }

  async #latest(a: DeviceAddress): Promise<{ report: Telemetry; received_at: Date } | null> {
    const { rows } = await this.#o.db.query<{ report: Telemetry; received_at: Date }>(
      `SELECT report, received_at FROM device_telemetry WHERE site_id = $1 AND device_id = $2 ORDER BY at DESC LIMIT 1`,
      [a.site, a.device],
    );
    return rows[0] ?? null;
  }

  async #summary(a: DeviceAddress, since: Date): Promise<DevicePage["telemetry"]["last24h"]> {
    const cols = {
      backlog: "backlog",
      ackLatencySeconds: "oldest_unacked_age_s",
      memoryFreeBytes: "mem_free_bytes",
      diskFreeBytes: "disk_free_bytes",
      cpuTemperatureC: "cpu_temp_c",
    } as const;
    const aggs = Object.entries(cols).map(
      ([, c]) => `avg(${c})::float8 AS ${c}_avg, max(${c})::float8 AS ${c}_max, min(${c})::float8 AS ${c}_min`,
    );
    const { rows } = await this.#o.db.query<Record<string, number | null>>(
      `SELECT count(*)::int AS reports, ${aggs.join(", ")} FROM device_telemetry
       WHERE site_id = $1 AND device_id = $2 AND at >= $3`,
      [a.site, a.device, since],
    );
    const r = rows[0] ?? {};
    const agg = (c: string) => {
      const avg = r[`${c}_avg`];
      const max = r[`${c}_max`];
      const min = r[`${c}_min`];
      return avg == null || max == null || min == null ? null : { avg, max, min };
    };
    return {
      reports: Number(r.reports ?? 0),
      backlog: agg(cols.backlog),
      ackLatencySeconds: agg(cols.ackLatencySeconds),
      memoryFreeBytes: agg(cols.memoryFreeBytes),
      diskFreeBytes: agg(cols.diskFreeBytes),
      cpuTemperatureC: agg(cols.cpuTemperatureC),
    };
  }
}

function emptyRow(d: DeviceAddress): DeviceRow {
  return {
    site_id: d.site,
    id: d.device,
    acked_seq: null,
    key_fingerprint: null,
    enrolled_at: null,
    rotated_at: null,
    revoked_at: null,
    desired: null,
    reported: null,
    t_at: null,
    backlog: null,
    oldest_unacked_age_s: null,
    reader: null,
    printer: null,
    mode: null,
    storage: null,
    device_version: null,
  };
}

// ---- presence sorts: keys of text, compared field by field ---------------------------------------

const STATE_RANK = { offline: "0", unknown: "1", online: "2" } as const;
/** Sorts after every ISO time (a device never seen comes last among its state). */
const NEVER = "~";

function sortKey(sort: FleetSort, p: DevicePresence): string[] {
  if (sort === "status") return [STATE_RANK[p.state], p.statusAt ?? NEVER, p.site, p.device];
  if (sort === "since") return [invertTime(p.statusAt), p.site, p.device];
  return [p.site, p.device];
}

/** Newest first in ascending string order: the time's digits complemented (9 - d); never seen last. */
function invertTime(at: string | null): string {
  if (!at) return NEVER;
  return String(Date.parse(at))
    .padStart(15, "0")
    .replace(/\d/g, (d) => String(9 - Number(d)));
}

function compareKeys(a: readonly string[], b: readonly string[]): number {
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i] ?? "";
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

function encodeKey(key: readonly string[]): string {
  return Buffer.from(JSON.stringify(key)).toString("base64url");
}
