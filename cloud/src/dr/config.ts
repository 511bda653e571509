/**
 * `paylane-dr`'s configuration: a small JSON file (`--config`, or
 * PAYLANE_DR_CONFIG), validated by zod so a misspelled key is one clear line.
 * The cipher passphrase is never in it: it comes from a 0600 file or from
 * PAYLANE_DR_CIPHER_PASS, and is never printed or logged.
 */
import { readFile, stat } from "node:fs/promises";
import { dirname, isAbsolute, resolve } from "node:path";
import { ConfigError, describeConfigIssues } from "@paylane/protocol/service";
import { z } from "zod";
import { parsePgUrl } from "../db/pg-url.ts";

export const BACKUP_TYPES = ["full", "diff", "incr"] as const;
export type BackupType = (typeof BACKUP_TYPES)[number];

const seconds = z.number().int().positive();

const PosixRepo = z.strictObject({
  type: z.literal("posix"),
  /** A folder standing in for another region (a mount of another machine's disk in production). */
  path: z.string().min(1),
});
const S3Repo = z.strictObject({
  type: z.literal("s3"),
  bucket: z.string().min(1),
  endpoint: z.string().min(1),
  region: z.string().min(1),
  /** Prefix inside the bucket. */
  path: z.string().default("/paylane"),
  uriStyle: z.enum(["host", "path"]).default("host"),
  verifyTls: z.boolean().default(true),
  // The access key and its secret come from PGBACKREST_REPO1_S3_KEY / PGBACKREST_REPO1_S3_KEY_SECRET.
});

export const DrConfigSchema = z.strictObject({
  /** pgBackRest's name for this cluster. */
  stanza: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, { error: "expected lower-case letters, digits, _ or -" })
    .default("paylane"),
  /** The cloud's database (the same DATABASE_URL as the cloud): where backups are recorded and checks run. */
  databaseUrl: z
    .string()
    .regex(/^postgres(ql)?:\/\//, { error: "expected postgres://user@host:port/db" })
    .superRefine((value, ctx) => {
      try {
        const hosts = parsePgUrl(value).hosts;
        // pgBackRest backs up one cluster, from its data directory on this machine: a multi-host DATABASE_URL
        // (the cloud's, for failover) has no single port to give it and made every command fail on "Invalid URL".
        if (hosts.length > 1)
          ctx.addIssue({
            code: "custom",
            message: `one host, the cluster whose dataDir this is (not the cloud's multi-host URL: ${hosts.map((h) => h.label).join(", ")})`,
          });
        else new URL(value);
      } catch (err) {
        ctx.addIssue({ code: "custom", message: (err as Error).message });
      }
    }),
  /** The cloud's schema (DATABASE_SCHEMA). */
  databaseSchema: z.string().default("paylane"),
  /** The cluster's data directory (pgBackRest's pg1-path): pgBackRest reads the files, not a connection. */
  dataDir: z.string().min(1),
  /** Where the cluster's unix socket is (pgBackRest connects through it, as the postgres user). */
  socketDir: z.string().default("/var/run/postgresql"),
  /** The backup repository: another region. */
  repo: z.discriminatedUnion("type", [PosixRepo, S3Repo]),
  /** A file (mode 0600) holding the repository's cipher passphrase; or PAYLANE_DR_CIPHER_PASS. */
  cipherPassFile: z.string().optional(),
  retention: z
    .strictObject({
      /** Full backups kept; older ones expire with the WAL only they needed. */
      full: z.number().int().min(1).max(9999).default(2),
      /** Differential backups kept (per full). */
      diff: z.number().int().min(1).max(9999).default(6),
    })
    .prefault({}),
  /** How often each type is due, in seconds: exported as paylane_backup_schedule_seconds{type}. */
  schedule: z
    .strictObject({ full: seconds.default(7 * 86_400), diff: seconds.default(86_400), incr: seconds.default(3_600) })
    .prefault({}),
  /**
   * Postgres' archive_timeout: a WAL segment is switched and archived at least this often, so a quiet
   * cluster loses at most this much when restored from the archive alone (the cold standby's RPO).
   */
  archiveTimeoutSeconds: z.number().int().min(0).max(86_400).default(60),
  /** Folder for pgbackrest.conf, its lock and log files (owned by the postgres user). */
  stateDir: z.string().min(1),
  /** pgBackRest's parallel processes; 1 on a small machine. */
  processMax: z.number().int().min(1).max(32).default(1),
  compressType: z.enum(["lz4", "zst", "gz", "none"]).default("lz4"),
});
export type DrConfig = z.output<typeof DrConfigSchema>;

/** Reads and validates a config file; relative paths in it are relative to the file. */
export async function loadConfig(file: string): Promise<DrConfig> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new ConfigError(`config ${file}: cannot be read (${(err as NodeJS.ErrnoException).code ?? "error"})`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`config ${file}: not JSON (${(err as Error).message})`);
  }
  return parseConfig(raw, dirname(resolve(file)), `config ${file}`);
}

export function parseConfig(raw: unknown, base = process.cwd(), name = "config"): DrConfig {
  const parsed = DrConfigSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError(`${name}: ${describeConfigIssues(parsed.error)}`);
  const c = parsed.data;
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  return {
    ...c,
    dataDir: abs(c.dataDir),
    socketDir: abs(c.socketDir),
    stateDir: abs(c.stateDir),
    ...(c.cipherPassFile ? { cipherPassFile: abs(c.cipherPassFile) } : {}),
    repo: c.repo.type === "posix" ? { ...c.repo, path: abs(c.repo.path) } : c.repo,
  };
}

/**
 * The repository's cipher passphrase: PAYLANE_DR_CIPHER_PASS, else the file,
 * which must not be readable by group or others.
 */
export async function readCipherPass(c: DrConfig, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const fromEnv = env.PAYLANE_DR_CIPHER_PASS;
  if (fromEnv) return checkPass(fromEnv, "PAYLANE_DR_CIPHER_PASS");
  if (!c.cipherPassFile)
    throw new ConfigError("cipherPassFile: set it in the config (a 0600 file) or set PAYLANE_DR_CIPHER_PASS");
  let mode: number;
  try {
    mode = (await stat(c.cipherPassFile)).mode;
  } catch (err) {
    throw new ConfigError(
      `cipherPassFile ${c.cipherPassFile}: cannot be read (${(err as NodeJS.ErrnoException).code ?? "error"})`,
    );
  }
  if ((mode & 0o077) !== 0)
    throw new ConfigError(
      `cipherPassFile ${c.cipherPassFile}: mode ${(mode & 0o777).toString(8)} lets others read the passphrase; chmod 600 it`,
    );
  let text: string;
  try {
    text = (await readFile(c.cipherPassFile, "utf8")).replace(/\r?\n$/, "");
  } catch (err) {
    // e.g. root's 0600 file and paylane-dr run from the postgres user's cron
    throw new ConfigError(
      `cipherPassFile ${c.cipherPassFile}: cannot be read by this user (${(err as NodeJS.ErrnoException).code ?? "error"}); the user running paylane-dr must own it`,
    );
  }
  return checkPass(text, `cipherPassFile ${c.cipherPassFile}`);
}

function checkPass(pass: string, where: string): string {
  if (pass.length < 20)
    throw new ConfigError(`${where}: the passphrase is shorter than 20 characters (openssl rand -base64 48 makes one)`);
  if (/[\r\n]/.test(pass)) throw new ConfigError(`${where}: the passphrase is one line`);
  return pass;
}
