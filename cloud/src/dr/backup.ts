/**
 * What paylane-dr does, as functions the CLI and the drill both call:
 * setup (pgBackRest's stanza, WAL archiving on), backup (recorded where the
 * cloud reads it), verify, and a point-in-time restore into a fresh cluster
 * followed by the consistency check.
 */
import { existsSync } from "node:fs";
import { readdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { ConfigError } from "@paylane/protocol/service";
import pg from "pg";
import type { Database } from "../db/database.ts";
import { migrate } from "../db/migrate.ts";
import { openPg } from "../db/pg.ts";
import { LocalCluster, pgBinary, portFree, postgresOwnedDir } from "./cluster.ts";
import { BACKUP_TYPES, type BackupType, type DrConfig, readCipherPass } from "./config.ts";
import { type CheckReport, consistencyCheck } from "./consistency.ts";
import { type BackupInfo, confPath, info, PgBackRestError, pgbackrest, writeConf } from "./pgbackrest.ts";

export type Say = (line: string) => void;
const silent: Say = () => {};

/** A connection to the cluster itself (no schema), as the config's user. */
async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/**
 * The cloud's schema. Only `setup` (run by hand, once) applies the cloud's migrations: a nightly backup
 * must never change a production schema under a running cloud of another version.
 */
async function withCloudDb<T>(
  c: DrConfig,
  fn: (db: Database) => Promise<T>,
  o: { migrate?: boolean } = {},
): Promise<T> {
  const db = await openPg({ url: c.databaseUrl, schema: c.databaseSchema, max: 2 });
  try {
    if (o.migrate) await migrate(db);
    return await fn(db);
  } finally {
    await db.close();
  }
}

export const archiveCommand = (c: DrConfig) =>
  `pgbackrest --config=${confPath(c)} --stanza=${c.stanza} archive-push %p`;

export interface SetupOptions {
  /** Restart the cluster (pg_ctl, as postgres) when archive_mode or wal_level need it. */
  restart?: boolean;
  say?: Say;
}

/** pgbackrest.conf, WAL archiving on the cluster, stanza-create, check; the schedule recorded for the cloud. */
export async function setup(c: DrConfig, o: SetupOptions = {}): Promise<void> {
  const say = o.say ?? silent;
  const pass = await readCipherPass(c);
  const previous = await readFile(confPath(c), "utf8").catch(() => undefined);
  const conf = await writeConf(c, pass);
  // The server's archive_command reads its passphrase from this file: a repository that exists already must open
  // with the new one before it stays there. A setup run with a wrong passphrase had left every later WAL segment
  // failing to archive (pg_stat_archiver.failed_count growing, pg_wal filling) until someone noticed.
  try {
    await info(c, pass);
  } catch (err) {
    if (err instanceof PgBackRestError && err.wrongPassphrase) {
      if (previous === undefined) await rm(conf, { force: true });
      else await writeFile(conf, previous);
      throw err;
    }
    // no stanza yet (a new repository) or one stanza-create and check below will report on
  }
  say(`wrote ${conf} (mode 0600; repository ${repoText(c)}, cipher aes-256-cbc)`);
  const needsRestart = await withClient(c.databaseUrl, async (db) => {
    const q = (s: string) => `'${s.replaceAll("'", "''")}'`;
    await db.query(`ALTER SYSTEM SET archive_command = ${q(archiveCommand(c))}`);
    await db.query("ALTER SYSTEM SET archive_mode = 'on'");
    await db.query(`ALTER SYSTEM SET archive_timeout = '${c.archiveTimeoutSeconds}s'`);
    const { rows } = await db.query<{ wal_level: string }>("SHOW wal_level");
    if (rows[0]?.wal_level === "minimal") await db.query("ALTER SYSTEM SET wal_level = 'replica'");
    await db.query("SELECT pg_reload_conf()");
    const mode = await db.query<{ archive_mode: string }>("SHOW archive_mode");
    return mode.rows[0]?.archive_mode === "off" || rows[0]?.wal_level === "minimal";
  });
  say(`archive_command = ${archiveCommand(c)}; archive_timeout = ${c.archiveTimeoutSeconds} s`);
  if (needsRestart) {
    if (!o.restart)
      throw new ConfigError(
        "archive_mode (or wal_level) takes a restart of Postgres: restart it (systemctl restart postgresql, or pg_ctl restart) and run setup again, or pass --restart",
      );
    await pgBinary("pg_ctl", [
      "-D",
      c.dataDir,
      "-m",
      "fast",
      "-w",
      "-t",
      "60",
      "-l",
      join(c.stateDir, "log", "postgres-restart.log"),
      "restart",
    ]);
    say("restarted Postgres: archive_mode = on");
  }
  await pgbackrest(c, "stanza-create", ["--log-level-console=warn"], { cipherPass: pass });
  say(`stanza ${c.stanza} created`);
  const checked = await pgbackrest(c, "check", ["--log-level-console=info"], { cipherPass: pass });
  const archived = /WAL segment (\S+) successfully archived/.exec(checked.stdout)?.[1];
  say(`check: WAL archiving works${archived ? ` (segment ${archived} archived)` : ""}`);
  await withCloudDb(
    c,
    async (db) => {
      for (const type of BACKUP_TYPES)
        await db.query(
          `INSERT INTO backup_schedules (type, interval_seconds, updated_at) VALUES ($1, $2, now())
         ON CONFLICT (type) DO UPDATE SET interval_seconds = $2, updated_at = now()`,
          [type, c.schedule[type]],
        );
    },
    { migrate: true },
  );
  say(
    `schedule: full every ${duration(c.schedule.full)}, diff every ${duration(c.schedule.diff)}, incr every ${duration(c.schedule.incr)}; ` +
      `retention: ${c.retention.full} full, ${c.retention.diff} diff`,
  );
}

function repoText(c: DrConfig): string {
  return c.repo.type === "posix" ? c.repo.path : `s3://${c.repo.bucket}${c.repo.path} at ${c.repo.endpoint}`;
}

export function duration(s: number): string {
  if (s % 86_400 === 0) return `${s / 86_400} d`;
  if (s % 3_600 === 0) return `${s / 3_600} h`;
  if (s % 60 === 0) return `${s / 60} min`;
  return `${s} s`;
}

export function bytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

export interface BackupRecord {
  label: string;
  type: BackupType;
  startedAt: Date;
  finishedAt: Date;
  sizeBytes: number;
  repoSizeBytes: number;
  walStart: string | null;
  walStop: string | null;
  /** Labels in the repository after the backup's expire step. */
  kept: string[];
}

/** A pgBackRest backup with progress, recorded in backup_runs. */
export async function backup(c: DrConfig, o: { type?: BackupType; say?: Say } = {}): Promise<BackupRecord> {
  const say = o.say ?? silent;
  const type = o.type ?? "incr";
  const pass = await readCipherPass(c);
  let shown = -1;
  await pgbackrest(c, "backup", [`--type=${type}`, "--log-level-console=detail"], {
    cipherPass: pass,
    onLine: (line) => {
      const file = /backup file .* \(([^,]+), (\d+(?:\.\d+)?)%\)/.exec(line);
      if (file) {
        const pct = Math.floor(Number(file[2]) / 10) * 10;
        if (pct > shown) {
          shown = pct;
          say(`backup: ${pct}%`);
        }
        return;
      }
      const m = /(?:INFO|WARN): (.*)$/.exec(line);
      if (m && !/^(backup|expire) command (begin|end)/.test(m[1]!)) say(`backup: ${m[1]}`);
    },
  });
  const stanza = await info(c, pass);
  const last = stanza.backup[stanza.backup.length - 1];
  if (!last) throw new Error("pgbackrest backup succeeded but info lists no backup");
  const record = toRecord(last, stanza.backup);
  await withCloudDb(c, (db) =>
    db.query(
      `INSERT INTO backup_runs (label, stanza, type, started_at, finished_at, size_bytes, repo_size_bytes, wal_start, wal_stop)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (label) DO NOTHING`,
      [
        record.label,
        c.stanza,
        record.type,
        record.startedAt,
        record.finishedAt,
        record.sizeBytes,
        record.repoSizeBytes,
        record.walStart,
        record.walStop,
      ],
    ),
  );
  say(
    `backup ${record.label}: ${record.type}, ${bytes(record.sizeBytes)} of cluster, ${bytes(record.repoSizeBytes)} in the repository, ` +
      `WAL ${record.walStart} … ${record.walStop}, ${((record.finishedAt.getTime() - record.startedAt.getTime()) / 1000).toFixed(1)} s`,
  );
  say(
    `recorded in ${c.databaseSchema}.backup_runs; the repository keeps ${record.kept.length}: ${record.kept.join(", ")}`,
  );
  return record;
}

function toRecord(b: BackupInfo, all: BackupInfo[]): BackupRecord {
  return {
    label: b.label,
    type: b.type,
    startedAt: new Date(b.timestamp.start * 1000),
    finishedAt: new Date(b.timestamp.stop * 1000),
    sizeBytes: b.info.size,
    repoSizeBytes: b.info.repository.delta,
    walStart: b.archive.start,
    walStop: b.archive.stop,
    kept: all.map((x) => x.label),
  };
}

export interface VerifyReport {
  ok: boolean;
  /** pgBackRest's own lines about what failed (empty when ok). */
  problems: string[];
  status: string;
  cipher: string;
  backups: BackupRecord[];
  walMin: string | null;
  walMax: string | null;
  seconds: number;
}

/** `pgbackrest verify` (every file's checksum, through the cipher) and `info`. */
export async function verify(c: DrConfig): Promise<VerifyReport> {
  const started = performance.now();
  const pass = await readCipherPass(c);
  const v = await pgbackrest(c, "verify", ["--log-level-console=info", "--verbose"], {
    cipherPass: pass,
    check: false,
  });
  const { ok, problems } = parseVerify(`${v.stdout}\n${v.stderr}`, v.exitCode);
  // A repository it cannot decrypt makes verify say "no usable backup.info"; info names the cause.
  const stanza = await info(c, pass);
  const archive = stanza.archive[stanza.archive.length - 1];
  return {
    ok,
    problems,
    status: stanza.status.message,
    cipher: stanza.cipher,
    backups: stanza.backup.map((b) => toRecord(b, stanza.backup)),
    walMin: archive?.min ?? null,
    walMax: archive?.max ?? null,
    seconds: (performance.now() - started) / 1000,
  };
}

/**
 * pgBackRest 2.45's verify exits 0 whatever it found: the verdict is the
 * `status:` of its stanza summary, and the problems the lines under it plus
 * each file it reported invalid or missing.
 */
export function parseVerify(output: string, exitCode: number): { ok: boolean; problems: string[] } {
  const lines = output.split("\n");
  const at = lines.findIndex((l) => /INFO: stanza: /.test(l));
  const block: string[] = [];
  for (let i = at + 1; at >= 0 && i < lines.length && !/^\d{4}-\d{2}-\d{2} /.test(lines[i]!); i++)
    if (lines[i]!.trim()) block.push(lines[i]!.trim());
  const status = /^status: (\S+)/.exec(block[0] ?? "")?.[1];
  const problems = [
    ...lines
      .map((l) => l.replace(/^\S+ \S+ P\d+\s+/, "").trim())
      .filter((l) => /^(ERROR|WARN):/.test(l) || /^INFO: (invalid|missing|unable)/.test(l))
      .map((l) => l.replace(/^INFO: /, "")),
    ...(status === "ok" ? [] : failedParts(block.slice(1))),
  ];
  // Without --verbose (or on a version that ignores it) a clean verify prints no summary at all.
  if (exitCode !== 0 && problems.length === 0) problems.push(`pgbackrest verify: exit code ${exitCode}`);
  return { ok: exitCode === 0 && (status === undefined || status === "ok") && problems.length === 0, problems };
}

/** Of verify's verbose summary, the parts with something wrong: a header and its counts when a count is not 0. */
function failedParts(lines: string[]): string[] {
  const out: string[] = [];
  lines.forEach((line, i) => {
    if (/^missing: /.test(line)) {
      if (/: [1-9]/.test(line)) out.push(`${lines[i - 1] ?? ""}: ${line}`);
    } else if (!/^(archiveId|backup): /.test(line)) out.push(line);
  });
  return out;
}

export function verifyText(r: VerifyReport, c: DrConfig): string {
  const lines = [
    `stanza ${c.stanza} (pgbackrest info): ${r.status}; repository ${repoText(c)}, cipher ${r.cipher}`,
    `WAL archive: ${r.walMin ?? "empty"} … ${r.walMax ?? ""}`,
    `backups (${r.backups.length}):`,
    ...r.backups.map(
      (b) =>
        `  ${b.label.padEnd(34)} ${b.type.padEnd(4)} ${b.finishedAt.toISOString()}  ${bytes(b.sizeBytes).padStart(9)} cluster  ${bytes(b.repoSizeBytes).padStart(9)} repo`,
    ),
    r.ok
      ? `verify: ok — every backup file and WAL segment read back and matched its checksum (${r.seconds.toFixed(1)} s)`
      : `verify: FAILED (${r.problems.length} problem${r.problems.length === 1 ? "" : "s"}):`,
    ...r.problems.map((p) => `  ${p}`),
  ];
  return lines.join("\n");
}

export interface RestoreOptions {
  /** "latest", or an ISO time: the state of the database at that moment. */
  to: string;
  /** A fresh (missing or empty) data directory for the restored cluster. */
  target: string;
  port: number;
  /** Run the consistency check after the restore (default true): against the source when it answers, else its own invariants. */
  check?: boolean;
  say?: Say;
}

export interface RestoreResult {
  cluster: LocalCluster;
  /** The restored cluster's URL, same database, user and schema as the source. */
  url: string;
  point: Date | null;
  /** From the start of the restore to a promoted cluster accepting writes: restore + WAL replay. */
  seconds: number;
  /** The consistency check against the source (null when it was not run). */
  check: CheckReport | null;
  sourceReachable: boolean;
}

/** The point as a Date, or null for latest; a bad time is one clear line. */
export function parsePoint(to: string, now = new Date()): Date | null {
  if (to === "latest") return null;
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/.test(to))
    throw new ConfigError(`--to ${to}: expected latest or an ISO time with its zone, e.g. 2026-12-05T18:30:00Z`);
  const d = new Date(to);
  if (Number.isNaN(d.getTime())) throw new ConfigError(`--to ${to}: not a valid time`);
  if (d.getTime() > now.getTime()) throw new ConfigError(`--to ${to}: in the future; the newest point is latest`);
  return d;
}

