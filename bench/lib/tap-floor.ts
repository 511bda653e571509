/**
 * The tap benchmark's floor: the same PN532 driver on the same kind of pty,
 * forwarding each card straight to a bare WebSocket as a pre-made result,
 * and serving the same kiosk UI bundle for Chromium to render. No replica
 * lookup, no journal, no check-in desk, no uplink: what is left is the floor
 * of the tap-to-screen path (tty, serialport, frame decoding, WebSocket,
 * browser), against which the kiosk's own work is measured.
 */
import { readFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { openSerialPort, Pn532Reader } from "@paylane/device/hardware";
import type { KioskState, LiveMessage, TapResult } from "@paylane/protocol/kiosk-api";
import { kioskDist } from "@paylane/ui/dist";
import pino from "pino";
import { WebSocketServer } from "ws";

export interface FloorOptions {
  readerPath: string;
  pollIntervalMs: number;
  site: string;
  device: string;
  /** Member name by card UID; any other card is "not recognised", as on the kiosk. */
  names: ReadonlyMap<string, string>;
}

export class FloorKiosk {
  readonly #o: FloorOptions;
  #server: Server | undefined;
  #wss: WebSocketServer | undefined;
  #reader: Pn532Reader | undefined;

  constructor(o: FloorOptions) {
    this.#o = o;
  }

  get port(): number {
    const addr = this.#server?.address();
    if (!addr || typeof addr === "string") throw new Error("FloorKiosk is not listening");
    return addr.port;
  }

  /** Listens on 127.0.0.1, port 0; resolves once the reader has initialised the PN532. */
  async start(): Promise<void> {
    const { site, device } = this.#o;
    const [html, js] = await Promise.all([
      readFile(join(kioskDist, "index.html")),
      readFile(join(kioskDist, "app.js")),
    ]);
    const state: KioskState = {
      site,
      device,
      online: true,
      broker: true,
      cloud: true,
      reader: { kind: "pn532", simulated: false, state: "ok" },
      backlog: 0,
      storage: "ok",
    };
    const server = createServer((req, res) => {
      const path = (req.url ?? "/").split("?")[0];
      const body = path === "/" || path === "/index.html" ? html : path === "/app.js" ? js : undefined;
      if (!body) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, {
        "content-type": path === "/app.js" ? "text/javascript; charset=utf-8" : "text/html; charset=utf-8",
      });
      res.end(body);
    });
    this.#server = server;
    const wss = new WebSocketServer({ server, path: "/api/live" });
    this.#wss = wss;
    wss.on("connection", (ws) => ws.send(JSON.stringify({ type: "state", state } satisfies LiveMessage)));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject).listen(0, "127.0.0.1", () => {
        server.off("error", reject);
        resolve();
      });
    });

    let ready: () => void = () => {};
    const initialised = new Promise<void>((resolve) => {
      ready = resolve;
    });
    const reader = new Pn532Reader({
      openLink: () => openSerialPort(this.#o.readerPath),
      logger: pino({ level: "silent" }),
      pollIntervalMs: this.#o.pollIntervalMs,
      onStateChange: (s) => {
        if (s === "ok") ready();
      },
    });
    this.#reader = reader;
    await reader.start(async (uid) => this.#answer(uid));
    await initialised;
  }

  async stop(): Promise<void> {
    await this.#reader?.stop();
    for (const ws of this.#wss?.clients ?? []) ws.terminate();
    await new Promise<void>((resolve) => (this.#wss ? this.#wss.close(() => resolve()) : resolve()));
    await new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
    this.#reader = this.#wss = this.#server = undefined;
  }

  /** The pre-made answer, stamped now (the UI tells results apart by `at`). */
  #answer(uid: string): TapResult {
    const name = this.#o.names.get(uid);
    const at = new Date().toISOString();
    const result: TapResult = name
      ? { outcome: "welcome", name, message: `Welcome, ${name}`, at }
      : { outcome: "unknown", message: "Card not recognised", at };
    const text = JSON.stringify({ type: "result", result } satisfies LiveMessage);
    for (const ws of this.#wss?.clients ?? []) ws.send(text);
    return result;
  }
}
