/**
 * The cloud's side of enrolment (issue 15; the contract is
 * protocol/src/enrolment.ts, the API docs/enrolment.md):
 *
 *   claims   an admin makes single-use codes for a site; only their hash is kept
 *   enrol    a kiosk trades a code, its Ed25519 public key and the hash of its
 *            own secret for a place in the registry the gateway and the cloud
 *            watch (no restart anywhere)
 *   rotate   an enrolled kiosk replaces its secret, signing with the same key
 *   revoke   an admin removes a kiosk from the registry (the gateway closes its session)
 *
 * An enrolment is one database transaction, and the registry file is written
 * inside it, before the commit: a registry that cannot be written rolls the
 * claim back, so the kiosk's retry works. A commit that fails after the write
 * leaves the kiosk in the registry with its own secret hash and the claim
 * unused, and the retry finds both and completes.
 */
import { createPublicKey, randomUUID, verify } from "node:crypto";
import {
  claimCodeHash,
  type DeviceAddress,
  ENROL_CLOCK_SKEW_SECONDS,
  type EnrolRefusal,
  type EnrolRequest,
  type EnrolResponse,
  enrolSigningInput,
  newClaimCode,
  parseClaimCode,
  publicKeyFingerprint,
  type RegistryFile,
  type RotateRequest,
  rotateSigningInput,
  updateRegistryFile,
} from "@paylane/protocol";
import type { Logger } from "pino";
import type { Database, Queryable } from "../db/database.ts";
import { writeAudit } from "./audit.ts";

/** Why an enrolment or rotation was refused: its `reason` goes to the kiosk, and to the audit. */
export class EnrolRefused extends Error {
  constructor(
    readonly reason: EnrolRefusal,
    detail: string,
  ) {
    super(detail);
  }
}

/** The registry could not be written: nothing was used, the kiosk may retry. */
export class RegistryUnavailable extends Error {}

export type RegistryWriter = (mutate: (file: RegistryFile) => void) => Promise<void>;

export interface EnrolmentOptions {
  db: Database;
  /** The registry file every consumer watches (REGISTRY_PATH). */
  registryPath: string;
  now: () => Date;
  logger?: Logger;
  /** How the registry is changed (default: updateRegistryFile on registryPath); tests make it fail. */
  writeRegistry?: RegistryWriter;
}

export interface NewClaim {
  id: string;
  /** Shown once, in the answer that created it; stored nowhere. */
  code: string;
  expiresAt: string;
}

export type ClaimState = "unused" | "used" | "expired";

export interface ClaimRecord {
  id: string;
  site: string;
  state: ClaimState;
  createdBy: string;
  createdAt: string;
  expiresAt: string;
  usedAt: string | null;
  usedByDevice: string | null;
}

/** Who made a request, for the audit. */
export interface Caller {
  actor: string;
  address: string;
}

interface ClaimRow {
  site_id: string;
  id: string;
  expires_at: Date;
  used_at: Date | null;
  used_by_device: string | null;
  used_by_key: string | null;
}

interface DeviceRow {
  public_key: string;
  secret_hash: string;
  enrolled_at: Date;
  claim_id: string;
  revoked_at: Date | null;
}

/** Whether `signature` (base64url) over `data` verifies with an Ed25519 SPKI DER public key (base64url). */
export function verifyEd25519(publicKey: string, data: Buffer, signature: string): boolean {
  try {
    const key = createPublicKey({ key: Buffer.from(publicKey, "base64url"), format: "der", type: "spki" });
    if (key.asymmetricKeyType !== "ed25519") return false;
    return verify(null, data, key, Buffer.from(signature, "base64url"));
  } catch {
    return false;
  }
}

function checkClock(at: string, now: Date): void {
  const skew = Math.abs(new Date(at).getTime() - now.getTime()) / 1000;
  if (skew > ENROL_CLOCK_SKEW_SECONDS) {
    throw new EnrolRefused(
      "clock-skew",
      `signed at ${at}, ${Math.round(skew)} s from the cloud's ${now.toISOString()}; at most ${ENROL_CLOCK_SKEW_SECONDS} s allowed`,
    );
  }
}

