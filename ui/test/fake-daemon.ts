/**
 * A fake kiosk daemon for UI tests: serves the built UI and answers the routes
 * of the contract (@paylane/protocol/kiosk-api) the way the test scripts it.
 * It cannot drift from the contract: it routes by `kioskApi`, refuses a body
 * the route's schema refuses (as the daemon does), and checks all it sends:
 * a push the contract does not allow throws in the test, an answer it does
 * not allow is answered 500 and noted in `offContract`.
 *
 * By default it sells `catalog` and opens a session for each payment or
 * top-up (answered and pushed), and cancels it unless it is being authorized
 * (409); a tap does what `onTap` says. Like the daemon it puts a token in the
 * page and refuses a POST without it or without JSON, and a WebSocket from
 * another origin, so a UI that forgets either fails here too (`refused`).
 */
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import {
  type Catalog,
  type KioskRoute,
  type KioskState,
  kioskApi,
  LIVE_PATH,
  type LiveMessage,
  LiveMessageSchema,
  type PaymentResult,
  type PaymentSession,
  type ProblemDetails,
  ProblemSchema,
  type ReceiptNotice,
  refusalDetail,
  type TapResult,
} from "@paylane/protocol/kiosk-api";
import { WebSocketServer } from "ws";
import { type Answer, readBody, send, serveUiFile } from "./daemon-http.ts";

export type { Answer };

export interface TapAnswer extends Answer {
  body: TapResult | PaymentResult | ProblemDetails;
  /** Also push the result over the WebSocket, as the real daemon does. */
  push?: boolean;
}

/** A body POSTed to /api/payments or /api/topups, as the UI sent it. */
export interface PaymentRequest {
  path: "/api/payments" | "/api/topups";
  body: unknown;
}

const defaultState = (): KioskState => ({
  site: "site-1",
  device: "kiosk-7",
  online: true,
  broker: true,
  cloud: true,
  reader: { kind: "pn532", simulated: true, state: "ok" },
  backlog: 0,
  storage: "ok",
});

const defaultCatalog = (): Catalog => ({
  ready: true,
  currency: "EUR",
  items: [
    { id: "coffee", name: "Coffee", price: 250 },
    { id: "day-pass", name: "Day pass", price: 1200 },
    { id: "towel", name: "Towel", price: 300 },
  ],
  topups: true,
  topupAmounts: [1000, 2000, 5000],
  maxAmount: 5000,
});

type ProblemAnswer = { status: number; body: ProblemDetails };

function problem(status: number, title: string, detail?: string): ProblemAnswer {
  return { status, body: { type: "about:blank", title, status, ...(detail === undefined ? {} : { detail }) } };
}

export class FakeDaemon {
  state: KioskState = defaultState();
  /** What GET /api/catalog answers. */
  catalog: Catalog = defaultCatalog();
  /** The payment session in progress, as this daemon sees it. */
  session: PaymentSession | undefined;
  /** While false the daemon is "down": WebSocket upgrades are dropped. */
  accepting = true;
  /** UIDs posted to /api/sim/tap and booking codes posted to /api/code, in order, as the UI sent them. */
  readonly taps: string[] = [];
  /** Bodies POSTed to /api/payments and /api/topups, in order. */
  readonly paymentRequests: PaymentRequest[] = [];
  /** POSTs to /api/call-staff and /api/payments/cancel. */
  staffCalls = 0;
  cancels = 0;
  /** Requests refused for a missing token, a non-JSON body or a foreign Origin: "METHOD path: why". */
  readonly refused: string[] = [];
  /** Answers the test made that the contract does not allow: "path: why". */
  readonly offContract: string[] = [];
  /** The token the served page carries; every POST must present it. */
  readonly token = randomBytes(16).toString("base64url");

  /** Answer to a valid tap or booking code (normalised); the default refuses, so a test must say what it expects. */
  onTap: (uid: string) => TapAnswer = () => problem(500, "No tap handler");
  /** Answer to POST /api/payments and /api/topups; the default opens a session (see `openSession`). */
  onPayment: (req: PaymentRequest) => Answer = (req) => this.openSession(req);
  /** Answer to POST /api/payments/cancel; the default is the contract's (see `cancelSession`). */
  onCancel: () => Answer = () => this.cancelSession();

