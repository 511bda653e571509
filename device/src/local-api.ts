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
import { type HealthReport, opsRoutes, registeredCounter } from "@paylane/protocol/service";
import { kioskDist } from "@paylane/ui/dist";
import {
  type Catalog,
  type KioskState,
  type LiveMessage,
  LOCAL_TOKEN_META,
  type PaymentResult,
  type PaymentSession,
  type TapResult,
} from "@paylane/ui/kiosk-api";
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
  selfTest: () => Promise<unknown>;
  /** What GET /status shows a technician. */
  status: () => Promise<StatusFacts>;
  /**
   * The card terminal's end-of-day, journaled as a `terminal-settlement`
   * (POST /api/terminal/end-of-day); absent without a terminal.
   */
  settleTerminal?: () => Promise<unknown>;
}

const CODE = /^[A-Z0-9]{4,16}$/;

const UID = /^([0-9A-F]{8}|[0-9A-F]{14}|[0-9A-F]{20})$/;

/** A JSON object body; an empty object when the body is not one. */
async function jsonObject(req: Request): Promise<Record<string, unknown>> {
  try {
    const body: unknown = await req.json();
    return typeof body === "object" && body !== null ? (body as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** A string field of a JSON object body, upper-cased with `strip` removed; "" when it is not a string. */
async function normalizedField(req: Request, field: string, strip: RegExp): Promise<string> {
  const raw = (await jsonObject(req))[field];
  return typeof raw === "string" ? raw.replace(strip, "").toUpperCase() : "";
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
  app.get("/api/state", async (c) => c.json(await o.state()));
  app.get(
    "/api/live",
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
  app.post("/api/sim/tap", async (c) => {
    if (!o.simulatedTap) {
      return problemResponse({
        title: "No simulated reader",
        status: 404,
        detail: "this kiosk has a real card reader",
      });
    }
    const uid = await normalizedField(c.req.raw, "uid", /[\s:]/g);
    if (!UID.test(uid)) {
      return problemResponse({
        title: "Invalid card UID",
        status: 400,
        detail: "uid: expected 4, 7 or 10 bytes as hex, e.g. 04A2B3C4",
      });
    }
    return c.json(await o.simulatedTap(uid));
  });
  app.post("/api/code", async (c) => {
    const code = await normalizedField(c.req.raw, "code", /[\s-]/g);
    if (!CODE.test(code)) {
      return problemResponse({
        title: "Invalid booking code",
        status: 400,
        detail: "code: expected 4 to 16 letters or digits, e.g. ADA1",
      });
    }
    return c.json(await o.enterCode(code));
  });
  app.get("/api/catalog", async (c) => c.json(await o.catalog()));
  app.post("/api/payments", async (c) => {
    const body = await jsonObject(c.req.raw);
    if ((body.itemId === undefined) === (body.amount === undefined)) {
      return problemResponse({
        title: "Invalid payment",
        status: 400,
        detail: "expected either itemId (an item of the price list) or amount (minor units), not both",
      });
    }
    if (body.itemId !== undefined && typeof body.itemId !== "string") {
      return problemResponse({ title: "Invalid payment", status: 400, detail: "itemId: expected a string" });
    }
    const req: StartRequest =
      body.itemId !== undefined
        ? { kind: "purchase", itemId: body.itemId as string }
        : { kind: "purchase", amount: body.amount as number };
    try {
      return c.json(await o.startPayment(req), 201);
    } catch (err) {
      return paymentProblem(err);
    }
  });
  app.post("/api/topups", async (c) => {
    const body = await jsonObject(c.req.raw);
    try {
      return c.json(await o.startPayment({ kind: "topup", amount: body.amount as number }), 201);
    } catch (err) {
      return paymentProblem(err);
    }
  });
  app.post("/api/payments/cancel", (c) => {
    try {
      return c.json({ cancelled: o.cancelPayment() });
    } catch (err) {
      return paymentProblem(err);
    }
  });
  app.post("/api/call-staff", async (c) => {
    await o.callStaff();
    return c.json({ called: true });
  });
  app.post("/api/self-test", async (c) => c.json(await o.selfTest()));
  app.post("/api/terminal/end-of-day", async (c) => {
    if (!o.settleTerminal)
      return problemResponse({ title: "No card terminal", status: 404, detail: "this kiosk has no card terminal" });
    try {
      return c.json(await o.settleTerminal());
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
  // The page carries this boot's token; it is never cached and never framed by another page.
  let page: string | undefined;
  const servePage = async (c: Context) => {
    if (page === undefined) {
      try {
        const html = await readFile(join(kioskDist, "index.html"), "utf8");
        page = html.replace(/<\/head>/i, `  <meta name="${LOCAL_TOKEN_META}" content="${o.token}" />\n  </head>`);
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
