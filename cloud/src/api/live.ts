/**
 * The live feed over WebSocket: `GET /api/v1/live` (docs/live-feed.md).
 *
 * Authenticated before the upgrade, by `Authorization: Bearer <access JWT>`
 * (scripts) or the dashboard's `paylane_session` cookie. A cookie comes with
 * every request the browser makes, whichever page asks, so a cookie upgrade
 * must come from this cloud's own origin (cross-site WebSocket hijacking);
 * a bearer token cannot be attached by a foreign page. Refusals are answered
 * as problem+json before any upgrade.
 *
 * A client gets the events of its sites and of its permissions only
 * (LIVE_EVENT_PERMISSION: a viewer never sees payments); `?site=` and
 * `?types=` narrow them. Its first frame is a LiveHello. The server pings
 * every `pingIntervalMs` and drops a client that did not answer the previous
 * ping; a client that reads slower than events come (its unsent bytes past
 * `maxBufferedBytes`) is closed with 1013 rather than buffered without end.
 * A socket lives no longer than its token: it is closed (1008) at the
 * token's `exp`, or as soon as its login session ends (a logout or a disabled
 * account, on any API instance: the feed hears it, `LiveFeed.sessions`;
 * else at the next ping), and the client connects again with a fresh one.
 *
 * Not @hono/node-ws: its upgrade hook answers a refusal with the status
 * alone, and a refusal here says what is wrong. The upgrade still goes
 * through the Hono app (rate limits, errors), then `ws` takes the socket.
 */
