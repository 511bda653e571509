/**
 * A fake kiosk daemon before enrolment, for the setup screen's browser tests:
 * serves the built UI with this boot's token in the page, answers the setup
 * routes of the contract (@paylane/protocol/setup-api) the way the test
 * scripts them, and `GET /api/state` with 409 `{setup: true}` until enrolled.
 * Once `enrolled()` it runs as a kiosk: `/api/state` answers a KioskState and
 * the live WebSocket opens, as the real daemon's normal mode does.
 *
 * Like FakeDaemon it cannot drift from the contract: a body the route's
 * schema refuses is refused, a POST without the token or JSON is refused and
 * noted in `refused`, and an answer the contract does not allow is answered
 * 500 and noted in `offContract`.
 */

import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import {
  type KioskState,
  KioskStateSchema,
  LIVE_PATH,
  ProblemSchema,
  refusalDetail,
} from "@paylane/protocol/kiosk-api";
import { type Diagnostics, type SetupState, setupApi } from "@paylane/protocol/setup-api";
import { WebSocketServer } from "ws";
import type * as z from "zod/mini";
import { type Answer, readBody, send, serveUiFile } from "./daemon-http.ts";

export type { Answer };

export const defaultSetup = (): SetupState => ({
  enrolled: false,
  site: "lido",
  device: "kiosk-entrance",
  fingerprint: "3f9a1c2be4d05a77",
  cloudUrl: "https://cloud.paylane.example",
  network: { online: true, addresses: ["192.168.1.42", "fe80::dea6:32ff:fe01:2a3b"] },
  enrolment: { state: "waiting-for-code" },
  claimInImage: false,
});

export const defaultDiagnostics = (): Diagnostics => ({
  reader: { ok: true, detail: "PN532 v1.6 on /dev/serial0" },
  printer: { ok: true, detail: "ESC/POS on /dev/usb/lp0", paper: "ok" },
  gpio: { ok: true, detail: "door relay on GPIO 17" },
  cloud: { ok: true, detail: "https://cloud.paylane.example answered in 84 ms" },
  clock: { ok: true, detail: "NTP synchronised, 3 ms off" },
  at: "2026-12-05T09:30:00.000Z",
});

const kioskState = (s: SetupState): KioskState => ({
  site: s.site,
  device: s.device,
  online: true,
  broker: true,
  cloud: true,
  reader: { kind: "pn532", simulated: false, state: "ok" },
  backlog: 0,
  storage: "ok",
});

function problem(status: number, title: string, detail?: string, extra: object = {}): Answer {
  return {
    status,
    body: { type: "about:blank", title, status, ...(detail === undefined ? {} : { detail }), ...extra },
  };
}

interface Route {
  method: "GET" | "POST";
  path: string;
  body?: z.ZodMiniType;
  response: z.ZodMiniType;
}

export class SetupDaemon {
  setup: SetupState = defaultSetup();
  diagnostics: Diagnostics = defaultDiagnostics();
  /** Once true the daemon runs as a kiosk: `/api/state` answers and the live socket opens. */
  running = false;
  /** Codes POSTed to /api/setup/claim, as the UI sent them. */
  readonly claims: string[] = [];
  testReceipts = 0;
  /** GETs of /api/diagnostics. */
  diagnosticsAsked = 0;
  readonly refused: string[] = [];
  readonly offContract: string[] = [];
  readonly token = randomBytes(16).toString("base64url");

  /** Answer to a claim the contract accepts; the default starts enrolling (202). */
  onClaim: (code: string) => Answer = () => this.startEnrolling();
  /** Answer to the test receipt. */
  onTestReceipt: () => Answer = () => ({ status: 200, body: { printed: true, detail: "test receipt printed" } });

  private origin = "";
  private readonly wss = new WebSocketServer({ noServer: true });
  private readonly server = createServer((req, res) => {
    this.handle(req, res).catch((err: unknown) => res.writeHead(500).end(String(err)));
  });
  private readonly routes = new Map<Route, (body: unknown) => Answer>([
    [setupApi.state, () => ({ status: 200, body: this.setup })],
    [
      setupApi.claim,
      (body) => {
        const code = (body as { code: string }).code;
        this.claims.push(code);
        return this.onClaim(code);
      },
    ],
    [
      setupApi.diagnostics,
      () => {
        this.diagnosticsAsked++;
        return { status: 200, body: this.diagnostics };
      },
    ],
    [
      setupApi.testReceipt,
      () => {
        this.testReceipts++;
        return this.onTestReceipt();
      },
    ],
  ]);

