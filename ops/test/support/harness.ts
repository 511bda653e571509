/**
 * What the paylane-ops tests run against: a real broker (the PayLane
 * gateway's aedes with a registry holding operators, or a private
 * Mosquitto), raw MQTT clients playing kiosks and the cloud, and the real
 * `paylane-ops` bin as a child process (optionally in a pseudo-terminal).
 */
import { type ChildProcess, spawn } from "node:child_process";
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
} from "@paylane/protocol";
import mqtt, { type MqttClient } from "mqtt";
import pino from "pino";
import { Registry as MetricsRegistry } from "prom-client";
import { PrivateMosquitto } from "../../../test/support/private-mosquitto.ts";

export type BrokerKind = "aedes" | "mosquitto";

const root = join(import.meta.dirname, "..", "..", "..");
const MAIN = join(root, "ops", "src", "main.ts");
/** A safety net against a hung child; a passing test never waits on it. */
const DEADLINE_MS = 20_000;

export const OPERATORS = ["viewer", "operator", "other-operator"] as const;
export type OperatorId = (typeof OPERATORS)[number];

export class Harness {
  readonly site = `o${randomBytes(4).toString("hex")}`;
  readonly devices = ["k1", "k2"];
  readonly secrets = new Map<string, string>();
  dir = "";
  gateway: Gateway | undefined;
  mosquitto: PrivateMosquitto | undefined;
  #clients: MqttClient[] = [];
  #devices = new Map<string, Promise<MqttClient>>();
  #children: ChildProcess[] = [];

  constructor(readonly kind: BrokerKind) {}

  get url(): string {
    return this.gateway ? `mqtt://127.0.0.1:${this.gateway.port}` : this.mosquitto!.url;
  }

  address(device: string): DeviceAddress {
    return { site: this.site, device };
  }

  async start(): Promise<void> {
    this.dir = await mkdtemp(join(tmpdir(), "paylane-ops-"));
    const secret = () => randomBytes(18).toString("base64url");
    for (const d of this.devices) this.secrets.set(deviceIdentity.username(this.address(d)), secret());
    this.secrets.set(serviceUsername("cloud"), secret());
    for (const o of OPERATORS) this.secrets.set(operatorUsername(o), secret());
    const hash = (username: string) => hashSecret(this.secrets.get(username)!);
    const file: RegistryFile = {
      version: 1,
      devices: await Promise.all(
        this.devices.map(async (device) => ({
          site: this.site,
          device,
          secretHash: await hash(deviceIdentity.username(this.address(device))),
        })),
      ),
      services: [{ id: "cloud", role: "bridge", secretHash: await hash(serviceUsername("cloud")) }],
      operators: [
        { id: "viewer", role: "viewer", sites: [this.site], secretHash: await hash(operatorUsername("viewer")) },
        { id: "operator", role: "operator", sites: [this.site], secretHash: await hash(operatorUsername("operator")) },
        {
          id: "other-operator",
          role: "operator",
          sites: [`${this.site}x`],
          secretHash: await hash(operatorUsername("other-operator")),
        },
      ],
    };
    if (this.kind === "aedes") {
      this.gateway = new Gateway({
        registry: new Registry(file),
        port: 0,
        logger: pino({ level: "silent" }),
        metrics: new MetricsRegistry(),
      });
      await this.gateway.start();
    } else {
      const registry = join(this.dir, "registry.json");
      await Registry.save(registry, file);
      this.mosquitto = new PrivateMosquitto(this.dir, { registry, secrets: Object.fromEntries(this.secrets) });
      await this.mosquitto.start();
    }
  }

