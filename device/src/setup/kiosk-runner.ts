/**
 * What `paylane-device` runs: the daemon for an enrolled kiosk.json, setup
 * mode for one without a secret, and the switches between them in the same
 * process — setup mode to the daemon once enrolled, and the daemon to a new
 * daemon with the new secret after `rotate-credentials`. No restart.
 */
import { rm } from "node:fs/promises";
import { join } from "node:path";
import type { SetupState } from "@paylane/protocol/setup-api";
import type { Logger } from "pino";
import { type DeviceConfig, loadKioskFile } from "../config.ts";
import { type DaemonOptions, KioskDaemon } from "../daemon.ts";
import { realTimers, type Timers } from "../timers.ts";
import { runDiagnostics } from "./diagnostics.ts";
import { interfaceAddresses, PENDING_FILE } from "./enrol-client.ts";
import { CredentialRotation, existingDeviceKey } from "./rotation.ts";
import { readCloudCa, SetupMode, type SetupModeOptions, testReceipt } from "./setup-mode.ts";
import { setupRoutes } from "./setup-routes.ts";

export interface KioskRunnerOptions {
  configPath: string;
  logger: Logger;
  timers?: Timers;
  now?: () => Date;
  /** `cmd/reboot` (see DaemonOptions). */
  restart?: () => void;
  reopenLogs?: () => void;
  /** More of the daemon's options (tests: a payment-attempt probe, a journal with faults). */
  daemon?: Partial<DaemonOptions>;
  /** Setup mode's injections (tests: network addresses, NTP, retry pace). */
  setup?: Partial<Pick<SetupModeOptions, "addresses" | "ntpSynchronized" | "retryMinMs" | "retryMaxMs">>;
  /** Told each daemon this runner starts (after enrolment, after a rotation). */
  onDaemon?: (daemon: KioskDaemon) => void;
}

export class KioskRunner {
  readonly #o: KioskRunnerOptions;
  readonly #log: Logger;
  #setup: SetupMode | undefined;
  #daemon: KioskDaemon | undefined;
  /** Switches run one after another, and a stop waits for the one in progress. */
  #chain: Promise<void> = Promise.resolve();
  #stopped = false;

  constructor(o: KioskRunnerOptions) {
    this.#o = o;
    this.#log = o.logger;
  }

  /** The running daemon; undefined in setup mode. */
  get daemon(): KioskDaemon | undefined {
    return this.#daemon;
  }

  /** Setup mode, while not enrolled. */
  get setup(): SetupMode | undefined {
    return this.#setup;
  }

  /** The local API's port, in either mode. */
  get port(): number {
    if (this.#daemon) return this.#daemon.port;
    if (this.#setup) return this.#setup.port;
    throw new Error("the kiosk is not started");
  }

  async start(): Promise<void> {
    this.#stopped = false;
    const loaded = await loadKioskFile(this.#o.configPath);
    if (loaded.enrolled) return this.#startDaemon();
    const setup = new SetupMode({
      configPath: this.#o.configPath,
      file: loaded.file,
      raw: loaded.raw,
      logger: this.#log,
      timers: this.#o.timers ?? realTimers,
      now: this.#o.now ?? (() => new Date()),
      ...this.#o.setup,
      onEnrolled: () =>
        this.#switch(async () => {
          await setup.stop();
          this.#setup = undefined;
          this.#log.info("enrolled: starting the kiosk daemon");
          await this.#startDaemon();
        }),
    });
    await setup.start();
    this.#setup = setup;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#chain;
    await this.#setup?.stop();
    await this.#daemon?.stop();
    this.#setup = this.#daemon = undefined;
  }

  #switch(step: () => Promise<void>): void {
    this.#chain = this.#chain.then(async () => {
      if (this.#stopped) return;
      try {
        await step();
      } catch (err) {
        this.#log.error({ err: (err as Error).message }, "the kiosk could not switch over; restart it");
      }
    });
  }

  /** Starts the daemon on kiosk.json as it is now (read again: enrolment and rotation rewrite it). */
  async #startDaemon(): Promise<void> {
    const loaded = await loadKioskFile(this.#o.configPath);
    if (!loaded.enrolled) throw new Error(`${this.#o.configPath} has no secret: the kiosk is not enrolled`);
    let config = loaded.config;
    // Enrolled: a secret kept for an enrolment that a crash cut off after kiosk.json was written has no use left.
    await rm(join(config.dataDir, PENDING_FILE), { force: true });
    const key = await existingDeviceKey(config.dataDir);
    const ca = await readCloudCa(config);
    const now = this.#o.now ?? (() => new Date());
    const rotation = key
      ? new CredentialRotation({
          configPath: this.#o.configPath,
          config,
          raw: loaded.raw,
          key,
          ca,
          logger: this.#log,
          now,
        })
      : undefined;
    if (rotation) config = await rotation.settle();
    if (config.cloudCa && process.env.NODE_EXTRA_CA_CERTS !== config.cloudCa) {
      // Node reads its extra CAs once, at process start: the daemon's own HTTPS and MQTTS need them from there.
      this.#log.warn(
        { cloudCa: config.cloudCa },
        "cloudCa is used for enrolment, rotation and diagnostics; for the daemon's HTTPS and MQTTS start it with NODE_EXTRA_CA_CERTS set to the same file",
      );
    }
    const daemon: KioskDaemon = new KioskDaemon({
      config,
      logger: this.#log,
      timers: this.#o.timers,
      now: this.#o.now,
      restart: this.#o.restart,
      reopenLogs: this.#o.reopenLogs,
      defaultMetrics: true,
      ...this.#o.daemon,
      rotateCredentials: rotation
        ? async () => {
            const { rotatedAt } = await rotation.rotate();
            // After the answer is sent on the old session: a new daemon signs in with the new secret.
            return { result: { rotatedAt }, afterAnswer: () => this.#switch(() => this.#restartDaemon(daemon)) };
          }
        : undefined,
      setupRoutes: (peripherals) =>
        setupRoutes({
          state: () => this.#enrolledState(daemon, config, key?.fingerprint ?? ""),
          diagnostics: () => runDiagnostics({ config, peripherals, ca, now, ...this.#o.setup }),
          testReceipt: () => testReceipt(peripherals, config, now),
        }),
    });
    await daemon.start();
    this.#daemon = daemon;
    this.#o.onDaemon?.(daemon);
  }

  async #restartDaemon(old: KioskDaemon): Promise<void> {
    await old.stop();
    if (this.#daemon === old) this.#daemon = undefined;
    await this.#startDaemon();
  }

  #enrolledState(daemon: KioskDaemon, config: DeviceConfig, fingerprint: string): SetupState {
    const addresses = (this.#o.setup?.addresses ?? interfaceAddresses)();
    let online = false;
    try {
      online = daemon.uplink.online;
    } catch {
      // stopping
    }
    return {
      enrolled: true,
      site: config.site,
      device: config.device,
      fingerprint,
      cloudUrl: config.cloudUrl,
      network: { online: addresses.length > 0, addresses },
      enrolment: { state: "enrolled", step: online ? "connected" : "registered" },
      claimInImage: false,
    };
  }
}
