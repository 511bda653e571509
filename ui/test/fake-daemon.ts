/**
 * A fake kiosk daemon for UI tests: serves the built UI and implements the
 * local API contract (../src/kiosk-api.ts) with behaviour the test controls.
 */
import { readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { extname, join, normalize } from "node:path";
import { type WebSocket, WebSocketServer } from "ws";
import type { KioskState, LiveMessage, ProblemDetails, ReceiptNotice, TapResult } from "../src/kiosk-api.ts";

export interface TapAnswer {
  status: number;
  body: TapResult | ProblemDetails;
  /** Also push the result over the WebSocket, as the real daemon does. */
  push?: boolean;
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
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        ws.send(JSON.stringify({ type: "state", state: this.state } satisfies LiveMessage));
      });
    });
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    const { port } = this.server.address() as AddressInfo;
    return `http://127.0.0.1:${port}/`;
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

  /** Kill every live connection, like a daemon restart. */
  dropClients(): void {
    for (const ws of this.wss.clients) ws.terminate();
  }

  reset(): void {
    this.state = defaultState();
    this.taps.length = 0;
    this.staffCalls = 0;
    this.accepting = true;
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
      if (answer.push && "outcome" in answer.body) this.pushResult(answer.body);
      return json(res, answer.status, answer.body);
    }
    if (req.method !== "GET") return json(res, 405, { type: "about:blank", title: "Method Not Allowed", status: 405 });
    const file = url.pathname === "/" ? "index.html" : normalize(url.pathname).replace(/^[/\\]+/, "");
    if (file.startsWith("..")) return json(res, 404, { type: "about:blank", title: "Not Found", status: 404 });
    try {
      const data = await readFile(join(this.root, file));
      res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" }).end(data);
    } catch {
      json(res, 404, { type: "about:blank", title: "Not Found", status: 404 });
    }
  }
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
