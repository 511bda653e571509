/**
 * The daemon's local HTTP + WebSocket API for its touch UI, bound to
 * 127.0.0.1: the UI is the only client, and nothing here is for the network.
 */
import { relative } from "node:path";
import { serveStatic } from "@hono/node-server/serve-static";
import { createNodeWebSocket } from "@hono/node-ws";
import { problemResponse } from "@paylane/protocol";
import { type HealthReport, opsRoutes } from "@paylane/protocol/service";
import { kioskDist } from "@paylane/ui/dist";
import type { Catalog, KioskState, LiveMessage, PaymentResult, PaymentSession, TapResult } from "@paylane/ui/kiosk-api";
import { Hono } from "hono";
import type { WSContext } from "hono/ws";
import type { Registry as MetricsRegistry } from "prom-client";
import { PaymentBusyError, PaymentInputError, type StartRequest } from "./payments/payment-desk.ts";
import { type StatusFacts, statusPage } from "./status-page.ts";

export interface LocalApiOptions {
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

export function createLocalApi(o: LocalApiOptions) {
  const app = new Hono();
  // Every error the UI gets is problem+json, e.g. a staff call the journal could not write.
  app.onError((err) => problemResponse({ title: "The kiosk could not do that", status: 500, detail: err.message }));
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
  app.get("/status", async (c) => c.html(statusPage(await o.status())));
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
