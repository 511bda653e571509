#!/usr/bin/env -S npx tsx
/**
 * `paylane-dr`: backups of the cloud's Postgres with pgBackRest (an encrypted
 * repository in another region, WAL archived continuously, retention,
 * verify), point-in-time restore into a fresh cluster, and the project's
 * consistency check of a restored database (docs/disaster-recovery.md).
 */
import { ConfigError, createCommand, EXIT, oneLine } from "@paylane/protocol/service";
import { InvalidArgumentError } from "commander";
import { redactPgUrl } from "../db/pg-url.ts";
import { backup, parsePoint, restore, setup, verify, verifyText } from "./backup.ts";
import { BACKUP_TYPES, type BackupType, type DrConfig, loadConfig } from "./config.ts";
import { checkText, consistencyCheck } from "./consistency.ts";
import { PgBackRestError } from "./pgbackrest.ts";

export const NAME = "paylane-dr";

// `npm run dr -- …` runs in the repository's top folder; paths typed are relative to where they were typed.
if (process.env.npm_lifecycle_event === "dr" && process.env.INIT_CWD) process.chdir(process.env.INIT_CWD);

const CONFIG_HELP = [
  "  A JSON file (--config, or PAYLANE_DR_CONFIG); relative paths are relative to the file:",
  '    { "databaseUrl": "postgres://postgres@127.0.0.1:5432/paylane", "databaseSchema": "paylane",',
  '      "dataDir": "/var/lib/postgresql/15/main", "socketDir": "/var/run/postgresql",',
  '      "repo": { "type": "posix", "path": "/mnt/backup-region-b/paylane" },',
  '      "cipherPassFile": "/etc/paylane/dr-cipher-pass",',
  '      "retention": { "full": 2, "diff": 6 },',
  '      "schedule": { "full": 604800, "diff": 86400, "incr": 3600 },',
  '      "stateDir": "/var/lib/paylane-dr", "processMax": 1, "compressType": "lz4",',
  '      "archiveTimeoutSeconds": 60 }',
  '  repo can be { "type": "s3", "bucket", "endpoint", "region", "path" } with the key in',
  "  PGBACKREST_REPO1_S3_KEY / PGBACKREST_REPO1_S3_KEY_SECRET.",
].join("\n");

const ENVIRONMENT = [
  "  PAYLANE_DR_CONFIG       the config file, when --config is not given",
  "  PAYLANE_DR_CIPHER_PASS  the repository's cipher passphrase, instead of cipherPassFile (never printed)",
].join("\n");

const program = createCommand({
  name: NAME,
  packageJson: new URL("../../package.json", import.meta.url),
  description:
    "Backs the cloud's Postgres up with pgBackRest into an encrypted repository in another place, restores it " +
    "to any point in time into a fresh cluster, and checks a restored database (docs/disaster-recovery.md).",
  errorPrefix: `${NAME}:`,
  sections: [
    { title: "Configuration", body: CONFIG_HELP },
    { title: "Environment", body: ENVIRONMENT },
    {
      title: "Exit codes",
      body: "  0 done · 1 failed (a backup, a verify or a check that did not pass) · 2 bad usage",
    },
  ],
  examples: [
    { command: `${NAME} --config dr.json setup`, does: "the stanza, WAL archiving on, a first check" },
    { command: `${NAME} --config dr.json backup --type full`, does: "a full backup, recorded for the cloud's metrics" },
    { command: `${NAME} --config dr.json verify`, does: "every file in the repository read back and checked" },
    {
      command: `${NAME} --config dr.json restore --to 2026-12-05T18:30:00Z --target /srv/restore/data --port 5499`,
      does: "the database as it was at 18:30 UTC, on port 5499, checked against the source",
    },
    {
      command: `${NAME} check --source postgres://postgres@db/paylane --restored postgres://postgres@127.0.0.1:5499/paylane --at 2026-12-05T18:30:00Z`,
      does: "the consistency check alone",
    },
  ],
}).option("-c, --config <file>", "the config file (or PAYLANE_DR_CONFIG)");

async function config(): Promise<DrConfig> {
  const file = (program.opts() as { config?: string }).config ?? process.env.PAYLANE_DR_CONFIG;
  if (!file) throw new ConfigError("--config: give the config file (or set PAYLANE_DR_CONFIG)");
  return loadConfig(file);
}

const say = (line: string) => console.log(line);