  /** What each route does with its body (raw as sent, and as the contract parsed it). */
  private readonly handlers = new Map<KioskRoute, (raw: unknown, parsed: unknown) => Answer>([
    [kioskApi.state, () => ({ status: 200, body: this.state })],
    [kioskApi.catalog, () => ({ status: 200, body: this.catalog })],
    [kioskApi.simTap, (raw, parsed) => this.tap((raw as { uid: string }).uid, (parsed as { uid: string }).uid)],
    [kioskApi.code, (raw, parsed) => this.tap((raw as { code: string }).code, (parsed as { code: string }).code)],
    [kioskApi.payment, (raw) => this.pay({ path: "/api/payments", body: raw })],
    [kioskApi.topup, (raw) => this.pay({ path: "/api/topups", body: raw })],
    [
      kioskApi.cancelPayment,
      () => {
        this.cancels++;
        return this.onCancel();
      },
    ],
    [
      kioskApi.callStaff,
      () => {
        this.staffCalls++;
        return { status: 200, body: { called: true } };
      },
    ],
  ]);
  private sessions = 0;
  private origin = "";
  private readonly wss = new WebSocketServer({ noServer: true });
  private readonly server = createServer((req, res) => {
    this.handle(req, res).catch((err: unknown) => res.writeHead(500).end(String(err)));
  });

  constructor(private readonly root: string) {}

