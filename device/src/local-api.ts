/**
 * The daemon's local HTTP + WebSocket API for its touch UI, bound to
 * loopback: the UI is the only client, and nothing here is for the network.
 *
 * Any web page the kiosk's browser opens can send requests to 127.0.0.1, so
 * every request passes `localOnly` first: the Host must be the kiosk's own
 * (DNS rebinding), an Origin must be the kiosk's own, state-changing calls
 * must be JSON (no "simple" cross-origin form or text/plain POST) and carry
 * this boot's token, which only the served page (and `<dataDir>/local-api-token`)
 * holds. See docs/kiosk-config.md.
 */

import { readFile } from "node:fs/promises";
import type { IncomingMessage } from "node:http";
import { isIP } from "node:net";
import { join, relative } from "node:path";
import { serveStatic } from "@hono/node-server/serve-static";
import { createNodeWebSocket } from "@hono/node-ws";
import { problemResponse } from "@paylane/protocol";
import {
  type Catalog,
  type KioskRoute,
  type KioskState,
  kioskApi,
  LIVE_PATH,
  type LiveMessage,
  LOCAL_TOKEN_META,
  type ParsedRequestOf,
  type PaymentResult,
  type PaymentSession,
  type ResponseOf,
  refusalDetail,
  type TapResult,
} from "@paylane/protocol/kiosk-api";
import { type HealthReport, opsRoutes, registeredCounter } from "@paylane/protocol/service";
import { kioskDist } from "@paylane/ui/dist";
import { type Context, Hono, type MiddlewareHandler } from "hono";
import type { WSContext } from "hono/ws";
import type { Registry as MetricsRegistry } from "prom-client";
import { sameToken } from "./local-api-token.ts";
import { PaymentBusyError, PaymentInputError, type StartRequest } from "./payments/payment-desk.ts";
import { type StatusFacts, statusPage } from "./status-page.ts";

export interface LocalApiOptions {
  /** This boot's token (see local-api-token.ts): required for every state-changing call. Never logged. */
  token: string;
  state: () => Promise<KioskState>;
  health: () => Promise<HealthReport>;
  metrics: MetricsRegistry;
  /** Present when the reader is simulated: places a card on it. */
  simulatedTap?: (uid: string) => Promise<TapResult | PaymentResult>;
  /** The price list and what the kiosk can sell. */
  catalog: () => Promise<Catalog>;
  /** Starts a payment session; throws PaymentInputError (400) or PaymentBusyError (409). */
  startPayment: (req: StartRequest) => Promise<PaymentSession>;
  /** Cancels the session in progress; throws PaymentBusyError (409) while it is being authorized. */
  cancelPayment: () => boolean;
  /** A booking code typed on screen (offered while the reader is unavailable). */
  enterCode: (code: string) => Promise<TapResult>;
  /** The on-screen "call staff" button. */
  callStaff: () => Promise<void>;
  /** Exercises each peripheral. */
  selfTest: () => Promise<ResponseOf<typeof kioskApi.selfTest>>;
  /** What GET /status shows a technician. */
  status: () => Promise<StatusFacts>;
  /**
   * The card terminal's end-of-day, journaled as a `terminal-settlement`
   * (POST /api/terminal/end-of-day); absent without a terminal.
   */
  settleTerminal?: () => Promise<ResponseOf<typeof kioskApi.endOfDay>>;
  /** The setup API's routes (protocol/src/setup-api.ts): diagnostics, and the enrolment's state once enrolled. */
  setup?: Hono;
}

type BodyRoute = KioskRoute & { body: NonNullable<KioskRoute["body"]>; invalid: string };

/**
 * A route's JSON body, checked against its schema (and normalised by it, e.g.
 * a UID's colons dropped); otherwise the 400 problem to answer, in one line.
 */
async function readBody<R extends BodyRoute>(
  req: Request,
  route: R,
): Promise<{ ok: true; body: ParsedRequestOf<R> } | { ok: false; problem: Response }> {
  let json: unknown;
  try {
    json = JSON.parse(await req.text());
  } catch (err) {
    const why = (err as Error).message.split("\n")[0];
    return { ok: false, problem: problemResponse({ title: "Invalid JSON", status: 400, detail: `body: ${why}` }) };
  }
  const parsed = route.body.safeParse(json);
  if (!parsed.success) {
    return {
      ok: false,
      problem: problemResponse({ title: route.invalid, status: 400, detail: refusalDetail(parsed.error) }),
    };
  }
  return { ok: true, body: parsed.data as ParsedRequestOf<R> };
}

/** A route's success answer, typed by its response schema, with the route's status. */
function answer<R extends KioskRoute>(c: Context, route: R, body: ResponseOf<R>): Response {
  return c.json(body as object, route.status);
}

