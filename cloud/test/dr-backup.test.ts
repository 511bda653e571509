/**
 * paylane-dr on a real cluster of its own (Debian's Postgres 15 and
 * pgBackRest 2.45): setup, a full backup, writes, a point T, more writes;
 * the restore to T holds exactly the rows up to T and passes the consistency
 * check, the restore to latest holds them all; the repository is encrypted
 * (a value the WAL holds in clear is nowhere in it) and a wrong passphrase is
 * refused in one line; retention expires the older full backup; the drill's
 * report; and the failures: a ledger row altered and an inbox key held twice
 * in a restored database fail the check, a tampered repository file fails
 * verify, a misspelled config key is one line.
 */
import { execFile } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import pino from "pino";
import { Registry } from "prom-client";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { loud } from "../../test/support/hooks.ts";
import { Ingestor, type PendingEntry } from "../src/bridge/ingest.ts";
import type { Database } from "../src/db/database.ts";
import { migrate } from "../src/db/migrate.ts";
import { openPg } from "../src/db/pg.ts";
import { backup, restore, setup, verify } from "../src/dr/backup.ts";
import { registerBackupMetrics } from "../src/dr/backup-metrics.ts";
import { freePort, LocalCluster, postgresOwnedDir } from "../src/dr/cluster.ts";
import { type DrConfig, parseConfig } from "../src/dr/config.ts";
import { consistencyCheck } from "../src/dr/consistency.ts";
import { backupRestoreDrill } from "../src/dr/drill.ts";
import { info } from "../src/dr/pgbackrest.ts";
import { operatorRequestKey, post } from "../src/ledger/ledger.ts";
import { seedSite } from "../src/seed.ts";

const run = promisify(execFile);
const SITE = "s1";
const SCHEMA = "paylane";
const MEMBERS = ["m-a", "m-b", "m-c"];
/** A value written into the database: it is in the WAL in clear, and must not be in the repository. */
const MARKER = `Plaintext Marker ${randomBytes(6).toString("hex")}`;
const PASS = randomBytes(32).toString("base64");
const CLI = join(import.meta.dirname, "../src/dr/main.ts");

const ctx = {
  dir: "",
  source: undefined as unknown as LocalCluster,
  db: undefined as unknown as Database,
  ingestor: undefined as unknown as Ingestor,
  config: undefined as unknown as DrConfig,
  configFile: "",
  seq: 0,
  point: new Date(0),
  restored: [] as LocalCluster[],
  fullLabel: "",
  /** Ingest statements that failed: a device would resend them, and so does `writes`. */
  ingestFailures: [] as string[],
};

const Dr = suite("paylane-dr backup, restore, check");

Dr.before(
  loud("starting a Postgres cluster with the cloud's schema", async () => {
    ctx.dir = await mkdtemp(join(tmpdir(), "paylane-dr-"));
    await postgresOwnedDir(ctx.dir);
    const port = await freePort();
    ctx.source = new LocalCluster({ dataDir: join(ctx.dir, "source", "data"), port, runDir: join(ctx.dir, "source") });
    await ctx.source.init();
    await ctx.source.start();
    ctx.db = await openPg({ url: ctx.source.url(), schema: SCHEMA, max: 3 });
    await migrate(ctx.db);
    await seedSite(
      ctx.db,
      { id: SITE, name: "DR venue", timezone: "UTC" },
      MEMBERS.map((id, i) => ({
        id,
        name: i === 0 ? MARKER : id,
        cardUid: `04A2B3C${i}`,
        code: `CODE${i}`,
        status: "active" as const,
      })),
    );
    await ctx.db.query("INSERT INTO devices (site_id, id) VALUES ($1, 'k1')", [SITE]);
    ctx.ingestor = new Ingestor({
      db: ctx.db,
      now: () => new Date(),
      logger: pino({ level: "silent" }),
      onCommitted: () => {},
      onFailed: (err) => ctx.ingestFailures.push(err.message),
    });
    const passFile = join(ctx.dir, "cipher-pass");
    await writeFile(passFile, `${PASS}\n`, { mode: 0o600 });
    const raw = {
      databaseUrl: ctx.source.url(),
      databaseSchema: SCHEMA,
      dataDir: ctx.source.dataDir,
      socketDir: ctx.source.runDir,
      repo: { type: "posix", path: join(ctx.dir, "region-b") },
      cipherPassFile: passFile,
      retention: { full: 1, diff: 1 },
      schedule: { full: 86_400, diff: 21_600, incr: 3_600 },
      stateDir: join(ctx.dir, "state"),
      processMax: 1,
      compressType: "lz4",
    };
    ctx.config = parseConfig(raw);
    ctx.configFile = join(ctx.dir, "dr.json");
    await writeFile(ctx.configFile, JSON.stringify(raw));
  }),
);