const backupType = (value: string): BackupType => {
  if (!(BACKUP_TYPES as readonly string[]).includes(value))
    throw new InvalidArgumentError(`expected one of ${BACKUP_TYPES.join(", ")}`);
  return value as BackupType;
};
const port = (value: string): number => {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > 65_535) throw new InvalidArgumentError("expected a port from 1 to 65535");
  return n;
};
const pgUrl = (value: string): string => {
  let ok = /^postgres(ql)?:\/\//.test(value);
  try {
    new URL(value);
  } catch {
    ok = false;
  }
  if (!ok) throw new InvalidArgumentError("expected postgres://user@host:port/database");
  return value;
};
const point = (value: string): string => {
  try {
    parsePoint(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message.replace(/^--to \S+: /, ""));
  }
  return value;
};

program
  .command("setup")
  .description(
    "Writes pgbackrest.conf (0600) from the config, turns WAL archiving on (archive_mode, archive_command), " +
      "creates the stanza, checks that a WAL segment reaches the repository, and records the schedule for the cloud.",
  )
  .option("--restart", "restart Postgres (pg_ctl) if archive_mode or wal_level need it")
  .action(async (o: { restart?: boolean }) => {
    await setup(await config(), { restart: o.restart ?? false, say });
  });

program
  .command("backup")
  .description(
    "Takes a pgBackRest backup with its progress, expires what the retention no longer keeps, and records it " +
      "in backup_runs (paylane_backup_last_success_timestamp_seconds{type}).",
  )
  .option(
    "--type <type>",
    `one of ${BACKUP_TYPES.join(", ")} (a diff or incr with no full yet is taken as full)`,
    backupType,
    "incr",
  )
  .action(async (o: { type: BackupType }) => {
    await backup(await config(), { type: o.type, say });
  });

program
  .command("verify")
  .description("Runs pgbackrest verify (every backup file and WAL segment decrypted and checksummed) and info.")
  .option("--json", "as JSON")
  .action(async (o: { json?: boolean }) => {
    const c = await config();
    const r = await verify(c);
    console.log(o.json ? JSON.stringify(r, null, 2) : verifyText(r, c));
    if (!r.ok) process.exitCode = EXIT.failed;
  });

program
  .command("restore")
  .description(
    "Restores the newest backup before the point into a fresh data directory, replays the WAL archive to the " +
      "point, starts the cluster on --port (archiving off), and runs the consistency check against the source.",
  )
  .requiredOption("--to <time|latest>", "an ISO time with its zone (2026-12-05T18:30:00Z), or latest", point)
  .requiredOption("--target <dir>", "a missing or empty folder: the restored cluster's data directory")
  .requiredOption("--port <port>", "the port the restored cluster listens on (127.0.0.1)", port)
  .option("--json", "the check's report as JSON")
  .action(async (o: { to: string; target: string; port: number; json?: boolean }) => {
    const r = await restore(await config(), { to: o.to, target: o.target, port: o.port, say });
    // The source's URL with the new port: its password, if it has one, is not for the terminal or a log.
    console.log(`restored: ${redactPgUrl(r.url)}`);
    console.log(`stop it with: runuser -u postgres -- pg_ctl -D ${r.cluster.dataDir} stop`);
    if (r.check) {
      console.log(o.json ? JSON.stringify(r.check, null, 2) : checkText(r.check));
      if (!r.check.ok) process.exitCode = EXIT.failed;
    }
  });

program
  .command("check")
  .description(
    "The consistency check alone: ledger sums equal wallet balances, every inbox (site, device, seq) unique, " +
      "and with --source, per-table counts (and checksums of append-only tables) up to the point.",
  )
  .requiredOption("--restored <url>", "the restored database", pgUrl)
  .option("--source <url>", "the source database to compare with", pgUrl)
  .option("--at <time>", "the restore point (ISO time); without it the tables are compared whole", point)
  .option("--schema <schema>", "the cloud's schema", "paylane")
  .option("--json", "as JSON")
  .action(async (o: { restored: string; source?: string; at?: string; schema: string; json?: boolean }) => {
    const r = await consistencyCheck({
      restored: o.restored,
      source: o.source,
      schema: o.schema,
      at: o.at ? (parsePoint(o.at) ?? undefined) : undefined,
    });
    console.log(o.json ? JSON.stringify(r, null, 2) : checkText(r));
    if (!r.ok) process.exitCode = EXIT.failed;
  });

function explain(err: unknown): string {
  if (err instanceof PgBackRestError && err.wrongPassphrase)
    return `the repository cannot be decrypted with this passphrase (wrong cipherPassFile or PAYLANE_DR_CIPHER_PASS?): ${err.message}`;
  return oneLine(err);
}

program.parseAsync().catch((err: unknown) => {
  const usage = err instanceof ConfigError;
  process.stderr.write(`${NAME}: ${explain(err)}${usage ? ` (see ${NAME} --help)` : ""}\n`);
  process.exitCode = usage ? EXIT.usage : EXIT.failed;
});