import { type IncomingMessage, STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
import type { ServerType } from "@hono/node-server";
import {
  LIVE_EVENT_PERMISSION,
  LIVE_EVENT_TYPES,
  type LiveEvent,
  type LiveEventType,
  type LiveHelloSchema,
  problemResponse,
  roleAllows,
  SESSION_COOKIE,
} from "@paylane/protocol";
import { type Context, Hono } from "hono";
import { getCookie } from "hono/cookie";
import { decodeJwt } from "jose";
import type { Logger } from "pino";
import { Counter, Gauge, type Registry as MetricsRegistry } from "prom-client";
import { type WebSocket, WebSocketServer } from "ws";
import type { z } from "zod";
import type { LiveFeed } from "../live/live-feed.ts";
import {
  type Operator,
  type OperatorEnv,
  type OperatorTokenConfig,
  permissionDenied,
  verifyOperatorToken,
} from "./auth.ts";

export const LIVE_PATH = "/api/v1/live";

export interface LiveSocketsOptions {
  feed: LiveFeed;
  metrics: MetricsRegistry;
  logger?: Logger;
  /** How often each client is pinged; one that has not answered the previous ping is dropped (default 30 s). */
  pingIntervalMs?: number;
  /** A client with more unsent bytes than this is closed with 1013 (default 1 MiB). */
  maxBufferedBytes?: number;
  /** Connections at once, in all (default 2000: 503 beyond) and per operator (default 20: 429 beyond). */
  maxClients?: number;
  maxPerOperator?: number;
}

/** What an accepted upgrade may receive. */
interface Grant {
  operator: Operator;
  /** The sites it receives (null: every site). */
  sites: readonly string[] | null;
  types: readonly LiveEventType[];
  /** When the token expires (epoch ms): the socket is closed then, as a request with it would be refused. */
  expiresAt: number;
  /** Whether the token's login session still holds (a console token, `sid`): asked again at each ping. */
  sessionLive?: () => Promise<boolean>;
  /** The login session (`sid`), whose ending closes the socket at once. */
  sid?: string;
}

type Hello = z.infer<typeof LiveHelloSchema>;

const CLOSE_GOING_AWAY = 1001;
const CLOSE_POLICY_VIOLATION = 1008;
const CLOSE_TRY_AGAIN_LATER = 1013;
/** setTimeout's longest delay. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** How long a stop waits for clients to answer the close before it cuts them. */
const CLOSE_GRACE_MS = 500;

export class LiveSockets {
  readonly #o: LiveSocketsOptions;
  readonly #wss = new WebSocketServer({ noServer: true, maxPayload: 4096 });
  /** Upgrade requests `attach` is handling: a plain request never gets a grant. */
  readonly #upgrading = new WeakSet<IncomingMessage>();
  /** Upgrades the route accepted, until `ws` takes them. */
  readonly #granted = new WeakMap<IncomingMessage, Grant>();
  readonly #clients = new Map<
    WebSocket,
    {
      operator: string;
      alive: boolean;
      unsubscribe: () => void;
      expiry: NodeJS.Timeout;
      sessionLive?: () => Promise<boolean>;
      sid?: string;
    }
  >();
  /** Stops hearing session endings (subscribed at the first client). */
  #unhearSessions: (() => void) | undefined;
  /** Open connections per operator (`sub`). */
  readonly #perOperator = new Map<string, number>();
  readonly #connected: Gauge;
  readonly #sent: Counter<"type">;
  readonly #closed: Counter<"reason">;
  #pinger: NodeJS.Timeout | undefined;
  #stopping = false;

  constructor(o: LiveSocketsOptions) {
    this.#o = o;
    this.#connected = new Gauge({
      name: "paylane_live_clients",
      help: "WebSocket clients connected to the live feed",
      registers: [o.metrics],
    });
    this.#sent = new Counter({
      name: "paylane_live_events_sent_total",
      help: "Live feed events sent to WebSocket clients, by type",
      labelNames: ["type"],
      registers: [o.metrics],
    });
    this.#closed = new Counter({
      name: "paylane_live_clients_closed_total",
      help: "Live feed clients closed by the cloud: slow (1013), expired token or ended session (1008), no-pong, stopping (1001)",
      labelNames: ["reason"],
      registers: [o.metrics],
    });
  }

  get clients(): number {
    return this.#clients.size;
  }

  /**
   * `GET /api/v1/live`: checks who asks and what for, with the API's own
   * token settings (its session check included); the upgrade itself happens in `attach`.
   */
  routes(tokens: OperatorTokenConfig): Hono<OperatorEnv> {
    const app = new Hono<OperatorEnv>();
    app.get(LIVE_PATH, async (c) => {
      const grant = await this.#authorize(c, tokens);
      if (grant instanceof Response) return grant;
      const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
      if (c.req.header("upgrade")?.toLowerCase() !== "websocket" || !incoming || !this.#upgrading.has(incoming)) {
        return problemResponse(
          {
            title: "Upgrade required",
            status: 426,
            detail: "the live feed is a WebSocket: connect with a WebSocket client (ws://, wss://)",
          },
          { upgrade: "websocket" },
        );
      }
      this.#granted.set(incoming, grant);
      return c.body(null, 200);
    });
    return app;
  }

  /** Takes WebSocket upgrades on `server`, asking `app` (the API, with this route mounted) first. */
  // biome-ignore lint/suspicious/noExplicitAny: any Hono app with the route mounted
  attach(server: ServerType, app: Hono<any, any, any>): void {
    server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      this.#upgrade(app, req, socket, head).catch((err: Error) => {
        this.#o.logger?.error({ err: err.message }, "live feed: upgrade failed");
        socket.destroy();
      });
    });
  }

  async #upgrade(
    // biome-ignore lint/suspicious/noExplicitAny: see attach
    app: Hono<any, any, any>,
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
  ): Promise<void> {
    socket.on("error", () => socket.destroy());
    if (this.#stopping) {
      await writeResponse(socket, problemResponse({ title: "Stopping", status: 503, detail: "the cloud is stopping" }));
      return;
    }
    const headers = new Headers();
    for (const [name, value] of Object.entries(req.headers)) {
      if (value === undefined) continue;
      for (const v of Array.isArray(value) ? value : [value]) headers.append(name, v);
    }
    const url = new URL(req.url ?? "/", `http://${req.headers.host ?? "localhost"}`);
    this.#upgrading.add(req);
    const res = await app.fetch(new Request(url, { method: req.method, headers }), {
      incoming: req,
      outgoing: undefined,
    });
    const grant = this.#granted.get(req);
    this.#granted.delete(req);
    if (!grant || res.status !== 200 || this.#stopping) {
      await writeResponse(socket, res.status === 200 ? notFoundProblem(url.pathname) : res);
      return;
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#open(ws, grant));
  }

  #open(ws: WebSocket, grant: Grant): void {
    const max = this.#o.maxBufferedBytes ?? 1024 * 1024;
    const types = new Set(grant.types);
    const hello: Hello = {
      type: "hello",
      operator: grant.operator.sub,
      sites: grant.sites as string[] | null,
      types: [...types],
    };
    ws.send(JSON.stringify(hello));
    const unsubscribe = this.#o.feed.subscribe((event: LiveEvent) => {
      if (!types.has(event.type)) return;
      if (grant.sites !== null && !grant.sites.includes(event.site)) return;
      const frame = JSON.stringify(event);
      if (ws.bufferedAmount + frame.length > max) {
        this.#drop(
          ws,
          CLOSE_TRY_AGAIN_LATER,
          "too slow: the live feed's events came faster than this client read them",
          "slow",
        );
        return;
      }
      ws.send(frame);
      this.#sent.inc({ type: event.type });
    });
    // Real time, as the token's own `exp` is checked against.
    const expiry = setTimeout(
      () =>
        this.#drop(ws, CLOSE_POLICY_VIOLATION, "the access token expired: connect again with a fresh one", "expired"),
      Math.min(Math.max(grant.expiresAt - Date.now(), 0), MAX_TIMER_MS),
    );
    const operator = grant.operator.sub;
    this.#clients.set(ws, {
      operator,
      alive: true,
      unsubscribe,
      expiry,
      sessionLive: grant.sessionLive,
      sid: grant.sid,
    });
    this.#unhearSessions ??= this.#o.feed.sessions?.onSessionsEnded((sids) => this.#sessionsEnded(sids));
    this.#perOperator.set(operator, (this.#perOperator.get(operator) ?? 0) + 1);
    this.#connected.set(this.#clients.size);
    ws.on("pong", () => {
      const client = this.#clients.get(ws);
      if (client) client.alive = true;
    });
    // A client has nothing to say on this socket; what it sends is ignored.
    ws.on("error", () => ws.terminate());
    ws.on("close", () => this.#forget(ws));
    this.#startPinging();
  }

  #forget(ws: WebSocket): void {
    const client = this.#clients.get(ws);
    if (!client) return;
    client.unsubscribe();
    clearTimeout(client.expiry);
    this.#clients.delete(ws);
    const left = (this.#perOperator.get(client.operator) ?? 1) - 1;
    if (left > 0) this.#perOperator.set(client.operator, left);
    else this.#perOperator.delete(client.operator);
    this.#connected.set(this.#clients.size);
    if (this.#clients.size === 0) {
      clearInterval(this.#pinger);
      this.#pinger = undefined;
    }
  }

  /** Closes a client and stops sending to it at once (the close frame waits behind what is unsent). */
  #drop(ws: WebSocket, code: number, reason: string, why: string): void {
    this.#closed.inc({ reason: why });
    this.#forget(ws);
    ws.close(code, reason);
  }

  #startPinging(): void {
    if (this.#pinger) return;
    // Real time: a keepalive measures the network, like mqtt.js's own.
    this.#pinger = setInterval(() => {
      for (const [ws, client] of this.#clients) {
        if (!client.alive) {
          this.#closed.inc({ reason: "no-pong" });
          this.#forget(ws);
          ws.terminate();
          continue;
        }
        client.alive = false;
        ws.ping();
        if (client.sessionLive) void this.#recheckSession(ws, client.sessionLive);
      }
    }, this.#o.pingIntervalMs ?? 30_000);
  }

  /** Closes the sockets of sessions that ended; with no names (many, or a lost LISTEN), asks for each. */
  #sessionsEnded(sids: readonly string[] | null): void {
    for (const [ws, client] of this.#clients) {
      if (!client.sid) continue;
      if (sids === null) {
        // After the session cache has heard it too (it listens on the same feed).
        if (client.sessionLive) queueMicrotask(() => void this.#recheckSession(ws, client.sessionLive!));
      } else if (sids.includes(client.sid)) {
        this.#drop(ws, CLOSE_POLICY_VIOLATION, "the login session has ended: log in again", "session-ended");
      }
    }
  }

  /** A socket whose login has ended (logout, a disabled account, a new password) is closed like an expired one. */
  async #recheckSession(ws: WebSocket, sessionLive: () => Promise<boolean>): Promise<void> {
    const live = await sessionLive().catch(() => true); // the database is away: keep serving what it announced
    if (!live && this.#clients.has(ws)) {
      this.#drop(ws, CLOSE_POLICY_VIOLATION, "the login session has ended: log in again", "session-ended");
    }
  }

  /** Closes every client (1001) and refuses new ones; a client that does not answer in time is cut. */
  async close(): Promise<void> {
    this.#stopping = true;
    this.#unhearSessions?.();
    this.#unhearSessions = undefined;
    clearInterval(this.#pinger);
    this.#pinger = undefined;
    const sockets = [...this.#clients.keys()];
    for (const ws of sockets) this.#drop(ws, CLOSE_GOING_AWAY, "the cloud is stopping", "stopping");
    await Promise.all(
      sockets.map(
        (ws) =>
          new Promise<void>((resolve) => {
            if (ws.readyState === ws.CLOSED) return resolve();
            const timer = setTimeout(() => {
              ws.terminate();
              resolve();
            }, CLOSE_GRACE_MS);
            ws.once("close", () => {
              clearTimeout(timer);
              resolve();
            });
          }),
      ),
    );
    this.#wss.close();
  }

  /** The grant for an upgrade request, or the problem answering it. */
  async #authorize(c: Context<OperatorEnv>, tokens: OperatorTokenConfig): Promise<Grant | Response> {
    const secret = tokens.secret;
    if (!secret) {
      return problemResponse({
        title: "Operator API disabled",
        status: 503,
        detail: "the cloud has no CLOUD_JWT_SECRET, so it cannot verify operator tokens",
      });
    }
    const header = c.req.header("authorization");
    const cookie = getCookie(c, SESSION_COOKIE);
    let token: string;
    if (header?.startsWith("Bearer ")) token = header.slice(7).trim();
    else if (cookie) {
      const refused = foreignOrigin(c.req.header("origin"), c.req.header("host"));
      if (refused) return problemResponse({ title: "Forbidden", status: 403, detail: refused });
      token = cookie;
    } else {
      return problemResponse(
        {
          title: "Unauthorized",
          status: 401,
          detail: `operator token required (Authorization: Bearer <JWT>, or the ${SESSION_COOKIE} cookie of a dashboard login)`,
        },
        { "www-authenticate": 'Bearer realm="paylane"' },
      );
    }
    const operator = await verifyOperatorToken(token, { ...tokens, secret });
    if ("refused" in operator) {
      return problemResponse(
        { title: "Unauthorized", status: 401, detail: `operator token refused: ${operator.refused}` },
        { "www-authenticate": 'Bearer realm="paylane", error="invalid_token"' },
      );
    }
    if (!roleAllows(operator.role, "fleet:read")) return permissionDenied("fleet:read", operator.role);
    const maxClients = this.#o.maxClients ?? 2000;
    if (this.#clients.size >= maxClients) {
      return problemResponse(
        {
          title: "Service unavailable",
          status: 503,
          detail: `this cloud instance serves ${maxClients} live feed clients already; try again later or another instance`,
        },
        { "retry-after": "30" },
      );
    }
    const maxPerOperator = this.#o.maxPerOperator ?? 20;
    if ((this.#perOperator.get(operator.sub) ?? 0) >= maxPerOperator) {
      return problemResponse(
        {
          title: "Too many requests",
          status: 429,
          detail: `${operator.sub} has ${maxPerOperator} live feed connections open on this instance already; close one first`,
        },
        { "retry-after": "30" },
      );
    }
    const expiresAt = (decodeJwt(token).exp ?? 0) * 1000;
    const { sid } = operator;
    const check = tokens.sessionLive;
    const sessionLive = sid && check ? () => check(sid) : undefined;
    // verifyOperatorToken may ask too; asked here as well, since an open socket keeps asking (cached, cheap).
    if (sid && !(check && (await check(sid)))) {
      return problemResponse(
        {
          title: "Unauthorized",
          status: 401,
          detail: "operator token refused: its login session has ended; log in again",
        },
        { "www-authenticate": 'Bearer realm="paylane", error="invalid_token"' },
      );
    }

    const site = c.req.query("site");
    let sites = operator.sites;
    if (site !== undefined) {
      if (sites !== null && !sites.includes(site)) {
        return problemResponse({ title: "Forbidden", status: 403, detail: `this token may not touch site ${site}` });
      }
      sites = [site];
    }
    const allowed = LIVE_EVENT_TYPES.filter((t) => roleAllows(operator.role, LIVE_EVENT_PERMISSION[t]));
    const asked = c.req.query("types");
    if (asked === undefined) return { operator, sites, types: allowed, expiresAt, sessionLive, sid };
    const types: LiveEventType[] = [];
    for (const t of asked.split(",").map((s) => s.trim())) {
      if (!(LIVE_EVENT_TYPES as readonly string[]).includes(t)) {
        return problemResponse({
          title: "Invalid request",
          status: 400,
          detail: `types: ${JSON.stringify(t)} is not an event type; expected a comma-separated list of ${LIVE_EVENT_TYPES.join(", ")}`,
        });
      }
      const type = t as LiveEventType;
      if (!allowed.includes(type)) return permissionDenied(LIVE_EVENT_PERMISSION[type], operator.role);
      if (!types.includes(type)) types.push(type);
    }
    return { operator, sites, types, expiresAt, sessionLive, sid };
  }
}

/**
 * Why a cookie-authenticated upgrade is refused, or null: only a page of
 * this very host may use the session cookie for a WebSocket (browsers always
 * send Origin on one; the scheme is not compared, a TLS proxy may sit in front).
 */
function foreignOrigin(origin: string | undefined, host: string | undefined): string | null {
  if (!origin || origin === "null") {
    return "a WebSocket authenticated by the session cookie needs an Origin header of this cloud's own pages; scripts send Authorization: Bearer";
  }
  let originHost: string;
  try {
    originHost = new URL(origin).host;
  } catch {
    return "the Origin header is not a URL";
  }
  if (!host || originHost.toLowerCase() !== host.toLowerCase()) {
    return `a page of ${origin} may not open this cloud's live feed with its session cookie (only this cloud's own pages may)`;
  }
  return null;
}

function notFoundProblem(path: string): Response {
  return problemResponse({
    title: "Not found",
    status: 404,
    detail: `no WebSocket at ${path}; the live feed is at ${LIVE_PATH}`,
  });
}

/** Writes a whole HTTP response on a socket that asked to upgrade, then closes it. */
async function writeResponse(socket: Duplex, res: Response): Promise<void> {
  const body = Buffer.from(await res.arrayBuffer());
  const lines = [`HTTP/1.1 ${res.status} ${res.statusText || STATUS_CODES[res.status] || "Error"}`];
  res.headers.forEach((value, name) => {
    if (name !== "content-length" && name !== "connection" && name !== "transfer-encoding")
      lines.push(`${name}: ${value}`);
  });
  lines.push(`content-length: ${body.length}`, "connection: close", "", "");
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.end(Buffer.concat([Buffer.from(lines.join("\r\n")), body]));
}
