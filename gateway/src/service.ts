/**
 * `paylane-gateway` as a service: the MQTT gateway, its `/healthz` and
 * `/metrics` listener, and the registry watch that applies enrolments,
 * removals and new secrets at once (SIGHUP forces a reload). The constructor
 * stores options only; `start()` and `stop()` mirror each other.
 */
import { Registry, watchRegistry } from "@paylane/protocol";
import {
  collectServiceMetrics,
  describeListenError,
  type Listening,
  listen,
  problemClientErrors,
} from "@paylane/protocol/service";
import type { Logger } from "pino";
import { Registry as MetricsRegistry } from "prom-client";
import { type GatewayConfig, loadTlsFiles, mqttPortHint } from "./config.ts";
import { Gateway, type Transport } from "./gateway.ts";
import { gatewayOpsApp } from "./ops.ts";

/** Each listener's name and the variable that sets its port, for a listen error. */
const LISTENERS: Record<Transport, { what: string; setting: string }> = {
  mqtt: { what: "MQTT", setting: "MQTT_PORT" },
  mqtts: { what: "MQTT over TLS", setting: "MQTT_TLS_PORT" },
  wss: { what: "MQTT over secure WebSocket", setting: "MQTT_WSS_PORT" },
};

export interface GatewayServiceOptions {
  config: GatewayConfig;
  logger: Logger;
}

export class GatewayService {
  readonly #o: GatewayServiceOptions;
  readonly metrics = new MetricsRegistry();
  #gateway: Gateway | undefined;
  #http: Listening | undefined;
  #stopWatchingRegistry: (() => void) | undefined;

  constructor(o: GatewayServiceOptions) {
    this.#o = o;
  }

  /** The plain MQTT listener's port (MQTT_PORT 0: the one the system picked). */
  get mqttPort(): number {
    if (!this.#gateway) throw new Error("the gateway service is not started");
    return this.#gateway.port;
  }

  /** The `/healthz` and `/metrics` listener's port. */
  get httpPort(): number {
    if (!this.#http) throw new Error("the gateway service is not started");
    return this.#http.port;
  }

  /** A start that fails stops what it had started before it rejects. */
  async start(): Promise<void> {
    try {
      await this.#start();
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  async #start(): Promise<void> {
    const { config } = this.#o;
    const logger = this.#o.logger.child({ instance: config.instance });
    // Checked before anything listens: a bad certificate is a configuration error.
    const tls = config.tls ? await loadTlsFiles(config.tls) : undefined;
    const registry = await Registry.load(config.registryPath).catch((err: Error) => {
      throw new Error(`REGISTRY_PATH: ${err.message}`);
    });
    // Registered again at every start (the gateway's own too): a second start must not register a metric twice.
    this.metrics.clear();
    collectServiceMetrics(this.metrics);
    const gateway = new Gateway({
      registry,
      port: config.mqttPort,
      host: config.mqttHost,
      logger,
      metrics: this.metrics,
      limits: config.limits,
      tls,
      tlsPort: config.tls?.port,
      wssPort: config.tls?.wssPort,
      redis: config.redis,
      instance: config.instance,
    });
    this.#gateway = gateway;
    await gateway.start().catch((err: NodeJS.ErrnoException & { transport?: Transport; port?: number }) => {
      const port = err.port ?? config.mqttPort;
      const transport = err.transport ?? "mqtt";
      throw describeListenError(err, {
        ...LISTENERS[transport],
        port,
        host: config.mqttHost,
        hostSetting: "MQTT_HOST",
        hint: transport === "mqtt" ? mqttPortHint(port) : undefined,
      });
    });
    this.#http = await listen(gatewayOpsApp({ gateway, metrics: this.metrics, logger }), {
      what: "HTTP",
      port: config.httpPort,
      host: config.mqttHost,
      setting: "GATEWAY_HTTP_PORT",
      hostSetting: "MQTT_HOST",
      configure: problemClientErrors,
    });
    logger.info({ port: this.#http.port }, "health and metrics listening");
    this.#stopWatchingRegistry = watchRegistry(config.registryPath, (next) => gateway.replaceRegistry(next), logger, {
      pollMs: config.registryPollMs,
    });
  }

  async stop(): Promise<void> {
    this.#stopWatchingRegistry?.();
    this.#stopWatchingRegistry = undefined;
    await Promise.all([this.#gateway?.stop(), this.#http?.close()]);
    this.#gateway = this.#http = undefined;
  }
}