/** The URL of the restored cluster: the source's URL on 127.0.0.1 and the new port. */
export function restoredUrl(source: string, port: number): string {
  const u = new URL(source);
  u.hostname = "127.0.0.1";
  u.port = String(port);
  return u.toString();
}

/**
 * Point-in-time restore into a fresh cluster: the WAL up to now is archived
 * first (when the source answers), pgBackRest restores the newest backup
 * before the point and replays the archive to it; the cluster starts on its
 * port, promoted, with archiving off (a restored copy must not write into the
 * source's archive); then the consistency check against the source.
 */
export async function restore(c: DrConfig, o: RestoreOptions): Promise<RestoreResult> {
  const say = o.say ?? silent;
  const point = parsePoint(o.to);
  const started = performance.now();
  const pass = await readCipherPass(c);
  // pgBackRest takes only an absolute pg1-path ("'rel/data' must begin with /"), after the copy was half made.
  const target = resolve(o.target);
  const present = await readdir(target).catch(() => [] as string[]);
  if (present.length > 0)
    throw new ConfigError(`--target ${target}: not empty; a restore goes into a fresh folder (a new data directory)`);
  // Said before the restore: found after it, pg_ctl's "could not start server" left a full, unusable target behind.
  if (!(await portFree(o.port)))
    throw new ConfigError(`--port ${o.port}: already in use on 127.0.0.1; give a free port for the restored cluster`);
  let sourceReachable = false;
  try {
    await withClient(c.databaseUrl, async (db) => {
      // A commit after the point: recovery to a time stops at the first commit past it, so one must be archived.
      if (point) await db.query("SELECT txid_current()");
    });
    sourceReachable = true;
  } catch {
    say("the source database does not answer: restoring from what the archive already holds");
  }
  if (sourceReachable) {
    // check switches the WAL segment and waits until it is in the repository.
    await pgbackrest(c, "check", ["--log-level-console=warn"], { cipherPass: pass });
    say("archived the WAL up to now");
  }
  // A parent made here is the postgres user's too (Postgres needs to reach its data directory).
  if (!existsSync(dirname(target))) await postgresOwnedDir(dirname(target));
  await postgresOwnedDir(target);
  const runDir = join(c.stateDir, `run-${o.port}`);
  await postgresOwnedDir(runDir);
  const typeArgs = point
    ? [
        "--type=time",
        `--target=${point.toISOString().replace("T", " ").replace("Z", "+00")}`,
        "--target-action=promote",
      ]
    : [];
  say(`restoring ${point ? `to ${point.toISOString()}` : "latest"} into ${target}`);
  await pgbackrest(c, "restore", [`--pg1-path=${target}`, ...typeArgs, "--log-level-console=info"], {
    cipherPass: pass,
    onLine: (line) => {
      const m = /INFO: (restore backup set \S+.*|restore size = .*|write updated .*)$/.exec(line);
      if (m) say(`restore: ${m[1]}`);
    },
  });
  const cluster = new LocalCluster({ dataDir: target, port: o.port, runDir });
  await cluster.configure({
    port: o.port,
    listen_addresses: "'127.0.0.1'",
    unix_socket_directories: `'${runDir}'`,
    archive_mode: "'off'",
  });
  await cluster.start();
  const url = restoredUrl(c.databaseUrl, o.port);
  await waitPromoted(url);
  const seconds = (performance.now() - started) / 1000;
  say(`restored cluster accepts writes on port ${o.port} (${seconds.toFixed(1)} s); its log: ${cluster.logFile}`);
  let check: CheckReport | null = null;
  // The source gone (the case a restore is for) still leaves the restored database's own invariants to check.
  if (o.check ?? true) {
    check = await consistencyCheck({
      source: sourceReachable ? c.databaseUrl : undefined,
      restored: url,
      schema: c.databaseSchema,
      at: point ?? undefined,
    });
  }
  return { cluster, url, point, seconds, check, sourceReachable };
}

/** Waits until recovery has ended and the cluster was promoted (a bounded wait on the condition). */
async function waitPromoted(url: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  await withClient(url, async (db) => {
    for (;;) {
      const { rows } = await db.query<{ r: boolean }>("SELECT pg_is_in_recovery() AS r");
      if (!rows[0]!.r) return;
      if (Date.now() > deadline)
        throw new Error(`the restored cluster is still recovering after ${timeoutMs / 1000} s`);
      await new Promise((r) => setTimeout(r, 100));
    }
  });
}

export { PgBackRestError };
