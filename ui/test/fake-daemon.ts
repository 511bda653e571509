/**
 * A fake kiosk daemon for UI tests: serves the built UI and implements the
 * local API contract (../src/kiosk-api.ts) with behaviour the test controls.
 *
 * Payments: by default it sells `catalog`, opens a session for each POST
 * (answering it and pushing it, as the real daemon may do both), and cancels
 * the session in progress unless it is being authorized (409). The test
 * decides what a tap does (`onTap`, answering a PaymentResult) and pushes
 * state changes and results itself (`pushPayment`, `pushPaymentResult`).
 *
 * Like the real daemon it puts a token in the page it serves and refuses a
 * POST without it or without a JSON content type, and a WebSocket from
 * another origin, so a UI that forgets either fails here too (`refused`).
 */
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { extname, join, normalize } from "node:path";
import { type WebSocket, WebSocketServer } from "ws";
import {
  type Catalog,
  type KioskState,
  type LiveMessage,
  LOCAL_TOKEN_META,
  type PaymentResult,
  type PaymentSession,
  type ProblemDetails,
  type ReceiptNotice,
  type TapResult,
} from "../src/kiosk-api.ts";

export interface TapAnswer {
  status: number;
  body: TapResult | PaymentResult | ProblemDetails;
  /** Also push the result over the WebSocket, as the real daemon does. */
  push?: boolean;
}

export interface Answer {
  status: number;
  body: unknown;
}

/** A body POSTed to /api/payments or /api/topups, as the UI sent it. */
export interface PaymentRequest {
  path: "/api/payments" | "/api/topups";
  body: unknown;
}

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".map": "application/json",
};

export function defaultState(): KioskState {
  return {
    site: "site-1",
    device: "kiosk-7",
    online: true,
    broker: true,
    cloud: true,
    reader: { kind: "pn532", simulated: true, state: "ok" },
    backlog: 0,
    storage: "ok",
  };
}

export function defaultCatalog(): Catalog {
  return {
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
  };
}

function problem(status: number, title: string, detail?: string): ProblemDetails {
  return { type: "about:blank", title, status, ...(detail === undefined ? {} : { detail }) };
}

export class FakeDaemon {
  state: KioskState = defaultState();
  /** UIDs posted to /api/sim/tap and booking codes posted to /api/code, in order. */
  readonly taps: string[] = [];
  /** Answer to the next taps; the default refuses, so a test must say what it expects. */
  onTap: (uid: string) => TapAnswer = () => ({
    status: 500,
    body: { type: "about:blank", title: "No tap handler", status: 500 },
  });
  /** POSTs to /api/call-staff. */
  staffCalls = 0;
  /** While false the daemon is "down": WebSocket upgrades are dropped. */
  accepting = true;

  /** What GET /api/catalog answers. */
  catalog: Catalog = defaultCatalog();
  /** The payment session in progress, as this daemon sees it. */
  session: PaymentSession | undefined;
  /** Bodies POSTed to /api/payments and /api/topups, in order. */
  readonly paymentRequests: PaymentRequest[] = [];
  /** POSTs to /api/payments/cancel. */
  cancels = 0;
  /** Answer to POST /api/payments and /api/topups; the default opens a session (see `openSession`). */
  onPayment: (req: PaymentRequest) => Answer = (req) => this.openSession(req);
  /** Answer to POST /api/payments/cancel; the default is the contract's (see `cancelSession`). */
  onCancel: () => Answer = () => this.cancelSession();
  /** The token the served page carries; every POST must present it. */
  readonly token = randomBytes(16).toString("base64url");
  /** Requests refused for a missing token, a non-JSON body or a foreign Origin: "METHOD path: why". */
  readonly refused: string[] = [];
  private sessions = 0;
  private origin = "";

  private readonly wss = new WebSocketServer({ noServer: true });
  private readonly server = createServer((req, res) => {
    this.handle(req, res).catch((err: unknown) => {
      res.writeHead(500).end(String(err));
    });
  });

  constructor(private readonly root: string) {}

