/**
 * CLOUD_SITES of deployments sharing one database schema (cloud/src/bridge/leader.ts,
 * docs/partitioning.md): each deployment has a leader lock of its own, so two
 * that own a site in common would both lead it (its alerts notified twice).
 * An instance that may lead refuses to start, one line naming both
 * CLOUD_SITES, while such a deployment runs; N instances of one deployment
 * start as always; disjoint deployments both start; a deployment whose
 * instances are all gone blocks nothing. Two that started anyway (the first
 * had no leader at that moment) find each other while running: an error line
 * and paylane_cloud_overlapping_sites.
 *
 * Real Postgres; the leaders' tries and pings run on a fake clock.
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Registry } from "@paylane/protocol";
import { ConfigError } from "@paylane/protocol/service";
import { pino } from "pino";
import { Registry as MetricsRegistry } from "prom-client";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { FakeTimers } from "../../test/support/fake-timers.ts";
import { Signal } from "../../test/support/signal.ts";
import { Leader } from "../src/bridge/leader.ts";
import { CloudService } from "../src/cloud.ts";
import { parseCloudEnv } from "../src/config.ts";
import type { Database } from "../src/db/database.ts";
import { migrate } from "../src/db/migrate.ts";
import { openPg } from "../src/db/pg.ts";

const PG_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const schema = `t_${randomBytes(6).toString("hex")}`;
const FIX = "give every site to exactly one deployment";

interface Logged {
  level: number;
  msg: string;
  instance?: string;
}

const ctx = {
  db: undefined as unknown as Database,
  timers: new FakeTimers(),
  signal: new Signal(),
  logged: [] as Logged[],
  running: new Set<Leader>(),
};

const log = pino({ level: "info" }, { write: (line: string) => void ctx.logged.push(JSON.parse(line)) });

const Sites = suite("overlapping CLOUD_SITES on one schema");

Sites.before(async () => {
  ctx.db = await openPg({ url: PG_URL, schema });
  await migrate(ctx.db);
});

Sites.after(async () => {
  for (const l of ctx.running) await l.stop().catch(() => {});
  await ctx.db?.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
  await ctx.db?.close().catch(() => {});
});

/** An instance of the deployment owning `sites` (undefined: CLOUD_SITES unset), started. */
async function instance(name: string, sites: string[] | undefined, metrics?: MetricsRegistry): Promise<Leader> {
  const leader = new Leader({
    db: ctx.db,
    logger: log.child({ instance: name }),
    instance: name,
    timers: ctx.timers,
    everyMs: 1000,
    sites,
    metrics,
  });
  await leader.start();
  ctx.running.add(leader);
  return leader;
}

async function stop(...leaders: Leader[]): Promise<void> {
  for (const l of leaders) {
    await l.stop();
    ctx.running.delete(l);
  }
}

/** The start's refusal: its one line. */
async function refused(name: string, sites: string[] | undefined): Promise<string> {
  try {
    await instance(name, sites);
  } catch (err) {
    assert.instance(err, ConfigError);
    return (err as Error).message;
  }
  assert.unreachable(`${name} (${sites ?? "every site"}) started`);
  return "";
}

/**
 * Waits for `check`, re-checked every 20 ms of real time (replies come in between), the fake clock
 * advanced a quarter second each time (or not at all).
 */
async function until(check: () => boolean | Promise<boolean>, what: string, advance = true): Promise<void> {
  const poll = setInterval(() => {
    if (advance) ctx.timers.advance(250);
    ctx.signal.notify();
  }, 20);
  try {
    await ctx.signal.until(check, what, 15_000);
  } finally {
    clearInterval(poll);
  }
}

Sites("b,c is refused while a,b runs: one line naming both; a second instance of a,b starts as always", async () => {
  const ab = await instance("ab-1", ["a", "b"]);
  assert.ok(ab.leading);
  assert.is(
    await refused("bc-1", ["b", "c"]),
    `CLOUD_SITES=b,c overlaps CLOUD_SITES=a,b of another deployment running on schema ${schema} (site b would have two leaders): ${FIX}`,
  );
  assert.is(
    await refused("all-1", undefined),
    `CLOUD_SITES unset (every site) overlaps CLOUD_SITES=a,b of another deployment running on schema ${schema} (sites a, b would have two leaders): ${FIX}`,
  );
  // The same deployment, its sites listed in another order: the same scope, one leader.
  const ab2 = await instance("ab-2", ["b", "a"]);
  assert.equal([ab.leading, ab2.leading], [true, false]);
  assert.equal(
    ctx.logged.filter((l) => l.level >= 50),
    [],
    "a refusal is the start's error, not a log line too",
  );
  await stop(ab, ab2);
});

