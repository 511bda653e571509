/**
 * A real broker for the Node-RED tests, with a registry holding the kiosks,
 * the cloud bridge, an operator and a viewer of the site: the aedes gateway on
 * port 0, or a private Mosquitto running the configuration
 * `paylane-gateway mosquitto-config` makes from the same registry. Raw MQTT
 * clients play a kiosk or the cloud.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Gateway } from "@paylane/gateway";
import {
  type DeviceAddress,
  deviceIdentity,
  hashSecret,
  operatorUsername,
  Registry,
  type RegistryFile,
  serviceUsername,
  topics,
} from "@paylane/protocol";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { pino } from "pino";
import { Registry as MetricsRegistry } from "prom-client";
import { PrivateMosquitto } from "../../../test/support/private-mosquitto.ts";
import { Signal } from "../../../test/support/signal.ts";

export const SITE = "s1";
export const OPERATOR_ID = "noc";

export type BrokerKind = "aedes" | "mosquitto";

export class TestBroker {
  readonly signal = new Signal();
  readonly secrets = new Map<string, string>();
  readonly operator = { username: operatorUsername(OPERATOR_ID), password: randomBytes(12).toString("hex") };
  /** A viewer of the site: reads everything an operator reads, publishes nothing. */
  readonly viewer = { username: operatorUsername("wall"), password: randomBytes(12).toString("hex") };
  gateway: Gateway | undefined;
  mosquitto: PrivateMosquitto | undefined;
  #dir = "";
  #clients: MqttClient[] = [];

  constructor(readonly kind: BrokerKind = "aedes") {}

  get url(): string {
    return this.mosquitto ? this.mosquitto.url : `mqtt://127.0.0.1:${this.gateway!.port}`;
  }

  async start(devices = ["k1", "k2"], port = 0): Promise<void> {
    for (const d of [...devices, "bridge"]) this.secrets.set(d, randomBytes(12).toString("hex"));
    const file: RegistryFile = {
      version: 1,
      devices: await Promise.all(
        devices.map(async (device) => ({
          site: SITE,
          device,
          secretHash: await hashSecret(this.secrets.get(device)!),
        })),
      ),
      services: [{ id: "cloud", role: "bridge", secretHash: await hashSecret(this.secrets.get("bridge")!) }],
      operators: [
        { id: OPERATOR_ID, role: "operator", sites: [SITE], secretHash: await hashSecret(this.operator.password) },
        { id: "wall", role: "viewer", sites: [SITE], secretHash: await hashSecret(this.viewer.password) },
      ],
    };
    if (this.kind === "aedes") {
      const registry = new Registry(file);
      this.gateway = new Gateway({ registry, port, logger: pino({ level: "silent" }), metrics: new MetricsRegistry() });
      await this.gateway.start();
      return;
    }
    this.#dir = await mkdtemp(join(tmpdir(), "paylane-node-red-mosquitto-"));
    const registryPath = join(this.#dir, "registry.json");
    await Registry.save(registryPath, file);
    const secrets: Record<string, string> = {
      [this.operator.username]: this.operator.password,
      [this.viewer.username]: this.viewer.password,
      [serviceUsername("cloud")]: this.secrets.get("bridge")!,
    };
    for (const device of devices) secrets[deviceIdentity.username(address(device))] = this.secrets.get(device)!;
    this.mosquitto = new PrivateMosquitto(this.#dir, { registry: registryPath, secrets });
    await this.mosquitto.start();
  }

  async #connect(options: IClientOptions): Promise<MqttClient> {
    const client = await mqtt.connectAsync(this.url, {
      reconnectPeriod: 0,
      protocolVersion: 4,
      clean: true,
      ...options,
    });
    this.#clients.push(client);
    return client;
  }

  /** A raw client with a kiosk's credentials (its Will, if given, is its own status topic). */
  kiosk(device: string, extra: IClientOptions = {}): Promise<MqttClient> {
    const a: DeviceAddress = { site: SITE, device };
    return this.#connect({
      clientId: deviceIdentity.clientId(a),
      username: deviceIdentity.username(a),
      password: this.secrets.get(device)!,
      ...extra,
    });
  }

  /** A raw client with the cloud bridge's credentials: what publishes alerts and the events feed. */
  cloud(): Promise<MqttClient> {
    return this.#connect({
      clientId: `bridge-${randomBytes(4).toString("hex")}`,
      username: serviceUsername("cloud"),
      password: this.secrets.get("bridge")!,
    });
  }

  async stop(): Promise<void> {
    await Promise.all(this.#clients.map((c) => c.endAsync(true)));
    await this.gateway?.stop();
    await this.mosquitto?.kill();
    if (this.#dir) await rm(this.#dir, { recursive: true, force: true });
  }
}

export const address = (device: string): DeviceAddress => ({ site: SITE, device });

/** A birth as a kiosk publishes it (retained, with its session counter). */
export const birth = (session: number) =>
  JSON.stringify({ state: "online", version: "1.4.0", bootedAt: new Date().toISOString(), protocol: 1, session });

/** The Will a kiosk leaves with the broker for the same session. */
export const will = (device: string, session: number): IClientOptions["will"] => ({
  topic: topics.status(address(device)),
  payload: Buffer.from(JSON.stringify({ state: "offline", session })),
  qos: 1,
  retain: true,
});