  async start(): Promise<string> {
    this.server.on("upgrade", (req, socket, head) => {
      if (!this.accepting || req.url !== LIVE_PATH) return socket.destroy();
      if (req.headers.origin !== this.origin) {
        this.refused.push(`WS ${req.url}: origin ${req.headers.origin ?? "(none)"}`);
        return socket.end("HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => ws.send(live({ type: "state", state: this.state })));
    });
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.origin = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return `${this.origin}/`;
  }

  async stop(): Promise<void> {
    this.dropClients();
    this.wss.close();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  get clients(): number {
    return this.wss.clients.size;
  }

  /** Replace the state and push it to every UI. */
  setState(patch: Partial<KioskState>): void {
    this.state = { ...this.state, ...patch };
    this.broadcast({ type: "state", state: this.state });
  }

  pushResult(result: TapResult): void {
    this.broadcast({ type: "result", result });
  }

  pushReceipt(receipt: ReceiptNotice): void {
    this.broadcast({ type: "receipt", receipt });
  }

  /** The session changed (e.g. to `authorizing` or `awaiting-terminal`): remember it and tell every UI. */
  pushPayment(session: PaymentSession): void {
    this.session = session;
    this.broadcast({ type: "payment", session });
  }

  /** The session ended with a result. */
  pushPaymentResult(result: PaymentResult): void {
    if (this.session?.id === result.sessionId) this.session = undefined;
    this.broadcast({ type: "payment-result", result });
  }

  /** The session ended without one (cancelled, or idle past `expiresAt`). */
  pushPaymentEnded(sessionId: string, reason: "cancelled" | "timeout"): void {
    if (this.session?.id === sessionId) this.session = undefined;
    this.broadcast({ type: "payment-ended", sessionId, reason });
  }

  /**
   * The default answer to a payment or top-up: a session for the item's price
   * or the amount, answered and pushed. Unknown items, bad amounts and a
   * second session are refused with problem+json, as the real daemon does.
   */
  openSession(req: PaymentRequest): Answer {
    if (!this.catalog.ready) return problem(503, "Not ready", "Payments are not available yet.");
    if (this.session) return problem(409, "Busy", "A payment is already in progress.");
    const body = req.body as { itemId?: string; amount?: number };
    const item = body.itemId === undefined ? undefined : this.catalog.items.find((i) => i.id === body.itemId);
    if (body.itemId !== undefined && !item) {
      return problem(404, "Unknown item", `No item "${body.itemId}" on the price list.`);
    }
    const amount = item?.price ?? body.amount ?? 0;
    if (!Number.isInteger(amount) || amount < 1 || amount > this.catalog.maxAmount) {
      return problem(400, "Invalid amount", "amount must be an integer of minor units.");
    }
    this.sessions += 1;
    this.pushPayment({
      id: `session-${this.sessions}`,
      kind: req.path === "/api/topups" ? "topup" : "purchase",
      amount,
      currency: this.catalog.currency,
      ...(item ? { itemName: item.name } : {}),
      state: "awaiting-card",
      expiresAt: new Date(Date.now() + 60_000).toISOString(),
    });
    return { status: 201, body: this.session };
  }

  /** The default answer to a cancel: 409 while authorizing, else the session ends (pushed) and `cancelled`. */
  cancelSession(): Answer {
    const session = this.session;
    if (!session) return { status: 200, body: { cancelled: false } };
    if (session.state === "authorizing") return problem(409, "Authorizing", "The card is being authorized.");
    this.pushPaymentEnded(session.id, "cancelled");
    return { status: 200, body: { cancelled: true } };
  }

  /** Kill every live connection, like a daemon restart. */
  dropClients(): void {
    for (const ws of this.wss.clients) ws.terminate();
  }

  reset(): void {
    this.state = defaultState();
    this.catalog = defaultCatalog();
    this.session = undefined;
    this.accepting = true;
    for (const list of [this.taps, this.paymentRequests, this.refused, this.offContract]) list.length = 0;
    this.staffCalls = 0;
    this.cancels = 0;
    this.onPayment = (req) => this.openSession(req);
    this.onCancel = () => this.cancelSession();
    this.dropClients();
  }

  private tap(sent: string, value: string): Answer {
    this.taps.push(sent);
    const answer = this.onTap(value);
    if (answer.push) {
      if ("sessionId" in answer.body) this.pushPaymentResult(answer.body);
      else if ("outcome" in answer.body) this.pushResult(answer.body);
    }
    return answer;
  }

  private pay(req: PaymentRequest): Answer {
    this.paymentRequests.push(req);
    return this.onPayment(req);
  }

  private broadcast(msg: LiveMessage): void {
    const data = live(msg);
    for (const ws of this.wss.clients) ws.send(data);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? "/", "http://localhost").pathname;
    const route = Object.values(kioskApi).find((r) => r.path === path && r.method === req.method);
    if (!route) return this.serveFile(path, req.method, res);
    if (route.method === "POST") {
      const why = refusalOf(req, this.token);
      if (why) {
        this.refused.push(`POST ${path}: ${why.body.detail}`);
        return send(res, why);
      }
    }
    const text = await readBody(req);
    try {
      send(res, this.answer(route, text));
    } catch (err) {
      this.offContract.push(`${path}: ${(err as Error).message}`);
      send(res, problem(500, "Off contract", (err as Error).message));
    }
  }

  /** The test's answer to a body the route's schema accepts, checked against the contract. */
  private answer(route: KioskRoute, text: string): Answer {
    const handler = this.handlers.get(route);
    if (!handler) return problem(404, "Not Found", "the UI does not call this route");
    let raw: unknown;
    let parsed: unknown;
    if (route.body) {
      try {
        raw = JSON.parse(text);
      } catch {
        return problem(400, "Invalid JSON", "body: not JSON");
      }
      const checked = route.body.safeParse(raw);
      if (!checked.success) return problem(400, route.invalid ?? "Invalid request", refusalDetail(checked.error));
      parsed = checked.data;
    }
    const answer = handler(raw, parsed);
    const checked = (answer.status < 400 ? route.response : ProblemSchema).safeParse(answer.body);
    if (checked.success) return answer;
    throw new Error(`${answer.status} ${JSON.stringify(answer.body)}: ${refusalDetail(checked.error)}`);
  }

  /** The built UI; the page carries the token, as the real daemon's does. */
  private serveFile(path: string, method: string | undefined, res: ServerResponse): Promise<void> {
    return serveUiFile(this.root, this.token, path, method, res);
  }
}

/** A WebSocket message, only if the contract allows it: a test pushing anything else fails right there. */
function live(msg: LiveMessage): string {
  const checked = LiveMessageSchema.safeParse(msg);
  if (!checked.success) throw new Error(`off-contract push ${JSON.stringify(msg)}: ${refusalDetail(checked.error)}`);
  return JSON.stringify(msg);
}

/** Why the real daemon would refuse this POST, if it would (the Origin check aside). */
function refusalOf(req: IncomingMessage, token: string): ProblemAnswer | undefined {
  const type = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
  if (type !== "application/json") return problem(415, "JSON only", "no JSON content type");
  if (req.headers.authorization !== `Bearer ${token}`) return problem(401, "Token required", "no token");
  return undefined;
}