/** A payment error as problem+json: bad input 400, a session in the way 409. */
function paymentProblem(err: unknown): Response {
  if (err instanceof PaymentInputError)
    return problemResponse({ title: "Invalid payment", status: 400, detail: err.message });
  if (err instanceof PaymentBusyError)
    return problemResponse({ title: "Payment in progress", status: 409, detail: err.message });
  throw err;
}

/** The only addresses the local API may listen on. */
export function assertLoopbackHost(host: string): void {
  const bare = host.replace(/^\[(.*)\]$/, "$1");
  const loopback = bare === "localhost" || bare === "::1" || (isIP(bare) === 4 && bare.startsWith("127."));
  if (!loopback) {
    throw new Error(
      `http.host ${host}: the kiosk's local API listens on loopback only; set http.host to 127.0.0.1, ::1 or localhost`,
    );
  }
}

const STATE_CHANGING: ReadonlySet<string> = new Set(["POST", "PUT", "PATCH", "DELETE"]);

/** The authorities (host:port) the kiosk's own page is served from. */
function ownAuthorities(port: number): string[] {
  return [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`];
}

type RefusalReason = "host" | "origin" | "fetch-site" | "content-type" | "token" | "websocket";

function refuse(status: number, title: string, detail: string, headers?: Record<string, string>): Response {
  return problemResponse({ title, status, detail }, headers);
}

/**
 * Lets through only what the kiosk's own page (or a tool on the kiosk that
 * holds the token file) sends; everything else is problem+json and counted.
 */
export function localOnly(o: { token: string; refused: (reason: RefusalReason) => void }): MiddlewareHandler {
  return async function localOnly(c, next) {
    const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
    // The port the request came in on: known only for a real socket, so an in-process request fails closed.
    const port = incoming?.socket?.localPort;
    const own = port === undefined ? [] : ownAuthorities(port);
    const host = (incoming?.headers.host ?? c.req.header("host") ?? "").toLowerCase();
    if (!own.includes(host)) {
      o.refused("host");
      return refuse(
        421,
        "Not this kiosk's address",
        `the kiosk's local API answers only requests addressed to 127.0.0.1, localhost or [::1] on its own port`,
      );
    }
    const origin = c.req.header("origin");
    if (origin !== undefined && !own.some((a) => origin.toLowerCase() === `http://${a}`)) {
      o.refused("origin");
      return refuse(403, "Cross-origin request refused", "only the kiosk's own page may call its local API");
    }
    // Defence in depth: browsers say where a request comes from even when they leave Origin out.
    const site = c.req.header("sec-fetch-site");
    if (site !== undefined && site !== "same-origin" && site !== "none") {
      o.refused("fetch-site");
      return refuse(403, "Cross-site request refused", "only the kiosk's own page may call its local API");
    }
    const authorized = bearerMatches(c, o.token);
    if (c.req.header("upgrade")?.toLowerCase() === "websocket" && origin === undefined && !authorized) {
      // Browsers always send Origin on a WebSocket; a client without one must hold the token.
      o.refused("websocket");
      return refuse(401, "Token required", "a WebSocket without Origin needs Authorization: Bearer <token>", {
        "www-authenticate": 'Bearer realm="paylane-kiosk"',
      });
    }
    if (STATE_CHANGING.has(c.req.method)) {
      const type = (c.req.header("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
      if (type !== "application/json") {
        o.refused("content-type");
        return refuse(415, "JSON only", "state-changing calls need Content-Type: application/json");
      }
      if (!authorized) {
        o.refused("token");
        return refuse(
          401,
          "Token required",
          "state-changing calls need Authorization: Bearer <token>; tools on the kiosk read it from <dataDir>/local-api-token",
          { "www-authenticate": 'Bearer realm="paylane-kiosk"' },
        );
      }
    }
    await next();
  };
}

function bearerMatches(c: Context, token: string): boolean {
  const header = c.req.header("authorization");
  const m = header === undefined ? null : /^Bearer[ ]+(\S+)\s*$/i.exec(header);
  return m !== null && sameToken(m[1]!, token);
}

