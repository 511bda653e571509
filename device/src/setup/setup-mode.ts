/**
 * Setup mode: what a kiosk whose kiosk.json has no secret runs instead of
 * the daemon. It makes (once) its key, serves the setup screen's API and
 * diagnostics (with the peripherals started, so the reader and printer can
 * be checked), and enrols with the claim code from kiosk.json or the one
 * typed on the keypad. Once enrolled it hands the new config to its owner,
 * which swaps it for the daemon in the same process.
 */
import { readFile } from "node:fs/promises";
import { parseClaimCode } from "@paylane/protocol";
import type { SetupState } from "@paylane/protocol/setup-api";
import type { Logger } from "pino";
import { Registry as MetricsRegistry } from "prom-client";
import type { DeviceConfig, KioskFile } from "../config.ts";
import { Peripherals } from "../peripherals.ts";
import type { Timers } from "../timers.ts";
import { type DeviceKey, loadOrCreateDeviceKey } from "./device-key.ts";
import { runDiagnostics } from "./diagnostics.ts";
import { EnrolClient, type EnrolProgress, interfaceAddresses } from "./enrol-client.ts";
import type { SetupRouteHandlers } from "./setup-routes.ts";
import { SetupApiServer } from "./setup-server.ts";

type ClaimAnswer = ReturnType<NonNullable<SetupRouteHandlers["claim"]>>;

export interface SetupModeOptions {
  configPath: string;
  file: KioskFile;
  raw: Record<string, unknown>;
  logger: Logger;
  timers: Timers;
  now: () => Date;
  /** Called once, with kiosk.json as rewritten: the owner stops setup mode and starts the daemon. */
  onEnrolled: (config: DeviceConfig) => void;
  addresses?: () => string[];
  ntpSynchronized?: () => Promise<boolean | undefined>;
  retryMinMs?: number;
  retryMaxMs?: number;
}

/** The cloud's CA from `cloudCa`, read with an error that names the setting. */
export async function readCloudCa(file: Pick<KioskFile, "cloudCa">): Promise<string | undefined> {
  if (!file.cloudCa) return undefined;
  try {
    return await readFile(file.cloudCa, "utf8");
  } catch (err) {
    throw new Error(
      `cloudCa ${file.cloudCa}: cannot read it (${(err as Error).message}); set cloudCa to the PEM of the cloud's CA`,
    );
  }
}

export class SetupMode {
  readonly metrics = new MetricsRegistry();
  readonly #o: SetupModeOptions;
  readonly #log: Logger;
  #key: DeviceKey | undefined;
  #client: EnrolClient | undefined;
  #peripherals: Peripherals | undefined;
  #server: SetupApiServer | undefined;
  #progress: EnrolProgress = { state: "waiting-for-code" };
  /** The enrolment in progress (with its retries), if any. */
  #run: Promise<void> = Promise.resolve();
  #requesting = false;
  #stopped = false;

  constructor(o: SetupModeOptions) {
    this.#o = o;
    this.#log = o.logger.child({ mode: "setup" });
  }

