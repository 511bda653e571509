/**
 * `rotate-credentials`: the kiosk makes a new secret and registers its hash
 * with the cloud (POST /api/v1/enrol/rotate, signed with the device key,
 * sent with the current credentials). The new secret is written to
 * kiosk.json as `nextSecret` before the cloud is asked, so a kiosk cut off
 * between the cloud's yes and its own write still knows it: at the next
 * start `settle()` finishes the rotation with whichever secret still signs in.
 */
import { randomBytes } from "node:crypto";
import { access } from "node:fs/promises";
import { join } from "node:path";
import { EnrolProblemSchema, hashSecret, type RotateRequest, rotateSigningInput } from "@paylane/protocol";
import type { Logger } from "pino";
import { deviceAuthorization } from "../cloud/auth.ts";
import { type DeviceConfig, parseDeviceConfig } from "../config.ts";
import { assertSafeCloudUrl, CloudRequestError, cloudRequest } from "./cloud-request.ts";
import { DEVICE_KEY_FILE, type DeviceKey, loadOrCreateDeviceKey } from "./device-key.ts";
import { isRefusal, refusal } from "./failures.ts";
import { rewriteKioskFile } from "./private-file.ts";

export const ROTATE_PATH = "/api/v1/enrol/rotate";

export interface RotationOptions {
  configPath: string;
  config: DeviceConfig;
  raw: Record<string, unknown>;
  key: DeviceKey;
  ca?: string;
  logger: Logger;
  now: () => Date;
}

/** The cloud's answer to one rotation request. */
type Asked = { ok: true; rotatedAt: string } | { ok: false; status?: number; message: string };

/** The device key of an enrolled kiosk, or undefined for one registered by hand (no key: it cannot rotate). */
export async function existingDeviceKey(dataDir: string): Promise<DeviceKey | undefined> {
  try {
    await access(join(dataDir, DEVICE_KEY_FILE));
  } catch {
    return undefined;
  }
  return loadOrCreateDeviceKey(dataDir);
}

export class CredentialRotation {
  readonly #o: RotationOptions;
  readonly #log: Logger;
  #config: DeviceConfig;
  #raw: Record<string, unknown>;

  constructor(o: RotationOptions) {
    this.#o = o;
    this.#config = o.config;
    this.#raw = o.raw;
    this.#log = o.logger.child({ component: "credentials" });
  }

  /** The config as last written. */
  get config(): DeviceConfig {
    return this.#config;
  }

  /** Registers a new secret; resolves with the config that holds it (kiosk.json already rewritten). */
  async rotate(): Promise<{ config: DeviceConfig; rotatedAt: string }> {
    const secret = randomBytes(32).toString("base64url");
    await this.#write({ nextSecret: secret });
    const asked = await this.#ask(this.#config.secret, secret);
    if (!asked.ok && asked.status === undefined) {
      // No answer: the cloud may have taken it. Ask again with whichever secret signs in, as at a start.
      const settled = await this.settle();
      if (settled.secret === secret) return { config: settled, rotatedAt: this.#o.now().toISOString() };
      throw new Error(
        `no answer from the cloud (${asked.message}): the new secret is kept as nextSecret and the rotation is finished at the kiosk's next start`,
      );
    }
    if (!asked.ok) {
      await this.#write({ nextSecret: undefined });
      throw new Error(`the cloud did not take the new credentials: ${asked.message}; the current ones stay`);
    }
    await this.#write({ secret, nextSecret: undefined });
    this.#log.warn({ rotatedAt: asked.rotatedAt }, "credentials rotated: reconnecting with the new secret");
    return { config: this.#config, rotatedAt: asked.rotatedAt };
  }

  /**
   * A rotation cut off half-way (kiosk.json has `nextSecret`): registers the
   * next secret with whichever secret signs in (the current one if the cloud
   * never heard of the rotation, the next one if it did) and keeps it. Left
   * as it is while the cloud cannot be reached; tried again at the next start.
   */
  async settle(): Promise<DeviceConfig> {
    const next = this.#config.nextSecret;
    if (next === undefined) return this.#config;
    for (const current of [this.#config.secret, next]) {
      const asked = await this.#ask(current, next);
      if (asked.ok) {
        await this.#write({ secret: next, nextSecret: undefined });
        this.#log.warn("an interrupted rotation was finished: using the new secret");
        return this.#config;
      }
      if (asked.status !== 401) {
        this.#log.warn(
          { err: asked.message },
          "an interrupted rotation could not be finished yet; trying again at the next start",
        );
        return this.#config;
      }
    }
    this.#log.error("neither the current nor the next secret signs in: the kiosk may have been revoked");
    return this.#config;
  }

  async #write(changes: Record<string, unknown>): Promise<void> {
    this.#raw = await rewriteKioskFile(this.#o.configPath, this.#raw, changes);
    this.#config = parseDeviceConfig(this.#raw, `config file ${this.#o.configPath}`);
  }

  async #ask(current: string, next: string): Promise<Asked> {
    const { site, device, cloudUrl } = this.#config;
    let url: URL;
    try {
      url = new URL(ROTATE_PATH, assertSafeCloudUrl(cloudUrl));
    } catch (err) {
      return { ok: false, message: (err as Error).message };
    }
    const unsigned: Omit<RotateRequest, "signature"> = {
      secretHash: await hashSecret(next),
      at: this.#o.now().toISOString(),
    };
    const body: RotateRequest = {
      ...unsigned,
      signature: this.#o.key.sign(rotateSigningInput(site, device, unsigned)),
    };
    try {
      const res = await cloudRequest("POST", url, body, {
        ca: this.#o.ca,
        headers: { authorization: deviceAuthorization({ site, device }, current) },
      });
      if (res.status === 200 || res.status === 201) {
        const rotatedAt = (res.body as { rotatedAt?: unknown } | undefined)?.rotatedAt;
        return { ok: true, rotatedAt: typeof rotatedAt === "string" ? rotatedAt : this.#o.now().toISOString() };
      }
      const problem = EnrolProblemSchema.safeParse(res.body);
      const reason = problem.success ? problem.data.reason : undefined;
      if (reason && isRefusal(reason)) {
        const f = refusal(reason);
        return { ok: false, status: res.status, message: `${f.message} (${f.fix})` };
      }
      const detail = problem.success ? (problem.data.detail ?? problem.data.title) : `HTTP ${res.status}`;
      return { ok: false, status: res.status, message: `the cloud answered ${res.status}: ${detail}` };
    } catch (err) {
      if (err instanceof CloudRequestError) return { ok: false, message: err.message };
      throw err;
    }
  }
}