  constructor(private readonly root: string) {}

  async start(): Promise<string> {
    this.server.on("upgrade", (req, socket, head) => {
      // Not enrolled: no live view, as the real daemon's setup mode.
      if (!this.running || req.url !== LIVE_PATH) return socket.destroy();
      if (req.headers.origin !== this.origin) {
        this.refused.push(`WS ${req.url}: origin ${req.headers.origin ?? "(none)"}`);
        return socket.destroy();
      }
      this.wss.handleUpgrade(req, socket, head, (ws) =>
        ws.send(JSON.stringify({ type: "state", state: kioskState(this.setup) })),
      );
    });
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.origin = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return `${this.origin}/`;
  }

  async stop(): Promise<void> {
    for (const ws of this.wss.clients) ws.terminate();
    this.wss.close();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  reset(): void {
    this.setup = defaultSetup();
    this.diagnostics = defaultDiagnostics();
    this.running = false;
    for (const list of [this.claims, this.refused, this.offContract]) list.length = 0;
    this.testReceipts = 0;
    this.diagnosticsAsked = 0;
    this.onClaim = () => this.startEnrolling();
    this.onTestReceipt = () => ({ status: 200, body: { printed: true, detail: "test receipt printed" } });
    for (const ws of this.wss.clients) ws.terminate();
  }

  /** The default answer to a claim: 202, enrolling, the kiosk's key made. */
  startEnrolling(): Answer {
    this.enrolment({ state: "enrolling", step: "key" });
    return { status: 202, body: this.setup };
  }

  enrolment(enrolment: SetupState["enrolment"]): void {
    this.setup = { ...this.setup, enrolment };
  }

  /** Enrolment done; `running`: the kiosk is up too (else it is still switching over). */
  enrolled(running: boolean): void {
    this.setup = { ...this.setup, enrolled: true, enrolment: { state: "enrolled", step: "connected" } };
    this.running = running;
  }

  /** The daemon restarts in setup mode (its identity gone): live views are cut and setup is served again. */
  backToSetup(): void {
    this.setup = defaultSetup();
    this.running = false;
    for (const ws of this.wss.clients) ws.terminate();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? "/", "http://localhost").pathname;
    if (path === "/api/state" && req.method === "GET") {
      return send(
        res,
        this.running
          ? this.checked("/api/state", KioskStateSchema, { status: 200, body: kioskState(this.setup) })
          : problem(409, "Not enrolled", "this kiosk is in setup", { setup: true }),
      );
    }
    const route = [...this.routes.keys()].find((r) => r.path === path && r.method === req.method);
    if (!route) {
      if (path.startsWith("/api/")) return send(res, problem(404, "Not Found", "not served in setup mode"));
      return this.serveFile(path, req.method, res);
    }
    if (route.method === "POST") {
      const why = refusalOf(req, this.token);
      if (why) {
        this.refused.push(`POST ${path}: ${why}`);
        return send(res, problem(why === "no token" ? 401 : 415, "Refused", why));
      }
    }
    const text = await readBody(req);
    let body: unknown;
    if (route.body) {
      try {
        body = JSON.parse(text);
      } catch {
        return send(res, problem(400, "Invalid JSON", "body: not JSON"));
      }
      const parsed = route.body.safeParse(body);
      if (!parsed.success) return send(res, problem(400, "Invalid claim code", refusalDetail(parsed.error)));
    }
    const answer = this.routes.get(route)?.(body) ?? problem(500, "No handler");
    send(res, this.checked(path, answer.status < 400 ? route.response : ProblemSchema, answer));
  }

  /** The test's answer, if the contract allows it. */
  private checked(path: string, schema: z.ZodMiniType, answer: Answer): Answer {
    const parsed = schema.safeParse(answer.body);
    if (parsed.success) return answer;
    const why = `${answer.status} ${JSON.stringify(answer.body)}: ${refusalDetail(parsed.error)}`;
    this.offContract.push(`${path}: ${why}`);
    return problem(500, "Off contract", why);
  }

  private serveFile(path: string, method: string | undefined, res: ServerResponse): Promise<void> {
    return serveUiFile(this.root, this.token, path, method, res);
  }
}

function refusalOf(req: IncomingMessage, token: string): string | undefined {
  const type = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase();
  if (type !== "application/json") return "no JSON content type";
  if (req.headers.authorization !== `Bearer ${token}`) return "no token";
  if (req.headers.origin !== undefined && `${req.headers.origin}/` !== new URL("/", `http://${req.headers.host}`).href)
    return `origin ${req.headers.origin}`;
  return undefined;
}