Dr.after(async () => {
  await ctx.ingestor?.stop();
  await ctx.db?.close();
  for (const c of ctx.restored) await c.stop().catch(() => {});
  await ctx.source?.stop().catch(() => {});
  if (ctx.dir && !process.env.DR_TEST_KEEP) await rm(ctx.dir, { recursive: true, force: true });
});

/** Real domain rows: top-ups through the ledger, check-ins and journaled payments through the bridge's ingest. */
async function writes(n: number): Promise<void> {
  const now = new Date();
  for (const member of MEMBERS) {
    const key = randomUUID();
    await ctx.db.transaction((tx) =>
      post(tx, {
        site: SITE,
        memberId: member,
        kind: "topup",
        amount: 1000,
        currency: "EUR",
        requestKey: operatorRequestKey("ops", key),
        origin: { operator: "ops" },
        at: now,
        recordedAt: now,
      }),
    );
  }
  const entries: PendingEntry[] = [];
  for (let i = 0; i < n; i++) {
    const member = MEMBERS[i % MEMBERS.length]!;
    const payment = i % 2 === 1;
    entries.push({
      site: SITE,
      device: "k1",
      seq: ++ctx.seq,
      entryId: randomUUID(),
      kind: payment ? "payment" : "checkin",
      applied: {
        at: new Date().toISOString(),
        body: JSON.stringify(
          payment
            ? {
                key: randomUUID(),
                memberId: member,
                amount: 150,
                currency: "EUR",
                itemId: null,
                authorization: "offline",
                walletVersion: 0,
              }
            : { memberId: member, credential: { type: "card", uid: "04A2B3C0" }, replicaVersion: 1, offline: false },
        ),
      },
    });
  }
  // As a kiosk does, entries not acked are sent again (the inbox takes each seq once).
  for (let attempt = 1; ; attempt++) {
    const failedBefore = ctx.ingestFailures.length;
    ctx.ingestor.add(entries);
    await ctx.ingestor.drain();
    if (ctx.ingestFailures.length === failedBefore) break;
    console.log(`  ingest attempt ${attempt} failed (${ctx.ingestFailures.slice(failedBefore).join("; ")}): resending`);
    if (attempt === 5) throw new Error("the ingest failed 5 times");
  }
  await writesSettled();
}

/**
 * Waits until no statement of this test runs on the source: a statement its client gave up on
 * (pg's query timeout) may still commit there, after the point a test takes next.
 */
