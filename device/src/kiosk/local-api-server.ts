/**
 * Serves the touch UI on loopback: the local API, its `/status` page, and the
 * live WebSocket feed. The feed is the bus seen by a screen: each happening a
 * user should see is sent as it happens, and the kiosk's state after any
 * change that alters it.
 */
import { type Listening, listen } from "@paylane/protocol/service";
import { assertLoopbackHost, createLocalApi, type LocalApiOptions } from "../local-api.ts";
import { issueLocalApiToken } from "../local-api-token.ts";
import { type KioskEvents, listen as listenTo } from "./events.ts";
import type { KioskStatus } from "./kiosk-status.ts";
import type { KioskKit } from "./kit.ts";
import type { Part } from "./lifecycle.ts";

/** Everything the routes do, beyond what the status gives (see LocalApiOptions). */
export type LocalApiRoutes = Omit<LocalApiOptions, "token" | "state" | "health" | "status">;

export class LocalApiServer implements Part {
  readonly name = "local API";
  readonly #k: KioskKit;
  readonly #status: KioskStatus;
  readonly #routes: LocalApiRoutes;
  #api: ReturnType<typeof createLocalApi> | undefined;
  #http: Listening | undefined;
  #unlisten = () => {};

  constructor(kit: KioskKit, status: KioskStatus, routes: LocalApiRoutes) {
    this.#k = kit;
    this.#status = status;
    this.#routes = routes;
    assertLoopbackHost(kit.config.http.host);
  }

  get port(): number {
    if (!this.#http) throw new Error("the local API is not listening");
    return this.#http.port;
  }

  async start(): Promise<void> {
    const { config, bus } = this.#k;
    const status = this.#status;
    if (config.reader.type === "pn532-simulator") {
      this.#k.log.warn(
        "reader.type is pn532-simulator: cards are simulated, POST /api/sim/tap is on (never on a kiosk in service)",
      );
    }
    const api = createLocalApi({
      ...this.#routes,
      token: await issueLocalApiToken(config.dataDir),
      state: () => status.state(),
      health: () => status.health(),
      status: () => status.page(),
    });
    this.#api = api;
    this.#http = await listen(api.app, {
      port: config.http.port,
      host: config.http.host,
      setting: "http.port in the kiosk's config (KIOSK_PORT_BASE under npm start)",
    });
    api.injectWebSocket(this.#http.server as Parameters<typeof api.injectWebSocket>[0]);
    const pushState = () => void this.#k.work.track(this.#pushState());
    this.#unlisten = listenTo(bus, {
      "tap-decided": this.#onTap,
      "payment-progressed": this.#onPayment,
      "receipt-issued": this.#onReceipt,
      // After these the screen's state may differ.
      "cloud-link-changed": pushState,
      "storage-changed": pushState,
      "peripheral-changed": pushState,
      "kiosk-mode-changed": pushState,
    });
  }

  async stop(): Promise<void> {
    this.#unlisten();
    this.#api?.closeSockets();
    await this.#http?.close();
    this.#api = this.#http = undefined;
  }

  readonly #onTap = (...[result]: KioskEvents["tap-decided"]) => this.#api?.broadcast({ type: "result", result });

  readonly #onReceipt = (...[receipt]: KioskEvents["receipt-issued"]) =>
    this.#api?.broadcast({ type: "receipt", receipt });

  readonly #onPayment = (...[p]: KioskEvents["payment-progressed"]) => {
    if (p.step === "session") this.#api?.broadcast({ type: "payment", session: p.session });
    else if (p.step === "answered") this.#api?.broadcast({ type: "payment-result", result: p.result });
    else this.#api?.broadcast({ type: "payment-ended", sessionId: p.sessionId, reason: p.reason });
  };

  async #pushState(): Promise<void> {
    const state = await this.#status.state();
    this.#api?.broadcast({ type: "state", state });
  }
}
