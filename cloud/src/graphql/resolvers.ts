/**
 * The resolvers of /api/graphql: thin calls into the services and read
 * models REST uses (PaymentService, listConflicts, CommandDesk, ConfigDesk,
 * PresenceStore, LatestTelemetryStore, AlertStore/AlertService, the
 * read-models), each checking its permission and site first (access.ts).
 * A parent already authorized by site lends its site to its fields; each
 * field still checks its own permission (a Site's wallets need money:read).
 */
import {
  COMMAND_ARGS,
  COMMAND_NAMES,
  type DeviceAddress,
  describeIssues,
  isCommandName,
  LIVE_EVENT_PERMISSION,
  LIVE_EVENT_TYPES,
  type LiveEvent,
  type LiveEventType,
  type Registry,
  ROLE_PERMISSIONS,
  roleAllows,
} from "@paylane/protocol";
import { GraphQLError, GraphQLScalarType, Kind, type ValueNode } from "graphql";
import { Repeater } from "graphql-yoga";
import type { AlertService } from "../alerts/notifier.ts";
import { AlertStore } from "../alerts/store.ts";
import { type CursorField, cursor } from "../api/http.ts";
import { CONFLICT_KINDS, type ConflictKind, listConflicts } from "../conflicts.ts";
import type { Database } from "../db/database.ts";
import type { CommandDesk } from "../fleet/commands.ts";
import type { ConfigDesk } from "../fleet/device-config.ts";
import { LEDGER_KINDS, type LedgerEntry, type LedgerKind, type Wallet } from "../ledger/ledger.ts";
import type { PaymentService } from "../ledger/payment-service.ts";
import type { LiveFeed } from "../live/live-feed.ts";
import type { PresenceStore } from "../presence/presence-store.ts";
import { listJournaledAlerts } from "../read-models/alerts.ts";
import { listCheckins } from "../read-models/checkins.ts";
import {
  type DevicePage,
  FLEET_SORTS,
  type FleetDevice,
  FleetReadModel,
  type FleetSort,
  SORT_KEY_LENGTH,
} from "../read-models/fleet.ts";
import type { LatestTelemetryStore } from "../telemetry/latest-store.ts";
import {
  badInput,
  type Caller,
  gqlError,
  listingSite,
  mayTouch,
  need,
  needBearer,
  needSite,
  notFound,
} from "./access.ts";

export interface ResolverServices {
  db: Database;
  presence: PresenceStore;
  registry: () => Registry;
  payments: PaymentService;
  latestTelemetry: LatestTelemetryStore;
  now: () => Date;
  skewBoundSeconds: number;
  brokerConnected: () => boolean;
  alerts?: AlertService;
  commands?: CommandDesk;
  configs?: ConfigDesk;
  /** The live feed subscriptions read; absent: `live` answers SERVICE_UNAVAILABLE. */
  live?: LiveFeed;
  /** Writes the audit row of each mutation, refused ones included (absent: none). */
  audit?: (row: MutationAudit) => Promise<void>;
}

export interface Ctx {
  caller: Caller;
  /** The client's address, as the rate limiter and the audit trail see it. */
  address?: string | null;
}

/** One audit row for a mutation (AuditLog.write's record). */
export interface MutationAudit {
  at: Date;
  actor: string;
  action: string;
  target: string | null;
  site: string | null;
  address: string | null;
  status: number;
  detail: Record<string, unknown>;
}

/** What a mutation tells its audit row as it learns it (a refused one still names what it aimed at). */
interface AuditNote {
  target: string | null;
  site: string | null;
}

// The same bounds and defaults as the REST routes.
const MAX_PAGE = 500;
const MAX_FLEET_PAGE = 1000;
const MAX_CONFLICTS = 1000;
const MAX_EXPIRY_SECONDS = 7 * 86_400;
const MAX_WAIT_SECONDS = 60;
const IDEMPOTENCY_KEY = /^[A-Za-z0-9_-]{8,128}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/;

function limitArg(limit: number, max = MAX_PAGE): number {
  if (!Number.isInteger(limit) || limit < 1 || limit > max) throw badInput(`limit: expected 1 to ${max}`);
  return limit;
}

function after(before: string | null | undefined, shape: ReadonlyArray<CursorField>): Array<string | number> | null {
  if (before === null || before === undefined || before === "") return null;
  const key = cursor.decode(before, shape);
  if (!key) throw badInput("before: not a cursor returned by this API (use a page's next)");
  return key;
}