async function writesSettled(): Promise<void> {
  const client = new pg.Client({ connectionString: ctx.source.url() });
  await client.connect();
  const deadline = Date.now() + 60_000;
  try {
    for (;;) {
      const { rows } = await client.query<{ n: number; queries: string }>(
        `SELECT count(*)::int AS n, string_agg(left(query, 60), ' | ') AS queries FROM pg_stat_activity
         WHERE datname = current_database() AND backend_type = 'client backend' AND state <> 'idle' AND pid <> pg_backend_pid()`,
      );
      if (rows[0]!.n === 0) return;
      if (Date.now() > deadline)
        throw new Error(`statements still running on the source after 60 s: ${rows[0]!.queries}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    await client.end();
  }
}

async function counts(url: string): Promise<{ inbox: number; ledger: number; sum: number }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ inbox: string; ledger: string; sum: string }>(
      `SELECT (SELECT count(*) FROM ${SCHEMA}.inbox)::text AS inbox, (SELECT count(*) FROM ${SCHEMA}.ledger_entries)::text AS ledger,
              (SELECT coalesce(sum(balance), 0) FROM ${SCHEMA}.wallets)::text AS sum`,
    );
    return { inbox: Number(rows[0]!.inbox), ledger: Number(rows[0]!.ledger), sum: Number(rows[0]!.sum) };
  } finally {
    await client.end();
  }
}

/** The restored cluster's log lines about recovery: the backup it started from, where the replay stopped. */
async function recoveryLog(cluster: LocalCluster): Promise<string> {
  const log = await readFile(cluster.logFile, "utf8").catch((err: Error) => `(no log: ${err.message})`);
  return log
    .split("\n")
    .filter((l) => /recovery|redo|consistent|restored log file|archive|target|timeline|FATAL|ERROR/i.test(l))
    .join("\n");
}

async function sql(url: string, text: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

async function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  try {
    const r = await run(process.execPath, ["--import", "tsx", CLI, "--config", ctx.configFile, ...args], {
      env: { ...process.env, ...env },
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p)));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

const expected = { atPoint: { inbox: 0, ledger: 0, sum: 0 }, latest: { inbox: 0, ledger: 0, sum: 0 } };

Dr("setup, full backup, writes, point T, writes: the restore to T holds exactly the rows up to T", async () => {
  const lines: string[] = [];
  await setup(ctx.config, { restart: true, say: (l) => lines.push(l) });
  assert.ok(
    lines.some((l) => /WAL archiving works/.test(l)),
    lines.join("\n"),
  );
  assert.not.ok(lines.join("\n").includes(PASS), "the passphrase is never printed");
  const conf = await stat(join(ctx.config.stateDir, "pgbackrest.conf"));
  assert.is(conf.mode & 0o777, 0o600);

  await writes(6);
  const full = await backup(ctx.config, { type: "full", say: (l) => lines.push(l) });
  assert.is(full.type, "full");
  ctx.fullLabel = full.label;
  assert.ok(
    lines.some((l) => /^backup: \d+%$/.test(l)),
    "progress is shown",
  );
  const recorded = await ctx.db.query<{ type: string }>("SELECT type FROM backup_runs WHERE label = $1", [full.label]);
  assert.equal(
    recorded.rows.map((r) => r.type),
    ["full"],
  );

  await writes(6);
  // pgBackRest keeps a backup's stop time in whole seconds and restores to a time from the backups that stopped
  // before it: the point must be in a later second than the backup's stop.
  while (Date.now() < (Math.floor(full.finishedAt.getTime() / 1000) + 1) * 1000)
    await new Promise((r) => setTimeout(r, 20));
  ctx.point = new Date();
  expected.atPoint = await counts(ctx.source.url());
  // The next rows must be strictly after the point.
  while (Date.now() <= ctx.point.getTime()) await new Promise((r) => setImmediate(r));
  await writes(6);
  expected.latest = await counts(ctx.source.url());
  assert.ok(expected.latest.inbox > expected.atPoint.inbox);

  const port = await freePort();
  const r = await restore(ctx.config, {
    to: ctx.point.toISOString(),
    target: join(ctx.dir, "restored-t", "data"),
    port,
  });
  ctx.restored.push(r.cluster);
  const atT = await counts(r.url);
  if (atT.inbox !== expected.atPoint.inbox || atT.ledger !== expected.atPoint.ledger)
    // where the replay stopped, and why: the restored cluster's log says it
    console.log(
      `  restore to ${ctx.point.toISOString()} missed rows; its recovery log:\n${await recoveryLog(r.cluster)}`,
    );
  assert.equal(atT, expected.atPoint, "exactly the rows up to T");
  assert.ok(r.check, "the check ran");
  assert.ok(r.check!.ok, r.check!.problems.join("\n"));
  const inbox = r.check!.tables.find((t) => t.table === "inbox")!;
  assert.equal(
    [inbox.verdict, inbox.restored, inbox.source],
    ["match", expected.atPoint.inbox, expected.atPoint.inbox],
  );
  const notJudged = r.check!.tables.filter((t) => t.verdict === "not judged").map((t) => t.table);
  assert.ok(notJudged.includes("device_streams"), "a table with no creation time is listed, not judged");
});

Dr("restore to latest holds every row and passes the check", async () => {
  const port = await freePort();
  const r = await restore(ctx.config, { to: "latest", target: join(ctx.dir, "restored-latest", "data"), port });
  ctx.restored.push(r.cluster);
  assert.equal(await counts(r.url), expected.latest);
  assert.ok(r.check!.ok, r.check!.problems.join("\n"));
});

Dr("the check fails on a restored database with an altered ledger row or an inbox key held twice", async () => {
  const restored = ctx.restored[0]!;
  const url = restored.url();
  await sql(
    url,
    `UPDATE ${SCHEMA}.ledger_entries SET amount = amount + 500, balance_after = balance_after + 500
     WHERE id = (SELECT id FROM ${SCHEMA}.ledger_entries WHERE kind = 'topup' ORDER BY recorded_at LIMIT 1)`,
  );
  const altered = await consistencyCheck({ source: ctx.source.url(), restored: url, schema: SCHEMA, at: ctx.point });
  assert.not.ok(altered.ok);
  assert.is(altered.ledgerMismatches.length, 1, "the wallet no longer adds up");
  assert.is(altered.tables.find((t) => t.table === "ledger_entries")!.verdict, "differ", "the checksum differs");

  await sql(
    url,
    `ALTER TABLE ${SCHEMA}.inbox DROP CONSTRAINT inbox_pkey;
     ALTER TABLE ${SCHEMA}.inbox DISABLE TRIGGER USER;
     INSERT INTO ${SCHEMA}.inbox SELECT * FROM ${SCHEMA}.inbox WHERE seq = 1`,
  );
  const r = await cli([
    "check",
    "--source",
    ctx.source.url(),
    "--restored",
    url,
    "--schema",
    SCHEMA,
    "--at",
    ctx.point.toISOString(),
  ]);
  assert.is(r.code, 1, r.stderr);
  assert.match(r.stdout, /FAILED/);
  assert.match(r.stdout, /inbox s1\/k1 seq 1: 2 rows/);
  assert.match(r.stdout, /wallet s1\/m-a: balance is not the sum of its entries/);
});

Dr("verify passes; the repository is encrypted; a wrong passphrase is refused in one line", async () => {
  const v = await verify(ctx.config);
  assert.ok(v.ok, v.problems.join("\n"));
  assert.is(v.cipher, "aes-256-cbc");

  // Control: the marker and the names are in the source's files in clear, so the search below can find them.
  const needles = [MARKER, "ledger_entries", "inbox_post_to_ledger"].map((s) => Buffer.from(s));
  const found = new Set<number>();
  for (const f of await filesUnder(join(ctx.source.dataDir, "base"))) {
    const body = await readFile(f);
    needles.forEach((n, i) => {
      if (body.includes(n)) found.add(i);
    });
  }
  assert.is(found.size, needles.length, "every needle is in the source's data files in clear");
  const repoFiles = await filesUnder(ctx.config.repo.type === "posix" ? ctx.config.repo.path : "");
  assert.ok(repoFiles.length > 10);
  for (const f of repoFiles) {
    const body = await readFile(f);
    for (const n of needles) assert.not.ok(body.includes(n), `${n} in clear in ${f}`);
  }

  const wrong = await cli(["verify"], { PAYLANE_DR_CIPHER_PASS: randomBytes(32).toString("base64") });
  assert.is(wrong.code, 1);
  const line = wrong.stderr.trim();
  assert.is(line.split("\n").length, 1, line);
  assert.match(line, /^paylane-dr: the repository cannot be decrypted with this passphrase/, line);

  // setup with a wrong passphrase is refused the same way, and leaves the archive_command's conf as it was
  const conf = join(ctx.config.stateDir, "pgbackrest.conf");
  const before = await readFile(conf, "utf8");
  const wrongSetup = await cli(["setup"], { PAYLANE_DR_CIPHER_PASS: randomBytes(32).toString("base64") });
  assert.is(wrongSetup.code, 1, wrongSetup.stderr);
  assert.match(wrongSetup.stderr, /^paylane-dr: the repository cannot be decrypted with this passphrase/);
  assert.is(await readFile(conf, "utf8"), before, "pgbackrest.conf keeps the passphrase that opens the repository");
});

Dr("retention keeps one full backup: the next full expires the first", async () => {
  const before = await info(ctx.config, PASS);
  assert.ok(before.backup.some((b) => b.label === ctx.fullLabel));
  await writes(2);
  const second = await backup(ctx.config, { type: "full" });
  const after = await info(ctx.config, PASS);
  assert.equal(
    after.backup.map((b) => b.label),
    [second.label],
  );
});

Dr("the drill: backup, restore to a point, verify, check, with timings, counts and checksums", async () => {
  await writes(2);
  const report = await backupRestoreDrill({ config: ctx.config, type: "incr" });
  assert.ok(report.ok, report.check.problems.join("\n"));
  assert.is(report.backup.type, "incr");
  const inbox = report.counts.find((c) => c.table === "inbox")!;
  assert.is(inbox.restored, (await counts(ctx.source.url())).inbox);
  assert.match(inbox.checksum ?? "", /^[0-9a-f]{32}$/);
  assert.ok(report.restore.seconds > 0 && report.backup.seconds > 0);
});

Dr("the cloud exports when each type last succeeded and its schedule", async () => {
  const metrics = new Registry();
  registerBackupMetrics({ db: ctx.db, metrics, logger: pino({ level: "silent" }) });
  const text = await metrics.metrics();
  const last = await ctx.db.query<{ at: string }>(
    "SELECT extract(epoch FROM max(finished_at))::text AS at FROM backup_runs WHERE type = 'full'",
  );
  assert.match(text, `paylane_backup_last_success_timestamp_seconds{type="full"} ${Number(last.rows[0]!.at)}`);
  assert.match(text, 'paylane_backup_last_success_timestamp_seconds{type="incr"}');
  assert.not.match(text, 'paylane_backup_last_success_timestamp_seconds{type="diff"}', "absent until the first diff");
  assert.match(text, 'paylane_backup_schedule_seconds{type="diff"} 21600');
});

Dr("the cloud exports its WAL archiver: files archived, failures, when last archived", async () => {
  const metrics = new Registry();
  registerBackupMetrics({ db: ctx.db, metrics, logger: pino({ level: "silent" }) });
  const text = await metrics.metrics();
  const value = (name: string) => {
    const m = new RegExp(`^${name} (\\S+)$`, "m").exec(text);
    assert.ok(m, `${name} has a sample:\n${text}`);
    return Number(m[1]);
  };
  const archiver = await ctx.db.query<{ failed: string }>("SELECT failed_count::text AS failed FROM pg_stat_archiver");
  // setup's check archived at least one segment, and the backups since then more
  const archived = value("paylane_postgres_wal_archived_total");
  assert.ok(archived >= 1, `archived ${archived}`);
  assert.is(value("paylane_postgres_wal_archive_failures_total"), Number(archiver.rows[0]!.failed));
  const last = value("paylane_postgres_wal_last_archived_timestamp_seconds");
  const started = (await stat(ctx.configFile)).mtimeMs / 1000;
  assert.ok(last >= started - 1 && last <= Date.now() / 1000 + 1, `last archived ${last}, setup at ${started}`);
  assert.match(text, "# TYPE paylane_postgres_wal_archived_total counter");
  assert.match(text, "# TYPE paylane_postgres_wal_archive_failures_total counter");
});

Dr(
  "a database that never archived has no last-archived series; one whose archiver cannot be read still serves the rest",
  async () => {
    const never = new Registry();
    registerBackupMetrics({
      db: {
        query: async <R>(sql: string) =>
          ({ rows: /pg_stat_archiver/.test(sql) ? [{ archived: "0", failed: "0", last_archived: null }] : [] }) as {
            rows: R[];
          },
      },
      metrics: never,
      logger: pino({ level: "silent" }),
    });
    const quiet = await never.metrics();
    assert.match(quiet, /^paylane_postgres_wal_archived_total 0$/m);
    assert.match(quiet, /^paylane_postgres_wal_archive_failures_total 0$/m);
    assert.match(quiet, "# TYPE paylane_postgres_wal_last_archived_timestamp_seconds gauge");
    assert.not.match(quiet, /^paylane_postgres_wal_last_archived_timestamp_seconds /m, "absent, not 0");

    const broken = new Registry();
    registerBackupMetrics({
      db: {
        query: async <R>(sql: string) => {
          if (/pg_stat_archiver/.test(sql)) throw new Error("permission denied for view pg_stat_archiver");
          return { rows: (/backup_schedules/.test(sql) ? [{ type: "full", value: 86400 }] : []) as R[] };
        },
      },
      metrics: broken,
      logger: pino({ level: "silent" }),
    });
    const text = await broken.metrics();
    assert.match(text, 'paylane_backup_schedule_seconds{type="full"} 86400', "the other series are served");
    for (const name of [
      "paylane_postgres_wal_archived_total",
      "paylane_postgres_wal_archive_failures_total",
      "paylane_postgres_wal_last_archived_timestamp_seconds",
    ]) {
      assert.match(text, `# TYPE ${name} `, `${name} stays declared`);
      assert.not.match(text, new RegExp(`^${name} `, "m"), `${name} has no sample (not a false 0)`);
    }
  },
);

Dr("a tampered repository file fails verify", async () => {
  const root = ctx.config.repo.type === "posix" ? ctx.config.repo.path : "";
  const files = (await filesUnder(join(root, "backup", ctx.config.stanza))).filter((f) =>
    /pg_data\/base\/.*\.lz4$/.test(f),
  );
  let biggest = files[0]!;
  for (const f of files) if ((await stat(f)).size > (await stat(biggest)).size) biggest = f;
  const body = await readFile(biggest);
  body[Math.floor(body.length / 2)]! ^= 0xff;
  await writeFile(biggest, body);
  const r = await cli(["verify"]);
  assert.is(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /verify: FAILED/);
});

Dr("a misspelled config key is one line naming it", async () => {
  const bad = join(ctx.dir, "bad.json");
  const raw = JSON.parse(await readFile(ctx.configFile, "utf8")) as Record<string, unknown>;
  raw.retension = raw.retention;
  await writeFile(bad, JSON.stringify(raw));
  const r = await run(process.execPath, ["--import", "tsx", CLI, "--config", bad, "verify"]).catch((e) => e);
  assert.is((r as { code: number }).code, 2);
  assert.match((r as { stderr: string }).stderr, /^paylane-dr: config .*bad\.json: unknown key "retension"/);
  assert.is((r as { stderr: string }).stderr.trim().split("\n").length, 1);
});

Dr.run();