  get port(): number {
    if (!this.#server) throw new Error("setup mode is not started");
    return this.#server.port;
  }

  get device(): string {
    return this.#client?.device ?? this.#o.file.device ?? "";
  }

  /** Starts everything; a start that fails (a port taken, a bad cloudCa) stops what it had started. */
  async start(): Promise<void> {
    try {
      await this.#start();
    } catch (err) {
      await this.stop().catch(() => {});
      throw err;
    }
  }

  async #start(): Promise<void> {
    const { file, logger, timers, now } = this.#o;
    this.#stopped = false;
    this.#key = await loadOrCreateDeviceKey(file.dataDir);
    const ca = await readCloudCa(file);
    this.#client = new EnrolClient({
      ...{ configPath: this.#o.configPath, raw: this.#o.raw, file, key: this.#key, ca, logger, timers, now },
      addresses: this.#o.addresses,
      retryMinMs: this.#o.retryMinMs,
      retryMaxMs: this.#o.retryMaxMs,
      onProgress: (p) => {
        this.#progress = p;
        this.#requesting = p.state === "enrolling" && p.step === "request";
      },
    });
    // The same peripherals as the daemon, so diagnostics see what the kiosk will use; taps are not served yet.
    const config = { ...file, device: this.device, secret: "-".repeat(16) } as DeviceConfig;
    this.#peripherals = new Peripherals({ config, logger: this.#log, timers, now });
    await this.#peripherals.start({
      onCard: async () => this.#log.info("a card was tapped: this kiosk serves taps once it is enrolled"),
      onCallStaff: () => {},
      onChange: () => {},
      onPaper: () => {},
    });
    this.#server = new SetupApiServer({
      file,
      logger: this.#log,
      metrics: this.metrics,
      routes: {
        state: () => this.state(),
        claim: (code) => this.#claim(code),
        diagnostics: () =>
          runDiagnostics({
            config,
            peripherals: this.#peripherals!,
            ca,
            now,
            ntpSynchronized: this.#o.ntpSynchronized,
          }),
        testReceipt: () => testReceipt(this.#peripherals!, config, now),
      },
    });
    await this.#server.start();
    this.#log.warn(
      {
        device: this.device,
        fingerprint: this.#key.fingerprint,
        port: this.#server.port,
        claimInImage: file.claim !== undefined,
      },
      "not enrolled: setup mode (the setup screen asks for a claim code)",
    );
    if (file.claim !== undefined) this.#begin(file.claim);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#client?.cancel();
    await this.#run;
    await this.#server?.stop();
    await this.#peripherals?.stop();
    this.#server = this.#peripherals = undefined;
  }

  /** Resolves when the enrolment in progress (if any) has ended. */
  settled(): Promise<void> {
    return this.#run;
  }

  state(): SetupState {
    const f = this.#progress.failure;
    const addresses = (this.#o.addresses ?? interfaceAddresses)();
    return {
      enrolled: this.#progress.state === "enrolled",
      site: this.#o.file.site,
      device: this.device,
      fingerprint: this.#key?.fingerprint ?? "",
      cloudUrl: this.#o.file.cloudUrl,
      network: { online: addresses.length > 0, addresses },
      enrolment: {
        state: this.#progress.state,
        ...(this.#progress.step ? { step: this.#progress.step } : {}),
        ...(f ? { reason: f.reason, message: f.message, fix: f.fix } : {}),
      },
      claimInImage: this.#o.file.claim !== undefined,
    };
  }

  #claim(code: string): ClaimAnswer {
    const parsed = parseClaimCode(code);
    if (!parsed.ok) return { ok: false, status: 400, title: "Invalid claim code", detail: parsed.error };
    if (this.#progress.state === "enrolled")
      return { ok: false, status: 409, title: "Already enrolled", detail: "this kiosk is enrolled" };
    if (this.#requesting)
      return {
        ok: false,
        status: 409,
        title: "Enrolment in progress",
        detail: "the cloud is being asked: wait for its answer",
      };
    this.#begin(code);
    return { ok: true };
  }

  /** Enrols with `code`, after any earlier attempt (a retry wait is called off). */
  #begin(code: string): void {
    const client = this.#client!;
    client.cancel();
    this.#progress = { state: "enrolling", step: "key" };
    this.#run = this.#run.then(async () => {
      if (this.#stopped) return;
      const outcome = await client.enrol(code).catch((err: Error) => {
        this.#log.error({ err: err.message }, "enrolment failed on this kiosk");
        this.#progress = {
          state: "failed",
          failure: { reason: "cloud-error", message: err.message, fix: "check the kiosk's data folder and try again" },
        };
        return undefined;
      });
      if (outcome?.ok && !this.#stopped) this.#o.onEnrolled(outcome.config);
    });
  }
}

/** A short receipt that says the printer works: the button on the diagnostics page. */
export async function testReceipt(
  peripherals: Peripherals,
  config: Pick<DeviceConfig, "site" | "device">,
  now: () => Date,
): Promise<{ printed: boolean; detail: string }> {
  const printer = peripherals.printer;
  if (!printer) return { printed: false, detail: 'no printer configured (printer.type is "none")' };
  const outcome = await printer.print({
    kind: "checkin",
    venue: config.site,
    kiosk: config.device,
    at: now(),
    timeZone: "UTC",
    memberName: "TEST RECEIPT",
    transactionId: "printer test",
  });
  if (outcome.printed) return { printed: true, detail: "test receipt printed" };
  return { printed: false, detail: `not printed: ${outcome.reason}${outcome.detail ? ` (${outcome.detail})` : ""}` };
}
