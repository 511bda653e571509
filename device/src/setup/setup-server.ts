/**
 * The local API while the kiosk is not enrolled: the touch UI's page (with
 * this boot's token, behind the same loopback guard as the daemon's), the
 * setup routes, and `GET /api/state` answering 409 `{ setup: true }` so the
 * UI shows the setup screen.
 */
import { kioskApi } from "@paylane/protocol/kiosk-api";
import { type Listening, listen, registeredCounter } from "@paylane/protocol/service";
import { Hono } from "hono";
import type { Logger } from "pino";
import type { Registry as MetricsRegistry } from "prom-client";
import type { KioskFile } from "../config.ts";
import { assertLoopbackHost, kioskPageRoutes, localOnly } from "../local-api.ts";
import { issueLocalApiToken } from "../local-api-token.ts";
import { type SetupRouteHandlers, setupRoutes } from "./setup-routes.ts";

export class SetupApiServer {
  readonly name = "setup API";
  readonly #file: KioskFile;
  readonly #log: Logger;
  readonly #metrics: MetricsRegistry;
  readonly #routes: SetupRouteHandlers;
  #http: Listening | undefined;

  constructor(o: { file: KioskFile; logger: Logger; metrics: MetricsRegistry; routes: SetupRouteHandlers }) {
    this.#file = o.file;
    this.#log = o.logger;
    this.#metrics = o.metrics;
    this.#routes = o.routes;
    assertLoopbackHost(o.file.http.host);
  }

  get port(): number {
    if (!this.#http) throw new Error("the setup API is not listening");
    return this.#http.port;
  }

  async start(): Promise<void> {
    const { http, dataDir } = this.#file;
    const token = await issueLocalApiToken(dataDir);
    const app = new Hono();
    app.onError((err) => {
      this.#log.error({ err: err.message }, "setup API error");
      return new Response(JSON.stringify({ title: "The kiosk could not do that", status: 500, detail: err.message }), {
        status: 500,
        headers: { "content-type": "application/problem+json" },
      });
    });
    const refusals = registeredCounter({
      name: "paylane_device_local_api_refused_total",
      help: "Local API requests refused: wrong Host, foreign Origin, not JSON, no token, WebSocket without Origin",
      labelNames: ["reason"],
      registers: [this.#metrics],
    });
    app.use("*", localOnly({ token, refused: (reason) => refusals.inc({ reason }) }));
    app.get(kioskApi.state.path, (c) => c.json({ setup: true }, 409));
    app.route("/", setupRoutes(this.#routes));
    kioskPageRoutes(app, token);
    this.#http = await listen(app, {
      port: http.port,
      host: http.host,
      setting: "http.port in the kiosk's config",
    });
  }

  async stop(): Promise<void> {
    await this.#http?.close();
    this.#http = undefined;
  }
}
