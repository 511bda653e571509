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
import type { KioskState, LiveMessage, TapResult } from "@paylane/ui/kiosk-api";
import { Hono } from "hono";
import type { WSContext } from "hono/ws";
import type { Registry as MetricsRegistry } from "prom-client";

export interface LocalApiOptions {
  state: () => Promise<KioskState>;
  health: () => Promise<HealthReport>;
  metrics: MetricsRegistry;
  /** Present when the reader is simulated: places a card on it. */
  simulatedTap?: (uid: string) => Promise<TapResult>;
}

const UID = /^([0-9A-F]{8}|[0-9A-F]{14}|[0-9A-F]{20})$/;

export function createLocalApi(o: LocalApiOptions) {
  const app = new Hono();
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
    let body: unknown;
    try {
      body = await c.req.json();
    } catch {
      return problemResponse({ title: "Invalid request body", status: 400, detail: "expected a JSON object {uid}" });
    }
    const raw = typeof body === "object" && body !== null ? (body as { uid?: unknown }).uid : undefined;
    const uid = typeof raw === "string" ? raw.replace(/[\s:]/g, "").toUpperCase() : "";
    if (!UID.test(uid)) {
      return problemResponse({
        title: "Invalid card UID",
        status: 400,
        detail: "uid: expected 4, 7 or 10 bytes as hex, e.g. 04A2B3C4",
      });
    }
    return c.json(await o.simulatedTap(uid));
  });
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