Sites("a deployment whose instances are all gone blocks nothing: a and c, disjoint, both start and lead", async () => {
  // a,b (stopped) and b,c (refused) are recorded on the schema, neither runs.
  const { rows } = await ctx.db.query<{ scope: string }>("SELECT scope FROM leader_scopes ORDER BY scope");
  assert.equal(
    rows.map((r) => r.scope),
    ["*", "a,b", "b,c"],
  );
  const a = await instance("a-1", ["a"]);
  const c = await instance("c-1", ["c"]);
  assert.equal([a.leading, c.leading], [true, true], "each its own leader");
  await stop(a, c);
});

Sites(
  "a,b and b,c both running (b,c started while a,b had no leader): each logs the overlap and shows it",
  async () => {
    const metrics = { ab: new MetricsRegistry(), bc: new MetricsRegistry() };
    const ab = await instance("ab-1", ["a", "b"], metrics.ab);
    // a,b's leader loses its connection: it leads again at its next try, but b,c starts in between.
    await ctx.db.query(
      `SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted
       AND objid = hashtext('paylane-leader:' || $1::text || ':a,b')::oid`,
      [schema],
    );
    await until(() => !ab.leading, "a,b's leader no longer leading", false);
    const bc = await instance("bc-1", ["b", "c"], metrics.bc);
    assert.ok(bc.leading, "b,c found no running a,b");

    const overlaps = async (m: MetricsRegistry) =>
      (await m.getSingleMetric("paylane_cloud_overlapping_sites")?.get())?.values[0]?.value;
    await until(
      async () => ab.leading && (await overlaps(metrics.ab)) === 1 && (await overlaps(metrics.bc)) === 1,
      "both see site b led twice",
    );
    const errors = ctx.logged
      .filter((l) => l.level === 50)
      .map((l) => [l.instance, l.msg])
      .sort(([x], [y]) => String(x).localeCompare(String(y)));
    assert.equal(
      errors,
      [
        [
          "ab-1",
          `CLOUD_SITES=a,b overlaps CLOUD_SITES=b,c of another deployment running on schema ${schema} (site b would have two leaders): ${FIX}`,
        ],
        [
          "bc-1",
          `CLOUD_SITES=b,c overlaps CLOUD_SITES=a,b of another deployment running on schema ${schema} (site b would have two leaders): ${FIX}`,
        ],
      ],
      "one error line each, naming both CLOUD_SITES",
    );
    // The scrape as Prometheus reads it.
    const scrape = await metrics.ab.metrics();
    assert.match(scrape, /^paylane_cloud_overlapping_sites 1$/m);
    const lint = spawnSync("promtool", ["check", "metrics"], { input: scrape, encoding: "utf8" });
    assert.is(lint.status, 0, `${lint.stdout}${lint.stderr}`);

    // b,c goes: a,b's next check finds nobody else leading its sites.
    await stop(bc);
    await until(async () => (await overlaps(metrics.ab)) === 0, "a,b's gauge back to 0");
    assert.ok(
      ctx.logged.some(
        (l) => l.instance === "ab-1" && l.msg === "no other running deployment leads this deployment's sites any more",
      ),
    );
    await stop(ab);
  },
);

Sites("paylane-cloud with overlapping CLOUD_SITES fails to start with the line", async () => {
  const ab = await instance("ab-1", ["a", "b"]);
  const dir = await mkdtemp(join(tmpdir(), "paylane-sites-"));
  try {
    const registryPath = join(dir, "registry.json");
    await Registry.save(registryPath, { version: 1, devices: [], services: [] });
    const cloud = new CloudService({
      config: parseCloudEnv({
        CLOUD_SITES: "b,c",
        CLOUD_PORT: "0",
        REGISTRY_PATH: registryPath,
        DATABASE_URL: PG_URL,
        DATABASE_SCHEMA: schema,
        // never reached: the leader refuses before the bridge connects
        MQTT_URL: "mqtt://127.0.0.1:9",
      }),
      logger: pino({ level: "silent" }),
    });
    try {
      await cloud.start();
      assert.unreachable("the cloud started");
    } catch (err) {
      assert.instance(err, ConfigError);
      assert.is(
        (err as Error).message,
        `CLOUD_SITES=b,c overlaps CLOUD_SITES=a,b of another deployment running on schema ${schema} (site b would have two leaders): ${FIX}`,
      );
    }
    assert.ok(ab.leading, "the running deployment is untouched");
  } finally {
    await stop(ab);
    await rm(dir, { recursive: true, force: true });
  }
});

Sites.run();
