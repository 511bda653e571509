/**
 * The identity registry: which devices and services may connect, with their
 * hashed secrets. The gateway authenticates MQTT connections against it and
 * the cloud authenticates devices' HTTP calls against the same file.
 *
 * Secrets are stored as scrypt hashes; the plain secret only ever lives in the
 * device's own config.
 */
import { createHash, randomBytes, scrypt as scryptCb, timingSafeEqual } from "node:crypto";
import { readFile, rename, writeFile } from "node:fs/promises";
import { promisify } from "node:util";
import { z } from "zod";
import { validate } from "./codec.ts";
import { type DeviceAddress, ID_PATTERN, RESERVED_SITES } from "./topics.ts";

const scrypt = promisify(scryptCb) as (pw: string, salt: Buffer, len: number, opts: object) => Promise<Buffer>;
const SCRYPT = { N: 16384, r: 8, p: 1 } as const;
const HASH_PATTERN = /^scrypt\$\d+\$\d+\$\d+\$[0-9a-f]{32}\$[0-9a-f]{64}$/;

const id = z.string().regex(ID_PATTERN, `expected lower-case letters, digits, "-" or "_" (${ID_PATTERN})`);

export const SERVICE_ROLES = ["bridge"] as const;
export type ServiceRole = (typeof SERVICE_ROLES)[number];

export const RegistryFileSchema = z.object({
  version: z.literal(1),
  devices: z.array(
    z.object({
      site: id.refine((s) => !RESERVED_SITES.has(s), "site id 'cloud' is reserved"),
      device: id,
      secretHash: z.string().regex(HASH_PATTERN, "expected an scrypt hash made by hashSecret()"),
    }),
  ),
  services: z.array(
    z.object({
      id,
      role: z.enum(SERVICE_ROLES),
      secretHash: z.string().regex(HASH_PATTERN, "expected an scrypt hash made by hashSecret()"),
    }),
  ),
});
export type RegistryFile = z.infer<typeof RegistryFileSchema>;

export type Identity = { kind: "device"; address: DeviceAddress } | { kind: "service"; id: string; role: ServiceRole };

export async function hashSecret(secret: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await scrypt(secret, salt, 32, SCRYPT);
  return `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString("hex")}$${hash.toString("hex")}`;
}

export async function verifySecret(secret: string, stored: string): Promise<boolean> {
  const [, n, r, p, salt, hash] = stored.split("$");
  if (!n || !r || !p || !salt || !hash) return false;
  const expected = Buffer.from(hash, "hex");
  const actual = await scrypt(secret, Buffer.from(salt, "hex"), expected.length, {
    N: Number(n),
    r: Number(r),
    p: Number(p),
  });
  return timingSafeEqual(actual, expected);
}

/** Service usernames are `svc:{id}` so they can never collide with a `{site}/{device}` username. */
export const serviceUsername = (serviceId: string) => `svc:${serviceId}`;

export class Registry {
  readonly #file: RegistryFile;
  readonly #byUsername = new Map<string, { identity: Identity; secretHash: string }>();
  /** sha256 of secrets that already passed scrypt: a reconnect storm must not cost 50 ms of CPU per client. */
  readonly #verified = new Map<string, string>();

  constructor(file: RegistryFile) {
    this.#file = file;
    for (const d of file.devices) {
      const address = { site: d.site, device: d.device };
      this.#byUsername.set(`${d.site}/${d.device}`, {
        identity: { kind: "device", address },
        secretHash: d.secretHash,
      });
    }
    for (const s of file.services) {
      this.#byUsername.set(serviceUsername(s.id), {
        identity: { kind: "service", id: s.id, role: s.role },
        secretHash: s.secretHash,
      });
    }
  }

  static parse(json: unknown, source = "registry"): Registry {
    const result = validate(RegistryFileSchema, json);
    if (!result.ok) throw new Error(`${source}: ${result.error}`);
    return new Registry(result.value);
  }

  static async load(path: string): Promise<Registry> {
    let text: string;
    try {
      text = await readFile(path, "utf8");
    } catch (err) {
      throw new Error(`cannot read device registry ${path}: ${(err as Error).message}`);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw new Error(`device registry ${path} is not valid JSON: ${(err as Error).message}`);
    }
    return Registry.parse(json, path);
  }

  /** Writes atomically (temp file + rename) so a reader never sees half a registry. */
  static async save(path: string, file: RegistryFile): Promise<void> {
    const tmp = `${path}.${process.pid}.tmp`;
    await writeFile(tmp, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600 });
    await rename(tmp, path);
  }

  get devices(): readonly DeviceAddress[] {
    return this.#file.devices.map((d) => ({ site: d.site, device: d.device }));
  }

  hasDevice(a: DeviceAddress): boolean {
    return this.#byUsername.has(`${a.site}/${a.device}`);
  }

  /** Resolves a username and secret to an identity, or null. Never says which part was wrong. */
  async authenticate(username: string, secret: string): Promise<Identity | null> {
    const entry = this.#byUsername.get(username);
    if (!entry) return null;
    const digest = createHash("sha256").update(secret).digest("hex");
    if (this.#verified.get(username) === digest) return entry.identity;
    if (!(await verifySecret(secret, entry.secretHash))) return null;
    this.#verified.set(username, digest);
    return entry.identity;
  }
}
