/**
 * pgBackRest (Debian's package) driven for paylane-dr: the configuration it
 * reads, and each command run as the postgres OS user when we are root (it
 * reads the data directory and the server runs its archive-push as postgres).
 *
 * The cipher passphrase is in pgbackrest.conf (mode 0600, the postgres
 * user's), because the server's archive_command reads it there; every
 * command paylane-dr runs passes the one from the passphrase file in the
 * environment, which overrides the file, so a wrong passphrase file fails.
 */
import { spawn } from "node:child_process";
import { chmod, chown, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { postgresOwnedDir } from "./cluster.ts";
import type { DrConfig } from "./config.ts";

const asRoot = process.getuid?.() === 0;

export const confPath = (c: DrConfig) => join(c.stateDir, "pgbackrest.conf");

export interface PgPort {
  port: number;
}

/** The port in the config's database URL (default 5432). */
export function databasePort(c: DrConfig): number {
  const u = new URL(c.databaseUrl);
  return u.port ? Number(u.port) : 5432;
}

/** pgbackrest.conf for the config: the stanza, the repository, its cipher and retention. */
export function renderConf(c: DrConfig, cipherPass: string): string {
  const repo =
    c.repo.type === "posix"
      ? [`repo1-type=posix`, `repo1-path=${c.repo.path}`]
      : [
          `repo1-type=s3`,
          `repo1-path=${c.repo.path}`,
          `repo1-s3-bucket=${c.repo.bucket}`,
          `repo1-s3-endpoint=${c.repo.endpoint}`,
          `repo1-s3-region=${c.repo.region}`,
          `repo1-s3-uri-style=${c.repo.uriStyle}`,
          `repo1-storage-verify-tls=${c.repo.verifyTls ? "y" : "n"}`,
        ];
  return [
    "# Written by paylane-dr setup: edit paylane-dr's config and run setup again instead.",
    "[global]",
    ...repo,
    "repo1-cipher-type=aes-256-cbc",
    `repo1-cipher-pass=${cipherPass}`,
    "repo1-retention-full-type=count",
    `repo1-retention-full=${c.retention.full}`,
    `repo1-retention-diff=${c.retention.diff}`,
    `compress-type=${c.compressType}`,
    `process-max=${c.processMax}`,
    "start-fast=y",
    "archive-check=y",
    "archive-timeout=60",
    `lock-path=${join(c.stateDir, "lock")}`,
    `log-path=${join(c.stateDir, "log")}`,
    `spool-path=${join(c.stateDir, "spool")}`,
    "log-level-file=off",
    "",
    `[${c.stanza}]`,
    `pg1-path=${c.dataDir}`,
    `pg1-port=${databasePort(c)}`,
    `pg1-socket-path=${c.socketDir}`,
    "pg1-user=postgres",
    "",
  ].join("\n");
}

/** Writes pgbackrest.conf (0600, the postgres user's) and the folders it names. */
export async function writeConf(c: DrConfig, cipherPass: string): Promise<string> {
  await postgresOwnedDir(c.stateDir);
  for (const d of ["lock", "log", "spool"]) await postgresOwnedDir(join(c.stateDir, d));
  if (c.repo.type === "posix") await postgresOwnedDir(c.repo.path);
  const file = confPath(c);
  await writeFile(file, renderConf(c, cipherPass), { mode: 0o600 });
  await chmod(file, 0o600);
  if (asRoot) {
    const { uid, gid } = await postgresIds();
    await chown(file, uid, gid);
  }
  return file;
}

let ids: { uid: number; gid: number } | undefined;
async function postgresIds(): Promise<{ uid: number; gid: number }> {
  if (ids) return ids;
  const out = await new Promise<string>((resolve, reject) => {
    const p = spawn("id", ["postgres"]);
    let text = "";
    p.stdout.on("data", (d: Buffer) => {
      text += d.toString();
    });
    p.on("error", reject);
    p.on("close", () => resolve(text));
  });
  const uid = Number(/uid=(\d+)/.exec(out)?.[1]);
  const gid = Number(/gid=(\d+)/.exec(out)?.[1]);
  ids = { uid, gid };
  return ids;
}

/** pgBackRest said no: its own error line, with the code it gave (`[095]`). */
export class PgBackRestError extends Error {
  override name = "PgBackRestError";
  constructor(
    readonly command: string,
    readonly exitCode: number,
    readonly output: string,
    /** The repository could not be decrypted: a wrong passphrase. */
    readonly wrongPassphrase = looksLikeWrongPassphrase(output),
  ) {
    super(`pgbackrest ${command}: ${summarise(output) || `exit code ${exitCode}`}`);
  }
}

/**
 * pgBackRest's output when the repository was read with another passphrase: its info files decrypt to
 * garbage (`FormatError: key/value found outside of section`) or fail to decrypt (`CryptoError`). The
 * `command begin` line lists `--repo1-cipher-type`/`--repo1-cipher-pass=<redacted>` on every run, so the
 * words "cipher" or "crypto" alone say nothing: a backup of a stopped cluster was blamed on the passphrase.
 */
export function looksLikeWrongPassphrase(output: string): boolean {
  return output
    .split("\n")
    .filter((l) => !/ command begin /.test(l))
    .some((l) => /\b(CryptoError|FormatError)\b|unable to decrypt/i.test(l));
}

/** The first ERROR line, else the last non-empty line; passphrases never reach pgBackRest's output. */
function summarise(output: string): string {
  const lines = output
    .split("\n")
    .map((l) => l.replace(/^\S+ \S+ P\d+\s+/, "").trim())
    .filter(Boolean);
  const error = lines.find((l) => /^ERROR:/.test(l));
  return (error ?? lines[lines.length - 1] ?? "").slice(0, 500);
}

export interface RunOptions {
  cipherPass: string;
  /** Each output line as it comes (progress). */
  onLine?: (line: string) => void;
  /** Throw on a non-zero exit (default true). */
  check?: boolean;
}

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs `pgbackrest --config=… --stanza=… <command> <args>` as the postgres user. */
export async function pgbackrest(
  c: DrConfig,
  command: string,
  args: readonly string[],
  o: RunOptions,
): Promise<RunResult> {
  const argv = [`--config=${confPath(c)}`, `--stanza=${c.stanza}`, ...args, command];
  const [file, fullArgv] = asRoot ? ["runuser", ["-u", "postgres", "--", "pgbackrest", ...argv]] : ["pgbackrest", argv];
  const env = { ...process.env, PGBACKREST_REPO1_CIPHER_PASS: o.cipherPass };
  const result = await new Promise<RunResult>((resolve, reject) => {
    const child = spawn(file, fullArgv, { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let partial = "";
    child.stdout.on("data", (d: Buffer) => {
      const text = d.toString();
      stdout += text;
      if (o.onLine) {
        partial += text;
        const lines = partial.split("\n");
        partial = lines.pop() ?? "";
        for (const l of lines) o.onLine(l);
      }
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    child.on("error", (err) =>
      reject(
        (err as NodeJS.ErrnoException).code === "ENOENT"
          ? new Error("pgbackrest is not installed: apt-get install pgbackrest")
          : err,
      ),
    );
    child.on("close", (code) => resolve({ exitCode: code ?? 1, stdout, stderr }));
  });
  if ((o.check ?? true) && result.exitCode !== 0)
    throw new PgBackRestError(command, result.exitCode, `${result.stdout}\n${result.stderr}`);
  return result;
}

/** One backup as `pgbackrest info --output=json` describes it. */
export interface BackupInfo {
  label: string;
  type: "full" | "diff" | "incr";
  prior: string | null;
  timestamp: { start: number; stop: number };
  archive: { start: string | null; stop: string | null };
  info: { size: number; delta: number; repository: { size: number; delta: number } };
  lsn?: { start: string; stop: string };
  error?: boolean;
}

export interface StanzaInfo {
  name: string;
  status: { code: number; message: string };
  cipher: string;
  backup: BackupInfo[];
  archive: Array<{ id: string; min: string | null; max: string | null }>;
}

export async function info(c: DrConfig, cipherPass: string): Promise<StanzaInfo> {
  const { stdout } = await pgbackrest(c, "info", ["--output=json"], { cipherPass });
  // An info file decrypted with the wrong key quotes its garbage, raw control characters and all.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: that is what it removes
  const stanzas = JSON.parse(stdout.replace(/[\u0000-\u001f]/g, " ")) as Array<
    StanzaInfo & { repo?: Array<{ status: { code: number; message: string } }> }
  >;
  const s = stanzas.find((x) => x.name === c.stanza);
  if (!s) throw new Error(`pgbackrest info: no stanza ${c.stanza} in the repository (run paylane-dr setup)`);
  const repoStatus = s.repo?.[0]?.status ?? s.status;
  if (repoStatus.code === 99 && /FormatError|unable to load info file|cipher/i.test(repoStatus.message))
    throw new PgBackRestError("info", 1, "ERROR: backup.info and archive.info cannot be read", true);
  if (s.status.code !== 0 && s.status.code !== 2)
    throw new PgBackRestError("info", 1, `ERROR: stanza ${c.stanza}: ${s.status.message.slice(0, 300)}`);
  return s;
}