  async start(): Promise<string> {
    this.server.on("upgrade", (req, socket, head) => {
      if (!this.accepting || req.url !== "/api/live") {
        socket.destroy();
        return;
      }
      if (req.headers.origin !== this.origin) {
        this.refused.push(`WS ${req.url}: origin ${req.headers.origin ?? "(none)"}`);
        socket.end("HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        ws.send(JSON.stringify({ type: "state", state: this.state } satisfies LiveMessage));
      });
    });
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    const { port } = this.server.address() as AddressInfo;
    this.origin = `http://127.0.0.1:${port}`;
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
   * second session are refused with problem+json, as the contract says.
   */
  openSession(req: PaymentRequest): Answer {
    if (!this.catalog.ready) return { status: 503, body: problem(503, "Not ready", "Payments are not available yet.") };
    if (this.session) return { status: 409, body: problem(409, "Busy", "A payment is already in progress.") };
    const body = typeof req.body === "object" && req.body !== null ? (req.body as Record<string, unknown>) : {};
    const item =
      req.path === "/api/payments" && typeof body.itemId === "string"
        ? this.catalog.items.find((i) => i.id === body.itemId)
        : undefined;
    if (req.path === "/api/payments" && typeof body.itemId === "string" && !item) {
      return { status: 404, body: problem(404, "Unknown item", `No item "${body.itemId}" on the price list.`) };
    }
    const amount = item?.price ?? body.amount;
    if (typeof amount !== "number" || !Number.isInteger(amount) || amount < 1 || amount > this.catalog.maxAmount) {
      return { status: 400, body: problem(400, "Invalid amount", "amount must be an integer of minor units.") };
    }
    this.sessions += 1;
    const session: PaymentSession = {
      id: `session-${this.sessions}`,
      kind: req.path === "/api/topups" ? "topup" : "purchase",
      amount,
      currency: this.catalog.currency,
      ...(item ? { itemName: item.name } : {}),
      state: "awaiting-card",
      expiresAt: new Date(Date.now() + 60_000).toISOString(),
    };
    this.pushPayment(session);
    return { status: 201, body: session };
  }

  /** The default answer to a cancel: 409 while authorizing, else the session ends (pushed) and `cancelled`. */
  cancelSession(): Answer {
    const session = this.session;
    if (!session) return { status: 200, body: { cancelled: false } };
    if (session.state === "authorizing") {
      return { status: 409, body: problem(409, "Authorizing", "The card is being authorized.") };
    }
    this.pushPaymentEnded(session.id, "cancelled");
    return { status: 200, body: { cancelled: true } };
  }

  /** Kill every live connection, like a daemon restart. */
  dropClients(): void {
    for (const ws of this.wss.clients) ws.terminate();
  }

  reset(): void {
    this.state = defaultState();
    this.taps.length = 0;
    this.refused.length = 0;
    this.staffCalls = 0;
    this.accepting = true;
    this.catalog = defaultCatalog();
    this.session = undefined;
    this.paymentRequests.length = 0;
    this.cancels = 0;
    this.onPayment = (req) => this.openSession(req);
    this.onCancel = () => this.cancelSession();
    this.dropClients();
  }

  private broadcast(msg: LiveMessage): void {
    const data = JSON.stringify(msg);
    for (const ws of this.wss.clients as Set<WebSocket>) ws.send(data);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (url.pathname === "/api/state" && req.method === "GET") {
      return json(res, 200, this.state);
    }
    if (url.pathname === "/api/catalog" && req.method === "GET") {
      return json(res, 200, this.catalog);
    }
    if (req.method === "POST") {
      const why = refusalOf(req, this.token);
      if (why) {
        this.refused.push(`POST ${url.pathname}: ${why.detail}`);
        return json(res, why.status, problem(why.status, why.title, why.detail));
      }
    }
    if ((url.pathname === "/api/payments" || url.pathname === "/api/topups") && req.method === "POST") {
      const request: PaymentRequest = { path: url.pathname, body: JSON.parse(await readBody(req)) as unknown };
      this.paymentRequests.push(request);
      const answer = this.onPayment(request);
      return json(res, answer.status, answer.body);
    }
    if (url.pathname === "/api/payments/cancel" && req.method === "POST") {
      this.cancels++;
      const answer = this.onCancel();
      return json(res, answer.status, answer.body);
    }
    if (url.pathname === "/api/call-staff" && req.method === "POST") {
      this.staffCalls++;
      return json(res, 200, { called: true });
    }
    const field = { "/api/sim/tap": "uid", "/api/code": "code" }[url.pathname];
    if (field && req.method === "POST") {
      const body: unknown = JSON.parse(await readBody(req));
      const value =
        typeof body === "object" && body !== null && field in body ? String(body[field as keyof typeof body]) : "";
      this.taps.push(value);
      const answer = this.onTap(value);
      const reply = answer.body;
      if (answer.push) {
        if ("sessionId" in reply) this.pushPaymentResult(reply);
        else if ("outcome" in reply) this.pushResult(reply);
      }
      return json(res, answer.status, answer.body);
    }
    if (req.method !== "GET") return json(res, 405, { type: "about:blank", title: "Method Not Allowed", status: 405 });
    const file = url.pathname === "/" ? "index.html" : normalize(url.pathname).replace(/^[/\\]+/, "");
    if (file.startsWith("..")) return json(res, 404, { type: "about:blank", title: "Not Found", status: 404 });
    try {
      let data: Buffer | string = await readFile(join(this.root, file));
      if (file === "index.html") {
        data = data
          .toString("utf8")
          .replace("</head>", `<meta name="${LOCAL_TOKEN_META}" content="${this.token}"></head>`);
      }
      res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" }).end(data);
    } catch {
      json(res, 404, { type: "about:blank", title: "Not Found", status: 404 });
    }
  }
}

/** Why the real daemon would refuse this POST, if it would (the Origin check aside). */
function refusalOf(req: IncomingMessage, token: string): { status: number; title: string; detail: string } | undefined {
  const type = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
  if (type !== "application/json") return { status: 415, title: "JSON only", detail: "no JSON content type" };
  if (req.headers.authorization !== `Bearer ${token}`)
    return { status: 401, title: "Token required", detail: "no token" };
  return undefined;
}

/** Errors are problem+json, as the real daemon's are. */
function json(res: ServerResponse, status: number, body: unknown): void {
  const type = status < 400 ? "application/json" : "application/problem+json";
  res.writeHead(status, { "content-type": type }).end(JSON.stringify(body));
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}