export function createLocalApi(o: LocalApiOptions) {
  const app = new Hono();
  // Every error the UI gets is problem+json, e.g. a staff call the journal could not write.
  app.onError((err) => problemResponse({ title: "The kiosk could not do that", status: 500, detail: err.message }));
  const refusals = registeredCounter({
    name: "paylane_device_local_api_refused_total",
    help: "Local API requests refused: wrong Host, foreign Origin, not JSON, no token, WebSocket without Origin",
    labelNames: ["reason"],
    registers: [o.metrics],
  });
  app.use("*", localOnly({ token: o.token, refused: (reason) => refusals.inc({ reason }) }));
  const { upgradeWebSocket, injectWebSocket } = createNodeWebSocket({ app });
  const sockets = new Set<WSContext>();

  const send = (ws: WSContext, msg: LiveMessage) => ws.send(JSON.stringify(msg));

  app.route("/", opsRoutes(o.health, o.metrics));
  const api = kioskApi;
  app.get(api.state.path, async (c) => answer(c, api.state, await o.state()));
  app.get(
    LIVE_PATH,
    upgradeWebSocket(() => ({
      onOpen: async (_evt, ws) => {
        sockets.add(ws);
        send(ws, { type: "state", state: await o.state() });
      },
      onClose: (_evt, ws) => {
        sockets.delete(ws);
      },
    })),
  );
  app.post(api.simTap.path, async (c) => {
    if (!o.simulatedTap) {
      return problemResponse({
        title: "No simulated reader",
        status: 404,
        detail: "this kiosk has a real card reader",
      });
    }
    const req = await readBody(c.req.raw, api.simTap);
    if (!req.ok) return req.problem;
    return answer(c, api.simTap, await o.simulatedTap(req.body.uid));
  });
  app.post(api.code.path, async (c) => {
    const req = await readBody(c.req.raw, api.code);
    if (!req.ok) return req.problem;
    return answer(c, api.code, await o.enterCode(req.body.code));
  });
  app.get(api.catalog.path, async (c) => answer(c, api.catalog, await o.catalog()));
  app.post(api.payment.path, async (c) => {
    const req = await readBody(c.req.raw, api.payment);
    if (!req.ok) return req.problem;
    const start: StartRequest =
      req.body.itemId !== undefined
        ? { kind: "purchase", itemId: req.body.itemId }
        : { kind: "purchase", amount: req.body.amount };
    try {
      return answer(c, api.payment, await o.startPayment(start));
    } catch (err) {
      return paymentProblem(err);
    }
  });
  app.post(api.topup.path, async (c) => {
    const req = await readBody(c.req.raw, api.topup);
    if (!req.ok) return req.problem;
    try {
      return answer(c, api.topup, await o.startPayment({ kind: "topup", amount: req.body.amount }));
    } catch (err) {
      return paymentProblem(err);
    }
  });
  app.post(api.cancelPayment.path, (c) => {
    try {
      return answer(c, api.cancelPayment, { cancelled: o.cancelPayment() });
    } catch (err) {
      return paymentProblem(err);
    }
  });
  app.post(api.callStaff.path, async (c) => {
    await o.callStaff();
    return answer(c, api.callStaff, { called: true });
  });
  app.post(api.selfTest.path, async (c) => answer(c, api.selfTest, await o.selfTest()));
  app.post(api.endOfDay.path, async (c) => {
    if (!o.settleTerminal)
      return problemResponse({ title: "No card terminal", status: 404, detail: "this kiosk has no card terminal" });
    try {
      return answer(c, api.endOfDay, await o.settleTerminal());
    } catch (err) {
      if (err instanceof PaymentInputError || err instanceof PaymentBusyError) return paymentProblem(err);
      return problemResponse({
        title: "The card terminal could not close its day",
        status: 502,
        detail: (err as Error).message,
      });
    }
  });
  app.get("/status", async (c) => c.html(statusPage(await o.status())));
  if (o.setup) app.route("/", o.setup);
  kioskPageRoutes(app, o.token);

  return {
    app,
    injectWebSocket,
    broadcast(msg: LiveMessage): void {
      const text = JSON.stringify(msg);
      for (const ws of sockets) ws.send(text);
    },
    closeSockets(): void {
      for (const ws of sockets) ws.close(1001, "kiosk stopping");
      sockets.clear();
    },
  };
}

/** The touch UI's page (with this boot's token) and its assets; also served in setup mode. */
export function kioskPageRoutes(app: Hono, token: string): void {
  // The page carries this boot's token; it is never cached and never framed by another page.
  let page: string | undefined;
  const servePage = async (c: Context) => {
    if (page === undefined) {
      try {
        const html = await readFile(join(kioskDist, "index.html"), "utf8");
        page = html.replace(/<\/head>/i, `  <meta name="${LOCAL_TOKEN_META}" content="${token}" />\n  </head>`);
      } catch {
        return problemResponse({ title: "No kiosk UI", status: 404, detail: "the UI is not built: npm run build" });
      }
    }
    return c.html(page, 200, {
      "cache-control": "no-store",
      "x-frame-options": "DENY",
      "content-security-policy": "frame-ancestors 'none'",
      "referrer-policy": "no-referrer",
    });
  };
  app.get("/", servePage);
  app.get("/index.html", servePage);
  app.use("/*", serveStatic({ root: relative(process.cwd(), kioskDist) || "." }));
}
