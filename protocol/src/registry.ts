/**
 * The identity registry: which devices and services may connect, with their
 * hashed secrets. The gateway authenticates MQTT connections against it and
 * the cloud authenticates devices' HTTP calls against the same file.
 *
 * Secrets are stored as scrypt hashes; the plain secret only ever lives in the
 * device's own config.
 */
import { createHash, randomBytes, scrypt as scryptCb, timingSafeEqual } from "node:crypto";
import { type FSWatcher, type Stats, statSync, watch } from "node:fs";
import { readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { basename, dirname } from "node:path";
import { promisify } from "node:util";
import { z } from "zod";
import { validate } from "./codec.ts";
import { realTimers, type Timers } from "./timers.ts";
import { type DeviceAddress, ID_PATTERN, RESERVED_SITES } from "./topics.ts";

const scrypt = promisify(scryptCb) as (pw: string, salt: Buffer, len: number, opts: object) => Promise<Buffer>;
const SCRYPT = { N: 16384, r: 8, p: 1 } as const;
const HASH_PATTERN = /^scrypt\$\d+\$\d+\$\d+\$[0-9a-f]{32}\$[0-9a-f]{64}$/;

const id = z.string().regex(ID_PATTERN, `expected lower-case letters, digits, "-" or "_" (${ID_PATTERN})`);

export const SERVICE_ROLES = ["bridge"] as const;
export type ServiceRole = (typeof SERVICE_ROLES)[number];

/**
 * What a person (or their tool: `paylane-ops`, Node-RED) may do on the broker.
 * `viewer` reads every kiosk of its sites; `operator` also sends commands and
 * desired configuration to them; `admin` is an operator of every site.
 */
export const OPERATOR_ROLES = ["viewer", "operator", "admin"] as const;
export type OperatorRole = (typeof OPERATOR_ROLES)[number];

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
  /** People and their tools; absent in registries written before operators existed. */
  operators: z
    .array(
      z.object({
        id,
        role: z.enum(OPERATOR_ROLES),
        /** The sites this operator sees (and, as `operator`, steers); ignored for `admin`, who has all. */
        sites: z.array(id).default([]),
        secretHash: z.string().regex(HASH_PATTERN, "expected an scrypt hash made by hashSecret()"),
      }),
    )
    .default([]),
});
/** A registry as written (operators and their sites may be left out). */
export type RegistryFile = z.input<typeof RegistryFileSchema>;

export type Identity =
  | { kind: "device"; address: DeviceAddress }
  | { kind: "service"; id: string; role: ServiceRole }
  | { kind: "operator"; id: string; role: OperatorRole; sites: readonly string[] };

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
/**
 * A registry of one site's devices and the cloud bridge, their secrets hashed
 * as in production: what a test, a bench or a drill runs its site on.
 */
export async function siteRegistryFile(
  site: string,
  devices: Iterable<[device: string, secret: string]>,
  cloudSecret: string,
): Promise<RegistryFile> {
  return {
    version: 1,
    devices: await Promise.all(
      [...devices].map(async ([device, secret]) => ({ site, device, secretHash: await hashSecret(secret) })),
    ),
    services: [{ id: "cloud", role: "bridge", secretHash: await hashSecret(cloudSecret) }],
  };
}

export const serviceUsername = (serviceId: string) => `svc:${serviceId}`;
/** Operator usernames are `ops:{id}`: never a device's `{site}/{device}`, never a service's. */
export const operatorUsername = (operatorId: string) => `ops:${operatorId}`;

/**
 * Runs the slow part of an authentication, `verify` (the scrypt check, ~50 ms
 * of a thread-pool thread), and resolves with its answer, or false without
 * running it. The gateway passes one that rations checks per source address,
 * so a flood of wrong passwords from one address cannot queue everyone
 * else's behind it.
 */
