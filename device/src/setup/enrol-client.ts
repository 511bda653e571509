/**
 * The kiosk's side of enrolment (protocol/src/enrolment.ts): a claim code,
 * the kiosk's own key and a secret it makes are turned into a device
 * identity, and kiosk.json is rewritten with it. Used by setup mode and by
 * `paylane-provision enrol`.
 *
 * The secret is made once and kept next to the key (`enrol-pending.json`,
 * 0600) before it is sent, so a retry after a lost answer, or after a crash
 * mid-enrolment, presents the same key and secret: the cloud answers the
 * same again. Network failures are retried with backoff; a refusal never is.
 * The claim code and the secret are never logged.
 */
import { randomBytes } from "node:crypto";
import { readFile, rm } from "node:fs/promises";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import {
  EnrolProblemSchema,
  type EnrolRequest,
  type EnrolResponse,
  EnrolResponseSchema,
  enrolSigningInput,
  formatClaimCode,
  hashSecret,
  parseClaimCode,
} from "@paylane/protocol";
import type { EnrolmentState } from "@paylane/protocol/setup-api";
import type { Logger } from "pino";
import { type DeviceConfig, type KioskFile, parseDeviceConfig } from "../config.ts";
import type { Timers } from "../timers.ts";
import { assertSafeCloudUrl, CloudRequestError, cloudRequest } from "./cloud-request.ts";
import { type DeviceKey, derivedDeviceId } from "./device-key.ts";
import { type Failure, isRefusal, kioskFailure, refusal } from "./failures.ts";
import { rewriteKioskFile, writePrivateFile } from "./private-file.ts";

export const ENROL_PATH = "/api/v1/enrol";
export const PENDING_FILE = "enrol-pending.json";

export interface EnrolProgress {
  state: EnrolmentState;
  /** "key", "request", "registered" (then the daemon adds "connected"). */
  step?: string;
  failure?: Failure;
}

export interface EnrolClientOptions {
  /** kiosk.json: rewritten on success. */
  configPath: string;
  /** kiosk.json as read, so only `secret`, `device` and `claim` change. */
  raw: Record<string, unknown>;
  file: KioskFile;
  key: DeviceKey;
  /** PEM of cloudCa, read by the caller. */
  ca?: string;
  logger: Logger;
  timers: Timers;
  now: () => Date;
  onProgress?: (p: EnrolProgress) => void;
  /** Backoff between network failures: doubles from `retryMinMs` up to `retryMaxMs`. */
  retryMinMs?: number;
  retryMaxMs?: number;
  /** Give up after this many attempts that got no answer (the CLI); default: keep trying (the kiosk). */
  maxAttempts?: number;
  /** Addresses of the network interfaces that are up (tests inject none). */
  addresses?: () => string[];
}

export type EnrolOutcome =
  | { ok: true; config: DeviceConfig; raw: Record<string, unknown>; response: EnrolResponse }
  | { ok: false; failure: Failure };

type Attempt = { ok: true; response: EnrolResponse } | { ok: false; failure: Failure; retry: boolean };

/** Every non-internal address of this machine: no address, no network. */
export function interfaceAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flat()
    .filter((a) => a !== undefined && !a.internal)
    .map((a) => a!.address);
}

interface Pending {
  device: string;
  secret: string;
  secretHash: string;
}

export class EnrolClient {
  readonly #o: EnrolClientOptions;
  readonly #log: Logger;
  #cancel: (() => void) | undefined;
  #cancelled = false;

  constructor(o: EnrolClientOptions) {
    this.#o = o;
    this.#log = o.logger.child({ component: "enrolment" });
  }

  /** The id this kiosk enrols under: kiosk.json's, or derived from its key. */
  get device(): string {
    return this.#o.file.device ?? derivedDeviceId(this.#o.key);
  }

  /** Stops a retry wait (a new code was typed, or the kiosk stops); the enrolment in progress ends as failed. */
  cancel(): void {
    this.#cancelled = true;
    this.#cancel?.();
  }