function page<T>(items: T[], limit: number, key: (last: T) => Array<string | number>) {
  const last = items.at(-1);
  return { items, next: items.length === limit && last ? cursor.encode(...key(last)) : null };
}

function isoArg(name: string, v: string | null | undefined): Date | undefined {
  if (v === null || v === undefined) return undefined;
  if (!ISO_TIME.test(v) || Number.isNaN(Date.parse(v)))
    throw badInput(`${name}: expected an ISO 8601 time with an offset, e.g. 2026-12-04T10:00:00Z`);
  return new Date(v);
}

function kindArg<K extends string>(name: string, v: string | null | undefined, kinds: readonly K[]): K | undefined {
  if (v === null || v === undefined) return undefined;
  if (!(kinds as readonly string[]).includes(v)) throw badInput(`${name}: expected one of ${kinds.join(", ")}`);
  return v as K;
}

/** Any JSON value, in and out. */
export const JSONScalar = new GraphQLScalarType({
  name: "JSON",
  serialize: (v) => v,
  parseValue: (v) => v,
  parseLiteral: function literal(ast: ValueNode, variables?: Record<string, unknown> | null): unknown {
    switch (ast.kind) {
      case Kind.STRING:
      case Kind.BOOLEAN:
        return ast.value;
      case Kind.INT:
      case Kind.FLOAT:
        return Number(ast.value);
      case Kind.NULL:
        return null;
      case Kind.LIST:
        return ast.values.map((v) => literal(v, variables));
      case Kind.OBJECT:
        return Object.fromEntries(ast.fields.map((f) => [f.name.value, literal(f.value, variables)]));
      case Kind.VARIABLE:
        return variables?.[ast.name.value];
      default:
        return undefined;
    }
  },
});

/** A device as the fleet overview (GET /api/v1/devices) shows it; its status history when read alone. */
type DeviceView = FleetDevice & { statusHistory?: DevicePage["statusHistory"] };

interface SiteView {
  id: string;
  name: string;
  timezone: string;
  currency: string;
}