export type SlowCheck = (verify: () => Promise<boolean>) => Promise<boolean>;

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
    for (const o of file.operators ?? []) {
      this.#byUsername.set(operatorUsername(o.id), {
        identity: { kind: "operator", id: o.id, role: o.role, sites: [...(o.sites ?? [])] },
        secretHash: o.secretHash,
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
    return Registry.fromText(text, path);
  }

  /** The registry in `text` (the file's content), with errors naming `path`. */
  static fromText(text: string, path: string): Registry {
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
    // Not the pid alone: on a volume shared by pods every process may be PID 1.
    const tmp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
    try {
      await writeFile(tmp, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600 });
      await rename(tmp, path);
    } catch (err) {
      // A unique name is never overwritten by the next save: a failed one must not stay behind.
      await rm(tmp, { force: true }).catch(() => {});
      throw err;
    }
  }

  /** The file this registry was made from (secret hashes included): for tools that change and save it. */
  get file(): RegistryFile {
    return this.#file;
  }

  get devices(): readonly DeviceAddress[] {
    return this.#file.devices.map((d) => ({ site: d.site, device: d.device }));
  }

  /** Operators without their secrets. */
  get operators(): ReadonlyArray<{ id: string; role: OperatorRole; sites: readonly string[] }> {
    return (this.#file.operators ?? []).map((o) => ({ id: o.id, role: o.role, sites: [...(o.sites ?? [])] }));
  }

  hasDevice(a: DeviceAddress): boolean {
    return this.#byUsername.has(`${a.site}/${a.device}`);
  }

  /**
   * The stored secret hash of a username, or undefined if it is not in the
   * registry. A holder of a session compares it across registry versions: a
   * different hash means the secret was rotated, none means it was removed.
   */
  secretHashOf(username: string): string | undefined {
    return this.#byUsername.get(username)?.secretHash;
  }

  /**
   * Keeps the verified-secret cache of `previous` for every username whose
   * stored hash is unchanged, so reloading the registry (a device enrolled,
   * another removed) does not make every kiosk pay scrypt again on its next
   * connect.
   */
  adoptVerified(previous: Registry): void {
    for (const [username, digest] of previous.#verified) {
      const entry = this.#byUsername.get(username);
      if (entry && entry.secretHash === previous.secretHashOf(username)) this.#verified.set(username, digest);
    }
  }

  /**
   * Resolves a username and secret to an identity, or null. Never says which
   * part was wrong. `slowCheck` runs the scrypt check when the secret is not
   * one already verified (a verified one costs a sha256 only).
   */
  async authenticate(username: string, secret: string, slowCheck?: SlowCheck): Promise<Identity | null> {
    const entry = this.#byUsername.get(username);
    if (!entry) return null;
    const digest = createHash("sha256").update(secret).digest("hex");
    if (this.#verified.get(username) === digest) return entry.identity;
    const check = () => verifySecret(secret, entry.secretHash);
    if (!(await (slowCheck ? slowCheck(check) : check()))) return null;
    this.#verified.set(username, digest);
    return entry.identity;
  }
}

/**
 * Reads, changes and writes the registry file under a lock (`<file>.lock`, a
 * directory made atomically by proper-lockfile), so the cloud enrolling a
 * kiosk and an admin adding an operator at the same moment both land. The
 * change is validated before it is written: a mutation that breaks the file
 * throws and leaves the file as it was. Returns what `mutate` returned.
 */
export async function updateRegistryFile<T>(path: string, mutate: (file: RegistryFile) => T | Promise<T>): Promise<T> {
  // Imported here, not at the top: proper-lockfile hooks process signals (signal-exit) when loaded, and only the
  // processes that write the registry should carry that, not every kiosk and tool that imports the protocol.
  const { default: lockfile } = await import("proper-lockfile");
  const release = await lockfile.lock(path, {
    // A writer holds the lock for milliseconds; a lock older than 10 s belongs to a process that died holding it.
    stale: 10_000,
    retries: { retries: 50, minTimeout: 20, maxTimeout: 200 },
    realpath: false,
  });
  try {
    const current = await Registry.load(path);
    const file = structuredClone(current.file);
    const result = await mutate(file);
    Registry.parse(file, path);
    await Registry.save(path, file);
    return result;
  } finally {
    await release();
  }
}

/** What `watchRegistry` logs with; a pino logger fits. */
export interface RegistryWatchLogger {
  info(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface RegistryWatchOptions {
  /** Quiet time after the last change before the file is read (default 50 ms): editors write in steps. */
  debounceMs?: number;
  /**
   * Also look at the file every `pollMs` (its size, mtime and inode; the content only when one of
   * them changed). Unset: no poll. A file watch sees only what this machine's kernel writes: on a
   * network file system (NFS, EFS, Azure Files, CephFS) another node's write never reaches it.
   */
  pollMs?: number;
  /** For the debounce and the poll (default: the real ones); tests drive them. */
  timers?: Timers;
}

/** What a poll compares: a change of any of these makes it read the file. */
function fileSignature(stats: Stats | undefined, err?: unknown): string {
  if (!stats) return `missing:${(err as NodeJS.ErrnoException | undefined)?.code ?? "?"}`;
  return `${stats.size}:${stats.mtimeMs}:${stats.ino}`;
}

/**
 * Watches a registry file and calls `onChange` with each new version, so a
 * device or service removed or rotated in the file loses access without a
 * restart. The directory is watched, not the file: `Registry.save` (and most
 * editors) replace the file by renaming a new one over it, which a watch on
 * the old inode would never see. With `pollMs`, the file is also looked at
 * on that period, for writers the watch cannot see (another node of a
 * network file system).
 *
 * A version that does not load (half written by a tool that does not write
 * atomically, or broken by hand) is logged and skipped; the caller keeps the
 * one it has, and the next change is read again. A write that leaves the
 * content as it was calls nothing. Returns the function that stops watching.
 */
export function watchRegistry(
  path: string,
  onChange: (registry: Registry) => void,
  logger: RegistryWatchLogger,
  options: RegistryWatchOptions = {},
): () => void {
  const debounceMs = options.debounceMs ?? 50;
  const timers = options.timers ?? realTimers;
  const pollMs = options.pollMs;
  const name = basename(path);
  let timer: unknown;
  let pollTimer: unknown;
  let stopped = false;
  /** sha256 of the content last handed to onChange. */
  let lastDigest: string | undefined;
  /** Reads are chained, so two changes in a row are applied in order. */
  let reading: Promise<void> = Promise.resolve();

  const reload = async () => {
    // A missing file is an error too: it revokes nobody, the last version stays.
    const bytes = await readFile(path);
    const digest = createHash("sha256").update(bytes).digest("hex");
    if (digest === lastDigest || stopped) return;
    const registry = Registry.fromText(bytes.toString("utf8"), path);
    lastDigest = digest;
    onChange(registry);
    logger.info({ path, devices: registry.devices.length }, "registry file changed; new version in force");
  };

  const schedule = () => {
    if (stopped) return;
    timers.clearTimeout(timer);
    timer = timers.setTimeout(() => {
      timer = undefined;
      reading = reading
        .then(reload)
        .catch((err: unknown) =>
          logger.error(
            { path, err: err instanceof Error ? err.message : String(err) },
            "registry file changed but does not load; keeping the previous version",
          ),
        );
    }, debounceMs);
  };

  let watcher: FSWatcher | undefined = watch(dirname(path), { persistent: false }, (_event, filename) => {
    // Some platforms give no name: then any change in the folder counts.
    if (filename === null || filename === name) schedule();
  });
  // SIGHUP asks for a reload too (where the watch failed, or out of habit): never the default, which exits.
  const onHangup = () => schedule();
  process.on("SIGHUP", onHangup);
  watcher.on("error", (err) => {
    logger.error(
      { path, err: err.message },
      pollMs === undefined
        ? "registry watch failed; changes need a SIGHUP or a restart"
        : `registry watch failed; changes are seen by the poll every ${pollMs} ms`,
    );
    watcher?.close();
    watcher = undefined;
  });

  if (pollMs !== undefined) {
    // Taken now, synchronously: a write between this call and the first poll must count as a change.
    let seen: string;
    try {
      seen = fileSignature(statSync(path));
    } catch (err) {
      seen = fileSignature(undefined, err);
    }
    const poll = async () => {
      const now = await stat(path).then(
        (stats) => fileSignature(stats),
        (err: unknown) => fileSignature(undefined, err),
      );
      if (stopped) return;
      // A file that stays missing (or unreadable) is reported once, by the read its change schedules.
      if (now !== seen) {
        seen = now;
        schedule();
      }
      pollTimer = timers.setTimeout(() => void poll(), pollMs);
      unref(pollTimer);
    };
    pollTimer = timers.setTimeout(() => void poll(), pollMs);
    unref(pollTimer);
  }

  return () => {
    stopped = true;
    process.off("SIGHUP", onHangup);
    timers.clearTimeout(timer);
    timers.clearTimeout(pollTimer);
    watcher?.close();
    watcher = undefined;
  };
}

/** Like the watch (`persistent: false`), the poll holds no process open: the caller's servers do. */
function unref(handle: unknown): void {
  (handle as { unref?: () => void } | undefined)?.unref?.();
}