  async stop(): Promise<void> {
    for (const c of this.#children) killGroup(c);
    await Promise.all(this.#clients.map((c) => c.endAsync(true).catch(() => {})));
    await this.gateway?.stop();
    await this.mosquitto?.kill();
    await rm(this.dir, { recursive: true, force: true });
  }

  async #client(username: string, password: string | undefined, clientId: string): Promise<MqttClient> {
    const client = await mqtt.connectAsync(
      this.url,
      { clientId, username, password, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000 },
      false,
    );
    this.#clients.push(client);
    return client;
  }

  /**
   * A raw MQTT client with a kiosk's own credentials, playing that kiosk; one
   * a kiosk (a second connection with its client id would take the first over).
   */
  device(device: string): Promise<MqttClient> {
    let client = this.#devices.get(device);
    if (!client) {
      const a = this.address(device);
      const username = deviceIdentity.username(a);
      client = this.#client(username, this.secrets.get(username), deviceIdentity.clientId(a));
      this.#devices.set(device, client);
    }
    return client;
  }

  /** A raw client with the cloud's service identity (it publishes alerts and the committed-events feed). */
  cloud(): Promise<MqttClient> {
    const username = serviceUsername("cloud");
    return this.#client(username, this.secrets.get(username), `cloud-${randomBytes(3).toString("hex")}`);
  }

  /** PAYLANE_OPS_USERNAME / PAYLANE_OPS_PASSWORD of an operator, for the bin's environment. */
  login(id: OperatorId): Record<string, string> {
    const username = operatorUsername(id);
    return { PAYLANE_OPS_USERNAME: username, PAYLANE_OPS_PASSWORD: this.secrets.get(username)! };
  }

  /** The bin's environment: this broker, an empty data folder (no demo credentials), no colours. */
  env(extra: Record<string, string> = {}): Record<string, string> {
    return {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "",
      MQTT_URL: this.url,
      PAYLANE_DATA: join(this.dir, "no-site"),
      NO_COLOR: "1",
      ...extra,
    };
  }

  /** Runs `paylane-ops args` to its end. */
  run(args: string[], env: Record<string, string>): Promise<Ended> {
    return this.spawnOps(args, env).ended;
  }

  /** Starts `paylane-ops args` without waiting for it to end (watch, tail). */
  spawnOps(args: string[], env: Record<string, string>, { pty = false } = {}): Running {
    const child = pty
      ? // util-linux script gives the child a terminal; a wide one so the table is not wrapped.
        spawn(
          "script",
          [
            "-qfec",
            `stty cols 220 rows 40; exec ${[process.execPath, "--import", "tsx", MAIN, ...args].map(shellQuote).join(" ")}`,
            "/dev/null",
          ],
          { cwd: root, env, stdio: ["ignore", "pipe", "pipe"], detached: true },
        )
      : spawn(process.execPath, ["--import", "tsx", MAIN, ...args], {
          cwd: root,
          env,
          stdio: ["ignore", "pipe", "pipe"],
          detached: true,
        });
    this.#children.push(child);
    return new Running(child);
  }
}

export interface Ended {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A running child whose output can be waited on, event by event. */
export class Running {
  stdout = "";
  stderr = "";
  readonly ended: Promise<Ended>;
  #waiters = new Set<() => void>();

  constructor(readonly child: ChildProcess) {
    const wake = () => {
      for (const w of [...this.#waiters]) w();
    };
    child.stdout!.setEncoding("utf8").on("data", (d: string) => {
      this.stdout += d;
      wake();
    });
    child.stderr!.setEncoding("utf8").on("data", (d: string) => {
      this.stderr += d;
      wake();
    });
    const watchdog = setTimeout(() => killGroup(child), DEADLINE_MS * 2);
    this.ended = new Promise((resolve) =>
      child.once("close", (code) => {
        clearTimeout(watchdog);
        wake();
        resolve({ code, stdout: this.stdout, stderr: this.stderr });
      }),
    );
  }

  /** Resolves once the output (stdout, ANSI codes stripped) satisfies `check`. */
  until(check: (plain: string) => boolean, what: string, timeoutMs = DEADLINE_MS): Promise<void> {
    return new Promise((resolve, reject) => {
      const waiter = () => {
        if (check(stripAnsi(this.stdout))) {
          done();
          resolve();
        } else if (this.child.exitCode !== null) {
          done();
          reject(
            new Error(`paylane-ops ended (${this.child.exitCode}) before ${what}:\n${this.stdout}\n${this.stderr}`),
          );
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out waiting for ${what}; output so far:\n${stripAnsi(this.stdout)}\n${this.stderr}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(waiter);
      };
      this.#waiters.add(waiter);
      waiter();
    });
  }

  stop(): Promise<Ended> {
    killGroup(this.child);
    return this.ended;
  }
}

function killGroup(child: ChildProcess): void {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  try {
    process.kill(-child.pid, "SIGTERM");
  } catch {
    // already gone
  }
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: terminal escape sequences
const ANSI = /\u001b\[[0-9;?]*[A-Za-z]|\u001b[78]|\r/g;
export const stripAnsi = (text: string) => text.replace(ANSI, "");

const shellQuote = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);