export function createResolvers(s: ResolverServices) {
  const alertStore = new AlertStore(s.db);

  /**
   * A mutation that writes its audit row whatever its outcome, as REST's
   * audit trail does for a state-changing call: action `graphql <name>`, the
   * status its REST twin would answer (200, or the error's).
   */
  function audited<A>(name: string, run: (a: A, caller: Caller, note: AuditNote) => Promise<unknown>) {
    return async (_: unknown, a: A, ctx: Ctx) => {
      const note: AuditNote = { target: null, site: null };
      let status = 200;
      try {
        return await run(a, ctx.caller, note);
      } catch (err) {
        const code = err instanceof GraphQLError ? err.extensions.status : undefined;
        status = typeof code === "number" ? code : 500;
        throw err;
      } finally {
        const { operator } = ctx.caller;
        await s.audit?.({
          at: s.now(),
          actor: operator.sub,
          action: `graphql ${name}`,
          target: note.target,
          site: note.site,
          address: ctx.address ?? null,
          status,
          detail: operator.sid ? { session: operator.sid } : {},
        });
      }
    };
  }

  const fleet = new FleetReadModel({
    db: s.db,
    presence: s.presence,
    inRegistry: (d) => s.registry().hasDevice(d),
    now: s.now,
  });

  interface FleetArgs {
    online?: boolean | null;
    search?: string | null;
    sort?: string | null;
    limit: number;
    before?: string | null;
  }
  /** A page of the fleet overview, as GET /api/v1/devices answers it. */
  function devices(site: string | undefined, a: FleetArgs) {
    const sort = kindArg<FleetSort>("sort", a.sort, FLEET_SORTS) ?? "device";
    if (a.search && a.search.length > 100) throw badInput("search: at most 100 characters");
    return fleet.overview({
      site,
      search: a.search ?? undefined,
      online: a.online ?? undefined,
      sort,
      limit: limitArg(a.limit, MAX_FLEET_PAGE),
      after: after(a.before, Array(SORT_KEY_LENGTH[sort]).fill("text")) as string[] | null,
    });
  }

  /** One device with its status history; null when the cloud does not know it. */
  async function device(address: DeviceAddress): Promise<DeviceView | null> {
    const page = await fleet.device(address, { events: 0 });
    return page && { ...page.device, statusHistory: page.statusHistory };
  }

  async function sites(only: string[] | null, id?: string): Promise<SiteView[]> {
    const { rows } = await s.db.query<SiteView>(
      `SELECT id, name, timezone, currency FROM sites
       WHERE ($1::text[] IS NULL OR id = ANY($1)) AND ($2::text IS NULL OR id = $2) ORDER BY id`,
      [only, id ?? null],
    );
    return rows;
  }

  interface CheckinArgs {
    site?: string | null;
    device?: string | null;
    limit: number;
    before?: string | null;
  }
  async function checkins(site: string | undefined, a: CheckinArgs) {
    const limit = limitArg(a.limit);
    const key = after(a.before, ["timestamp", "uuid"]);
    const items = await listCheckins(s.db, {
      site,
      device: a.device ?? undefined,
      before: key ? { at: String(key[0]), id: String(key[1]) } : null,
      limit,
    });
    return page(items, limit, (l) => [l.at, l.id]);
  }

  interface ConflictArgs {
    kind?: string | null;
    since?: string | null;
    until?: string | null;
    limit: number;
  }
  async function conflicts(site: string | undefined, a: ConflictArgs) {
    const limit = limitArg(a.limit, MAX_CONFLICTS);
    const kind = kindArg<ConflictKind>("kind", a.kind, CONFLICT_KINDS);
    const until = isoArg("until", a.until) ?? s.now();
    const since = isoArg("since", a.since) ?? new Date(until.getTime() - 7 * 86_400_000);
    if (since >= until) throw badInput("since: must be before until");
    return listConflicts(s.db, { site, kind, since, until, limit, skewBoundSeconds: s.skewBoundSeconds });
  }

  async function wallets(site: string, a: { limit: number; before?: string | null }) {
    const limit = limitArg(a.limit);
    const key = after(a.before, ["text"]);
    const items = await s.payments.wallets(site, (key?.[0] as string | undefined) ?? null, limit);
    return page(items, limit, (l) => [l.memberId]);
  }

  async function ledger(site: string, kind: LedgerKind | null, a: { limit: number; before?: string | null }) {
    const limit = limitArg(a.limit);
    const key = after(a.before, ["timestamp", "uuid"]);
    const before = key ? { recordedAt: String(key[0]), id: String(key[1]) } : null;
    const items = await s.payments.ledger(site, kind, before, limit);
    return page(items, limit, (l) => [l.recordedAt, l.id]);
  }

  function commandsOf(): CommandDesk {
    if (!s.commands) throw gqlError("SERVICE_UNAVAILABLE", "this cloud runs no command service (no bridge)", 503);
    return s.commands;
  }

  /** The live events `caller` may receive of those asked for (all its role may read when none are named). */
  function liveTypes(caller: Caller, asked: string[] | null | undefined): Set<LiveEventType> {
    const { role } = caller.operator;
    if (!asked || asked.length === 0) {
      return new Set(LIVE_EVENT_TYPES.filter((t) => roleAllows(role, LIVE_EVENT_PERMISSION[t])));
    }
    for (const t of asked) {
      const type = kindArg("types", t, LIVE_EVENT_TYPES)!;
      need(caller, LIVE_EVENT_PERMISSION[type]);
    }
    return new Set(asked as LiveEventType[]);
  }

  return {
    JSON: JSONScalar,

    Query: {
      me: (_: unknown, __: unknown, { caller }: Ctx) => ({
        username: caller.operator.sub,
        role: caller.operator.role,
        sites: caller.operator.sites,
        permissions: ROLE_PERMISSIONS[caller.operator.role],
      }),
      sites: (_: unknown, __: unknown, { caller }: Ctx) => {
        need(caller, "fleet:read");
        return sites(caller.operator.sites);
      },
      site: async (_: unknown, a: { id: string }, { caller }: Ctx) => {
        need(caller, "fleet:read");
        needSite(caller, a.id);
        return (await sites(null, a.id))[0] ?? null;
      },
      devices: (_: unknown, a: FleetArgs & { site?: string | null }, { caller }: Ctx) => {
        need(caller, "fleet:read");
        return devices(listingSite(caller, a.site), a);
      },
      device: async (_: unknown, a: { site: string; id: string }, { caller }: Ctx) => {
        need(caller, "fleet:read");
        needSite(caller, a.site);
        return device({ site: a.site, device: a.id });
      },
      checkins: (_: unknown, a: CheckinArgs, { caller }: Ctx) => {
        need(caller, "fleet:read");
        return checkins(listingSite(caller, a.site), a);
      },
      activeAlerts: (_: unknown, a: { site?: string | null }, { caller }: Ctx) => {
        need(caller, "fleet:read");
        return alertStore.firing(listingSite(caller, a.site));
      },
      alertHistory: (
        _: unknown,
        a: { site?: string | null; device?: string | null; limit: number },
        { caller }: Ctx,
      ) => {
        need(caller, "fleet:read");
        const site = listingSite(caller, a.site);
        return listJournaledAlerts(s.db, { site, device: a.device ?? undefined, limit: limitArg(a.limit) });
      },
      conflicts: (_: unknown, a: ConflictArgs & { site?: string | null }, { caller }: Ctx) => {
        need(caller, "fleet:read");
        return conflicts(listingSite(caller, a.site), a);
      },
      wallets: (_: unknown, a: { site: string; limit: number; before?: string | null }, { caller }: Ctx) => {
        need(caller, "money:read");
        needSite(caller, a.site);
        return wallets(a.site, a);
      },
      wallet: async (_: unknown, a: { site: string; member: string }, { caller }: Ctx) => {
        need(caller, "money:read");
        needSite(caller, a.site);
        return (await s.payments.wallet(a.site, a.member)) ?? null;
      },
      ledger: (
        _: unknown,
        a: { site: string; kind?: string | null; limit: number; before?: string | null },
        { caller }: Ctx,
      ) => {
        need(caller, "money:read");
        needSite(caller, a.site);
        return ledger(a.site, kindArg("kind", a.kind, LEDGER_KINDS) ?? null, a);
      },
      payments: (_: unknown, a: { site: string; limit: number; before?: string | null }, { caller }: Ctx) => {
        need(caller, "money:read");
        needSite(caller, a.site);
        return ledger(a.site, "purchase", a);
      },
      payment: async (_: unknown, a: { id: string }, { caller }: Ctx) => {
        need(caller, "money:read");
        if (!UUID.test(a.id)) throw badInput("id: expected a payment id (UUID)");
        const found = await s.payments.payment(a.id);
        if (!found) return null;
        needSite(caller, found.payment.site);
        return found;
      },
    },

    Site: {
      devices: (site: SiteView, a: FleetArgs, { caller }: Ctx) => {
        need(caller, "fleet:read");
        return devices(site.id, a);
      },
      checkins: (site: SiteView, a: CheckinArgs, { caller }: Ctx) => {
        need(caller, "fleet:read");
        return checkins(site.id, a);
      },
      activeAlerts: (site: SiteView, _: unknown, { caller }: Ctx) => {
        need(caller, "fleet:read");
        return alertStore.firing(site.id);
      },
      conflicts: (site: SiteView, a: ConflictArgs, { caller }: Ctx) => {
        need(caller, "fleet:read");
        return conflicts(site.id, a);
      },
      wallets: (site: SiteView, a: { limit: number; before?: string | null }, { caller }: Ctx) => {
        need(caller, "money:read");
        return wallets(site.id, a);
      },
      ledger: (site: SiteView, a: { kind?: string | null; limit: number; before?: string | null }, { caller }: Ctx) => {
        need(caller, "money:read");
        return ledger(site.id, kindArg("kind", a.kind, LEDGER_KINDS) ?? null, a);
      },
    },

    Device: {
      id: (d: DeviceView) => d.device,
      // The offline payment exposure is money: null without money:read (as REST's device views).
      payments: (d: DeviceView, _: unknown, { caller }: Ctx) =>
        roleAllows(caller.operator.role, "money:read") ? d.payments : null,
      statusHistory: async (d: DeviceView) => d.statusHistory ?? (await device(d))?.statusHistory ?? [],
      telemetry: async (d: DeviceView, _: unknown, { caller }: Ctx) => {
        const latest = await s.latestTelemetry.get(d);
        if (!latest) return null;
        const { payments: _exposure, ...fleetOnly } = latest.telemetry;
        const t = roleAllows(caller.operator.role, "money:read") ? latest.telemetry : fleetOnly;
        return {
          receivedAt: latest.receivedAt,
          at: t.at,
          backlog: t.backlog,
          oldestUnackedAgeSeconds: t.oldestUnackedAgeSeconds ?? null,
          mode: t.mode ?? null,
          cpuTemperatureC: t.cpuTemperatureC ?? null,
          report: t,
        };
      },
      peripherals: async (d: DeviceView) => {
        const t = (await s.latestTelemetry.get(d))?.telemetry;
        if (!t) return null;
        return {
          reader: t.reader,
          printer: t.printer?.state ?? null,
          paper: t.printer?.paper ?? null,
          gpio: t.gpio?.state ?? null,
        };
      },
      config: (d: DeviceView) => s.configs?.get(d) ?? null,
      commands: async (d: DeviceView, a: { limit: number; before?: string | null }) => {
        if (!s.commands) return null;
        const limit = limitArg(a.limit);
        const key = after(a.before, ["timestamp", "text"]);
        const items = await s.commands.list(d, {
          limit,
          before: key ? { requestedAt: String(key[0]), id: String(key[1]) } : undefined,
        });
        return page(items, limit, (l) => [l.requestedAt, l.id]);
      },
      checkins: (d: DeviceView, a: CheckinArgs) => checkins(d.site, { ...a, device: d.device }),
      activeAlerts: async (d: DeviceView) => (await alertStore.firing(d.site)).filter((x) => x.device === d.device),
    },

    Checkin: {
      kiosk: (c: { site: string; device: string }) => device(c),
    },

    Wallet: {
      ledger: async (w: Wallet, a: { limit: number; before?: string | null }, { caller }: Ctx) => {
        need(caller, "money:read");
        const limit = limitArg(a.limit);
        const key = after(a.before, ["int"]);
        const items = await s.payments.walletEntries(
          w.site,
          w.memberId,
          (key?.[0] as number | undefined) ?? null,
          limit,
        );
        return page(items, limit, (l: LedgerEntry) => [l.n]);
      },
    },

    Mutation: {
      sendCommand: audited(
        "sendCommand",
        async (
          a: {
            site: string;
            device: string;
            command: string;
            args?: unknown;
            expiresInSeconds: number;
            waitSeconds: number;
          },
          caller,
          note,
        ) => {
          note.target = `device ${a.site}/${a.device}`;
          note.site = a.site;
          needBearer(caller);
          need(caller, "fleet:operate");
          needSite(caller, a.site);
          const device: DeviceAddress = { site: a.site, device: a.device };
          if (!s.registry().hasDevice(device)) throw notFound(`no enrolled device ${a.site}/${a.device}`);
          if (!isCommandName(a.command))
            throw badInput(`command: unknown command ${JSON.stringify(a.command)}; known: ${COMMAND_NAMES.join(", ")}`);
          const raw = a.args ?? {};
          if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw badInput("args: expected an object");
          const args = COMMAND_ARGS[a.command].safeParse(raw);
          if (!args.success) throw badInput(`${a.command} ${describeIssues(args.error, "args")}`);
          if (
            !Number.isInteger(a.expiresInSeconds) ||
            a.expiresInSeconds < 1 ||
            a.expiresInSeconds > MAX_EXPIRY_SECONDS
          )
            throw badInput(`expiresInSeconds: expected 1 to ${MAX_EXPIRY_SECONDS}`);
          if (!(a.waitSeconds >= 0 && a.waitSeconds <= MAX_WAIT_SECONDS))
            throw badInput(`waitSeconds: expected 0 to ${MAX_WAIT_SECONDS}`);
          const commands = commandsOf();
          if (!s.brokerConnected()) {
            throw gqlError(
              "SERVICE_UNAVAILABLE",
              "the cloud is not connected to the MQTT broker right now, so nothing was sent; try again shortly",
              503,
            );
          }
          const sent = await commands.send({
            ...device,
            name: a.command,
            args: args.data as Record<string, unknown>,
            expiresInSeconds: a.expiresInSeconds,
            by: caller.operator.sub,
          });
          return (await commands.waitSettled(device, sent.id, a.waitSeconds * 1000)) ?? sent;
        },
      ),

      resolveAlert: audited("resolveAlert", async (a: { key: string }, caller, note) => {
        note.target = `alert ${a.key}`;
        needBearer(caller);
        need(caller, "fleet:operate");
        const alert = await alertStore.get(a.key);
        if (alert && mayTouch(caller, alert.site)) note.site = alert.site;
        // Another site's alert answers as a missing one, as REST does.
        if (!alert || !mayTouch(caller, alert.site)) throw notFound(`no alert ${a.key}`);
        if (!s.alerts) throw gqlError("SERVICE_UNAVAILABLE", "this cloud runs no alert service", 503);
        const outcome = s.alerts.resolveByOperator(a.key, caller.operator.sub);
        if (outcome === "not-event-like") {
          throw gqlError(
            "CONFLICT",
            `${alert.rule} resolves by itself when its condition clears; only staff-called, journal-rolled-back and ledger-exception are resolved by hand`,
            409,
          );
        }
        if (outcome === "not-firing") throw gqlError("CONFLICT", `alert ${a.key} is not firing`, 409);
        await s.alerts.saved();
        return (await alertStore.get(a.key)) ?? alert;
      }),

      refundPayment: audited(
        "refundPayment",
        async (a: { id: string; amount?: number | null; reason: string; idempotencyKey: string }, caller, note) => {
          note.target = `payment ${a.id}`;
          needBearer(caller);
          need(caller, "money:write");
          if (!UUID.test(a.id)) throw badInput("id: expected a payment id (UUID)");
          if (!IDEMPOTENCY_KEY.test(a.idempotencyKey))
            throw badInput("idempotencyKey: expected 8 to 128 letters, digits, - or _ (a UUID is a good choice)");
          if (a.reason.length < 3 || a.reason.length > 500) throw badInput("reason: say why (3 to 500 characters)");
          if (a.amount !== null && a.amount !== undefined && !(Number.isSafeInteger(a.amount) && a.amount > 0))
            throw badInput("amount: expected a positive integer number of minor units");
          const found = await s.payments.payment(a.id);
          if (!found) throw notFound(`no payment ${a.id}`);
          needSite(caller, found.payment.site);
          note.site = found.payment.site;
          const amount = a.amount ?? found.refundable;
          if (amount <= 0) throw gqlError("CONFLICT", `payment ${a.id} is fully refunded`, 409);
          const outcome = await s.payments.refund(
            found,
            { id: a.id, amount, reason: a.reason },
            { operator: caller.operator.sub, key: a.idempotencyKey, now: s.now() },
          );
          if (outcome.kind === "mismatch") {
            throw gqlError(
              "IDEMPOTENCY_KEY_REUSED",
              `key ${a.idempotencyKey} was first used with different parameters; a new request needs a new key`,
              422,
            );
          }
          if (outcome.status >= 400) {
            const body = outcome.body as { title?: string; detail?: string };
            const code = outcome.status === 404 ? "NOT_FOUND" : outcome.status === 409 ? "CONFLICT" : "REFUSED";
            throw gqlError(code, body.detail ?? body.title ?? "refused", outcome.status);
          }
          return { entry: outcome.body as LedgerEntry, replayed: outcome.kind === "replayed" };
        },
      ),
    },

    Subscription: {
      live: {
        subscribe: (_: unknown, a: { site?: string | null; types?: string[] | null }, { caller }: Ctx) => {
          const feed = s.live;
          if (!feed) throw gqlError("SERVICE_UNAVAILABLE", "this cloud runs no live feed", 503);
          const types = liveTypes(caller, a.types);
          if (a.site) needSite(caller, a.site);
          const site = a.site ?? undefined;
          const wanted = (e: LiveEvent) =>
            types.has(e.type) && (site === undefined ? mayTouch(caller, e.site) : e.site === site);
          return new Repeater<{ live: LiveEvent }>(async (push, stop) => {
            // A subscription lives no longer than its token: it ends at exp, and at the first event after a logout.
            const expiry = setTimeout(stop, Math.min(Math.max(caller.expiresAt - Date.now(), 0), 2 ** 31 - 1));
            let delivered = Promise.resolve();
            const off = feed.subscribe((e) => {
              if (!wanted(e)) return;
              // In order, each after its token is checked again.
              delivered = delivered.then(async () => {
                if (await caller.stillValid()) await push({ live: e });
                else stop();
              });
              delivered.catch(() => stop());
            });
            await stop;
            off();
            clearTimeout(expiry);
          });
        },
      },
    },
  };
}