export class Enrolment {
  readonly #o: EnrolmentOptions;
  readonly #writeRegistry: RegistryWriter;

  constructor(o: EnrolmentOptions) {
    this.#o = o;
    this.#writeRegistry =
      o.writeRegistry ??
      (async (mutate) => {
        await updateRegistryFile(o.registryPath, mutate);
      });
  }

  get db(): Database {
    return this.#o.db;
  }

  /** `count` new codes for `site`; the codes are in this answer only. */
  async createClaims(o: { site: string; count: number; ttlSeconds: number }, caller: Caller): Promise<NewClaim[]> {
    const now = this.#o.now();
    const expiresAt = new Date(now.getTime() + o.ttlSeconds * 1000);
    const claims: NewClaim[] = [];
    await this.#o.db.transaction(async (tx) => {
      for (let i = 0; i < o.count; i++) {
        const code = newClaimCode();
        const digits = parseClaimCode(code);
        if (!digits.ok) throw new Error(`newClaimCode made an invalid code: ${digits.error}`);
        const id = randomUUID();
        await tx.query(
          `INSERT INTO enrol_claims (site_id, id, code_hash, created_by, created_at, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6)`,
          [o.site, id, claimCodeHash(digits.digits), caller.actor, now, expiresAt],
        );
        await writeAudit(tx, {
          at: now,
          action: "claim-created",
          site: o.site,
          claimId: id,
          actor: caller.actor,
          address: caller.address,
          outcome: "ok",
        });
        claims.push({ id, code, expiresAt: expiresAt.toISOString() });
      }
    });
    return claims;
  }

  /** A site's claims (every site's: undefined), newest first, without codes. */
  async listClaims(site: string | undefined, limit: number): Promise<ClaimRecord[]> {
    const now = this.#o.now();
    const { rows } = await this.#o.db.query<ClaimRow & { created_by: string; created_at: Date; expires_at: Date }>(
      `SELECT site_id, id, created_by, created_at, expires_at, used_at, used_by_device, used_by_key FROM enrol_claims
       WHERE $1::text IS NULL OR site_id = $1 ORDER BY created_at DESC, id LIMIT $2`,
      [site ?? null, limit],
    );
    return rows.map((r) => ({
      id: r.id,
      site: r.site_id,
      state: r.used_at ? "used" : r.expires_at <= now ? "expired" : "unused",
      createdBy: r.created_by,
      createdAt: r.created_at.toISOString(),
      expiresAt: r.expires_at.toISOString(),
      usedAt: r.used_at?.toISOString() ?? null,
      usedByDevice: r.used_by_device,
    }));
  }

  /**
   * Enrols a kiosk, or throws EnrolRefused (audited here) or
   * RegistryUnavailable. The signature is checked before any claim is looked
   * up: only the holder of the key can spend a code in its name.
   */
  async enrol(req: EnrolRequest, address: string): Promise<EnrolResponse> {
    const now = this.#o.now();
    const claimDigits = parseClaimCode(req.claim);
    let claimId: string | null = null;
    try {
      checkClock(req.at, now);
      const { signature, ...signed } = req;
      if (!verifyEd25519(req.publicKey, enrolSigningInput(signed), signature)) {
        throw new EnrolRefused("bad-signature", "checked against enrolSigningInput of the fields sent");
      }
      if (!claimDigits.ok) throw new EnrolRefused("claim-unknown", `claim: ${claimDigits.error}`);
      let retry = false;
      const answer = await this.#o.db.transaction(async (tx) => {
        const claim = await this.#claim(tx, claimCodeHash(claimDigits.digits));
        claimId = claim.id;
        const answer = await this.#retried(tx, req, claim);
        if (answer) {
          await writeAudit(tx, {
            at: now,
            action: "enrolled",
            site: req.site,
            device: req.device,
            claimId: claim.id,
            actor: "device",
            address,
            outcome: "ok",
            reason: "retry",
          });
          retry = true;
          return answer;
        }
        this.#usable(claim, req, now);
        const previous = await this.#takeDevice(tx, req, claim.id, now);
        await tx.query(
          `UPDATE enrol_claims SET used_at = $3, used_by_device = $4, used_by_key = $5 WHERE site_id = $1 AND id = $2`,
          [claim.site_id, claim.id, now, req.device, req.publicKey],
        );
        // Known to the listings and the bridge at once, before the registry watch says so.
        await tx.query("INSERT INTO sites (id, name) VALUES ($1, $1) ON CONFLICT DO NOTHING", [req.site]);
        await tx.query("INSERT INTO devices (site_id, id) VALUES ($1, $2) ON CONFLICT DO NOTHING", [
          req.site,
          req.device,
        ]);
        await writeAudit(tx, {
          at: now,
          action: "enrolled",
          site: req.site,
          device: req.device,
          claimId: claim.id,
          actor: "device",
          address,
          outcome: "ok",
        });
        // Last, before the commit: a failure here rolls the claim back.
        await this.#register(req, previous?.public_key === req.publicKey && !previous.revoked_at);
        return {
          site: req.site,
          device: req.device,
          username: `${req.site}/${req.device}`,
          enrolledAt: now.toISOString(),
        };
      });
      this.#o.logger?.info(
        { site: req.site, device: req.device, claimId, fingerprint: publicKeyFingerprint(req.publicKey), retry },
        "device enrolled",
      );
      return answer;
    } catch (err) {
      const reason =
        err instanceof EnrolRefused ? err.reason : err instanceof RegistryUnavailable ? "registry-error" : undefined;
      if (reason) {
        await writeAudit(this.#o.db, {
          at: now,
          action: "refused",
          site: req.site,
          device: req.device,
          claimId,
          actor: "device",
          address,
          outcome: "refused",
          reason,
        }).catch((auditErr: Error) => this.#o.logger?.error({ err: auditErr.message }, "enrolment audit write failed"));
        this.#o.logger?.info({ site: req.site, device: req.device, claimId, reason }, "enrolment refused");
      }
      throw err;
    }
  }

  /** Audits a refusal made before the request could be read (a malformed body, a rate limit). */
  async refused(reason: string, address: string, about: { site?: string; device?: string } = {}): Promise<void> {
    await writeAudit(this.#o.db, {
      at: this.#o.now(),
      action: "refused",
      site: about.site,
      device: about.device,
      actor: "device",
      address,
      outcome: "refused",
      reason,
    });
  }

  async #claim(tx: Queryable, codeHash: string): Promise<ClaimRow> {
    const { rows } = await tx.query<ClaimRow>(
      `SELECT site_id, id, expires_at, used_at, used_by_device, used_by_key FROM enrol_claims
       WHERE code_hash = $1 FOR UPDATE`,
      [codeHash],
    );
    const claim = rows[0];
    if (!claim) throw new EnrolRefused("claim-unknown", "no claim has this code");
    return claim;
  }

  /**
   * The first answer again when this is the same kiosk retrying (same key,
   * same secret hash, same device), so a lost 201 does not strand it.
   */
  async #retried(tx: Queryable, req: EnrolRequest, claim: ClaimRow): Promise<EnrolResponse | null> {
    if (!claim.used_at || claim.used_by_key !== req.publicKey) return null;
    if (claim.site_id !== req.site || claim.used_by_device !== req.device) return null;
    // Locked: a revoke marks this row before it empties the registry, so it cannot land between this read and the write below.
    const { rows } = await tx.query<DeviceRow>(
      `SELECT public_key, secret_hash, enrolled_at, claim_id, revoked_at FROM enrolled_devices
       WHERE site_id = $1 AND device_id = $2 FOR UPDATE`,
      [req.site, req.device],
    );
    const row = rows[0];
    if (!row || row.revoked_at || row.claim_id !== claim.id || row.public_key !== req.publicKey) return null;
    if (row.secret_hash !== req.secretHash) return null;
    // Written again (unchanged if it is there): the registry holds what this answer promises.
    await this.#register(req, true);
    return {
      site: req.site,
      device: req.device,
      username: `${req.site}/${req.device}`,
      enrolledAt: row.enrolled_at.toISOString(),
    };
  }

  #usable(claim: ClaimRow, req: EnrolRequest, now: Date): void {
    if (claim.used_at) {
      throw new EnrolRefused("claim-used", `used at ${claim.used_at.toISOString()}`);
    }
    if (claim.expires_at <= now) {
      throw new EnrolRefused("claim-expired", `expired at ${claim.expires_at.toISOString()}`);
    }
    if (claim.site_id !== req.site) {
      throw new EnrolRefused("claim-other-site", `the code is not for site ${req.site}`);
    }
  }

  /**
   * Upserts the device's row unless another live kiosk (another key) holds
   * the id; returns the row it replaced. The upsert waits on a concurrent
   * enrolment of the same id, so two kiosks racing for one id cannot both win.
   */
  async #takeDevice(tx: Queryable, req: EnrolRequest, claimId: string, now: Date): Promise<DeviceRow | undefined> {
    const before = await tx.query<DeviceRow>(
      `SELECT public_key, secret_hash, enrolled_at, claim_id, revoked_at FROM enrolled_devices
       WHERE site_id = $1 AND device_id = $2 FOR UPDATE`,
      [req.site, req.device],
    );
    const { rows } = await tx.query<{ device_id: string }>(
      `INSERT INTO enrolled_devices (site_id, device_id, public_key, key_fingerprint, secret_hash, enrolled_at, claim_id)
       VALUES ($1, $2, $3, $4, $5, $6, $7)
       ON CONFLICT (site_id, device_id) DO UPDATE SET
         public_key = excluded.public_key, key_fingerprint = excluded.key_fingerprint,
         secret_hash = excluded.secret_hash, enrolled_at = excluded.enrolled_at, claim_id = excluded.claim_id,
         revoked_at = NULL, rotated_at = NULL
       WHERE enrolled_devices.public_key = excluded.public_key OR enrolled_devices.revoked_at IS NOT NULL
       RETURNING device_id`,
      [req.site, req.device, req.publicKey, publicKeyFingerprint(req.publicKey), req.secretHash, now, claimId],
    );
    if (rows.length === 0) throw this.#taken(req);
    return before.rows[0];
  }

  #taken(req: DeviceAddress): EnrolRefused {
    return new EnrolRefused("device-taken", `${req.site}/${req.device} is held by another key or secret`);
  }

  /**
   * Puts the device into the registry file. An entry already there with
   * another secret belongs to someone else (a device registered by hand, or
   * one enrolled by another key) unless this key holds the device: refused.
   */
  async #register(req: EnrolRequest, keyHoldsDevice: boolean): Promise<void> {
    try {
      await this.#writeRegistry((file) => {
        const i = file.devices.findIndex((d) => d.site === req.site && d.device === req.device);
        const entry = { site: req.site, device: req.device, secretHash: req.secretHash };
        if (i < 0) file.devices.push(entry);
        else if (file.devices[i]!.secretHash === req.secretHash) return;
        else if (keyHoldsDevice) file.devices[i] = entry;
        else throw this.#taken(req);
      });
    } catch (err) {
      if (err instanceof EnrolRefused) throw err;
      this.#o.logger?.error(
        { err: (err as Error).message, site: req.site, device: req.device },
        "registry write failed",
      );
      throw new RegistryUnavailable(`the device registry could not be written: ${(err as Error).message}`);
    }
  }

  /**
   * Replaces an enrolled kiosk's secret hash, signed with the key it enrolled
   * with (its current credentials were checked by the caller).
   */
  async rotate(device: DeviceAddress, req: RotateRequest, address: string): Promise<{ rotatedAt: string }> {
    const now = this.#o.now();
    const audit = (outcome: "ok" | "refused", reason?: string) =>
      writeAudit(this.#o.db, {
        at: now,
        action: "rotated",
        site: device.site,
        device: device.device,
        actor: "device",
        address,
        outcome,
        reason,
      });
    try {
      checkClock(req.at, now);
      const { rows } = await this.#o.db.query<DeviceRow>(
        `SELECT public_key, secret_hash, enrolled_at, claim_id, revoked_at FROM enrolled_devices
         WHERE site_id = $1 AND device_id = $2`,
        [device.site, device.device],
      );
      const row = rows[0];
      if (!row) {
        throw new EnrolRefused(
          "bad-signature",
          `${device.site}/${device.device} was not enrolled with a key (registered by hand): it cannot rotate; enrol it with a claim code`,
        );
      }
      if (row.revoked_at) throw new EnrolRefused("device-revoked", "this device was revoked");
      const { signature, ...signed } = req;
      if (!verifyEd25519(row.public_key, rotateSigningInput(device.site, device.device, signed), signature)) {
        throw new EnrolRefused("bad-signature", "the signature does not verify with the key this device enrolled with");
      }
      await this.#o.db.transaction(async (tx) => {
        await tx.query(
          "UPDATE enrolled_devices SET secret_hash = $3, rotated_at = $4 WHERE site_id = $1 AND device_id = $2",
          [device.site, device.device, req.secretHash, now],
        );
        try {
          await this.#writeRegistry((file) => {
            const entry = file.devices.find((d) => d.site === device.site && d.device === device.device);
            if (!entry) throw new EnrolRefused("device-revoked", "this device is no longer in the registry");
            entry.secretHash = req.secretHash;
          });
        } catch (err) {
          if (err instanceof EnrolRefused) throw err;
          throw new RegistryUnavailable(`the device registry could not be written: ${(err as Error).message}`);
        }
        await writeAudit(tx, {
          at: now,
          action: "rotated",
          site: device.site,
          device: device.device,
          actor: "device",
          address,
          outcome: "ok",
        });
      });
      this.#o.logger?.info({ site: device.site, device: device.device }, "device credentials rotated");
      return { rotatedAt: now.toISOString() };
    } catch (err) {
      if (err instanceof EnrolRefused) await audit("refused", err.reason);
      else if (err instanceof RegistryUnavailable) await audit("refused", "registry-error");
      throw err;
    }
  }

  /**
   * Removes a device from the registry (its sessions end: the gateway
   * watches) and marks it revoked. False when there is nothing to revoke.
   */
  async revoke(device: DeviceAddress, caller: Caller): Promise<{ revokedAt: string } | null> {
    const now = this.#o.now();
    let removed = false;
    // One transaction, the row marked (and locked) first: an enrolment retry holding the row finishes
    // its registry write before this one empties it, and one that comes after reads "revoked".
    const marked = await this.#o.db.transaction(async (tx) => {
      const { rows } = await tx.query<{ device_id: string }>(
        `UPDATE enrolled_devices SET revoked_at = $3 WHERE site_id = $1 AND device_id = $2 AND revoked_at IS NULL
         RETURNING device_id`,
        [device.site, device.device, now],
      );
      try {
        await this.#writeRegistry((file) => {
          const before = file.devices.length;
          file.devices = file.devices.filter((d) => !(d.site === device.site && d.device === device.device));
          removed = file.devices.length < before;
        });
      } catch (err) {
        throw new RegistryUnavailable(`the device registry could not be written: ${(err as Error).message}`);
      }
      return rows.length > 0;
    });
    if (!removed && !marked) return null;
    await writeAudit(this.#o.db, {
      at: now,
      action: "revoked",
      site: device.site,
      device: device.device,
      actor: caller.actor,
      address: caller.address,
      outcome: "ok",
    });
    this.#o.logger?.info({ site: device.site, device: device.device, by: caller.actor }, "device revoked");
    return { revokedAt: now.toISOString() };
  }

  /** Audits that an admin asked a kiosk to rotate its credentials (the command's id names it). */
  async rotateAsked(device: DeviceAddress, caller: Caller, commandId: string): Promise<void> {
    await writeAudit(this.#o.db, {
      at: this.#o.now(),
      action: "rotate-asked",
      site: device.site,
      device: device.device,
      actor: caller.actor,
      address: caller.address,
      outcome: "ok",
      reason: `command ${commandId}`,
    });
  }
}