  /** Enrols with `code`: retries network failures until an answer, `maxAttempts`, or `cancel()`. */
  async enrol(code: string): Promise<EnrolOutcome> {
    this.#cancelled = false;
    const parsed = parseClaimCode(code);
    if (!parsed.ok) return this.#failed(kioskFailure("invalid-code", parsed.error));
    let url: URL;
    try {
      url = new URL(ENROL_PATH, assertSafeCloudUrl(this.#o.file.cloudUrl));
    } catch (err) {
      return this.#failed({
        reason: "cloud-unreachable",
        message: (err as Error).message,
        fix: "set cloudUrl in kiosk.json to the cloud's https:// address",
      });
    }
    this.#progress({ state: "enrolling", step: "key" });
    const pending = await this.#pendingSecret();
    const min = this.#o.retryMinMs ?? 1000;
    const max = this.#o.retryMaxMs ?? 60_000;
    for (let attempt = 1; ; attempt++) {
      this.#progress({ state: "enrolling", step: "request" });
      const result = await this.#attempt(url, formatClaimCode(parsed.digits), pending);
      if (result.ok) return this.#enrolled(result.response, pending);
      const last = this.#cancelled || !result.retry || attempt >= (this.#o.maxAttempts ?? Number.POSITIVE_INFINITY);
      if (last) return this.#failed(result.failure);
      const delay = Math.min(max, min * 2 ** (attempt - 1));
      this.#log.warn(
        { reason: result.failure.reason, attempt, retryInMs: delay },
        `enrolment: ${result.failure.message}; trying again`,
      );
      this.#progress({
        state: "failed",
        failure: {
          ...result.failure,
          message: `${result.failure.message} (trying again in ${Math.ceil(delay / 1000)} s)`,
        },
      });
      await this.#sleep(delay);
      if (this.#cancelled) return this.#failed(result.failure);
    }
  }

  #progress(p: EnrolProgress): void {
    this.#o.onProgress?.(p);
  }

  #failed(failure: Failure): EnrolOutcome {
    this.#log.warn({ reason: failure.reason }, `enrolment failed: ${failure.message}`);
    this.#progress({ state: "failed", failure });
    return { ok: false, failure };
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = this.#o.timers.setTimeout(() => {
        this.#cancel = undefined;
        resolve();
      }, ms);
      this.#cancel = () => {
        this.#o.timers.clearTimeout(timer);
        this.#cancel = undefined;
        resolve();
      };
    });
  }

  /** The secret this kiosk enrols with: the one kept from an earlier attempt for this device, or a new one kept now. */
  async #pendingSecret(): Promise<Pending> {
    const path = join(this.#o.file.dataDir, PENDING_FILE);
    try {
      const kept = JSON.parse(await readFile(path, "utf8")) as Partial<Pending>;
      if (kept.device === this.device && typeof kept.secret === "string" && typeof kept.secretHash === "string")
        return kept as Pending;
    } catch {
      // none yet, or unreadable: a new one
    }
    const secret = randomBytes(32).toString("base64url");
    const pending = { device: this.device, secret, secretHash: await hashSecret(secret) };
    await writePrivateFile(path, JSON.stringify(pending));
    return pending;
  }

  async #attempt(url: URL, claim: string, pending: Pending): Promise<Attempt> {
    const { file, key } = this.#o;
    const addresses = (this.#o.addresses ?? interfaceAddresses)();
    const loopback = /^(localhost|127\.|\[::1\])/.test(url.host);
    if (!loopback && addresses.length === 0) {
      return { ok: false, retry: true, failure: kioskFailure("no-network", "no network interface has an address") };
    }
    const unsigned: Omit<EnrolRequest, "signature"> = {
      claim,
      site: file.site,
      device: this.device,
      publicKey: key.publicKey,
      secretHash: pending.secretHash,
      at: this.#o.now().toISOString(),
    };
    const body: EnrolRequest = { ...unsigned, signature: key.sign(enrolSigningInput(unsigned)) };
    this.#log.info(
      { device: this.device, fingerprint: key.fingerprint, cloud: url.origin },
      "enrolment: asking the cloud",
    );
    let res: Awaited<ReturnType<typeof cloudRequest>>;
    try {
      res = await cloudRequest("POST", url, body, { ca: this.#o.ca });
    } catch (err) {
      if (err instanceof CloudRequestError)
        return { ok: false, retry: true, failure: kioskFailure(err.kind, err.message, url.host) };
      throw err;
    }
    if (res.status === 200 || res.status === 201) {
      const parsed = EnrolResponseSchema.safeParse(res.body);
      if (parsed.success) return { ok: true, response: parsed.data };
      return {
        ok: false,
        retry: true,
        failure: kioskFailure("cloud-error", "the cloud's answer to the enrolment is not what this kiosk expects"),
      };
    }
    const problem = EnrolProblemSchema.safeParse(res.body);
    const reason = problem.success ? problem.data.reason : undefined;
    if (reason && isRefusal(reason)) return { ok: false, retry: false, failure: refusal(reason, problem.data?.detail) };
    if (res.status === 429) return { ok: false, retry: false, failure: refusal("rate-limited") };
    const detail = problem.success ? (problem.data.detail ?? problem.data.title) : `HTTP ${res.status}`;
    const failure = kioskFailure("cloud-error", `the cloud answered ${res.status}: ${detail}`);
    // A 5xx (or a proxy's 502/503) may pass; a 4xx without a reason will not.
    return { ok: false, retry: res.status >= 500, failure };
  }

  async #enrolled(response: EnrolResponse, pending: Pending): Promise<EnrolOutcome> {
    const raw = await rewriteKioskFile(this.#o.configPath, this.#o.raw, {
      device: response.device,
      secret: pending.secret,
      claim: undefined,
    });
    await rm(join(this.#o.file.dataDir, PENDING_FILE), { force: true });
    const config = parseDeviceConfig(raw, `config file ${this.#o.configPath}`);
    this.#log.info(
      { device: response.device, username: response.username },
      "enrolled: kiosk.json now holds this kiosk's identity",
    );
    this.#progress({ state: "enrolled", step: "registered" });
    return { ok: true, config, raw, response };
  }
}
