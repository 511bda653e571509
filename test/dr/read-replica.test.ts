/**
 * Issue 18, "Replica and failover": libpq's multi-host DATABASE_URL (node-postgres
 * reads one host) and DATABASE_READ_URL, on a real primary and streaming replica
 * started here (pg_basebackup -R): the read-write host is found whatever its place
 * in the list; reads go to the replica and to the primary while the replica is down.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MemoryPresence, migrate, mintOperatorToken, seedSite } from "@paylane/cloud";
import { Registry } from "@paylane/protocol";
import { Registry as MetricsRegistry } from "prom-client";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { createApi } from "../../cloud/src/api/app.ts";
import type { Database } from "../../cloud/src/db/database.ts";
import { openPg, openPgReader } from "../../cloud/src/db/pg.ts";
import { parsePgUrl } from "../../cloud/src/db/pg-url.ts";
import { freePort, LocalCluster } from "../../cloud/src/dr/cluster.ts";
import { loud } from "../support/hooks.ts";

let dir = "";
let primary: LocalCluster | undefined;
let replica: LocalCluster | undefined;
const open: Database[] = [];

test.before(
  loud("primary and replica", async () => {
    dir = await mkdtemp(join(tmpdir(), "paylane-read-replica-"));
    primary = new LocalCluster({ dataDir: join(dir, "primary"), port: await freePort(), runDir: dir });
    replica = new LocalCluster({ dataDir: join(dir, "replica"), port: await freePort(), runDir: dir });
    await primary.init();
    await primary.start();
    await replica.cloneFrom(primary);
    await replica.start();
  }),
);

test.after(async () => {
  for (const db of open) await db.close().catch(() => {});
  await replica?.stop().catch(() => {});
  await primary?.stop().catch(() => {});
  if (dir) await rm(dir, { recursive: true, force: true });
});

const hostOf = (c: LocalCluster) => `127.0.0.1:${c.port}`;

test("a multi-host URL is split into single-host URLs, keeping credentials and parameters", () => {
  const p = parsePgUrl("postgres://u:p%40ss@db1,db2:6543/app?sslmode=disable&target_session_attrs=read-write");
  assert.equal(
    p.hosts.map((h) => [h.label, h.url]),
    [
      ["db1:5432", "postgres://u:p%40ss@db1:5432/app?sslmode=disable"],
      ["db2:6543", "postgres://u:p%40ss@db2:6543/app?sslmode=disable"],
    ],
  );
  assert.is(p.targetSessionAttrs, "read-write");
  assert.is(parsePgUrl("postgres://h/db").explicitAttrs, false);
  // No host in the URL (node-postgres' defaults: PGHOST, a host parameter), or one host: kept as written.
  assert.equal(parsePgUrl("postgres://u@h:5433/db?options=-c%20x%3Dy").hosts, [
    { label: "h:5433", url: "postgres://u@h:5433/db?options=-c%20x%3Dy" },
  ]);
  assert.equal(parsePgUrl("postgres:///db?host=/var/run/postgresql").hosts, [
    { label: "(default host)", url: "postgres:///db?host=/var/run/postgresql" },
  ]);
  assert.throws(() => parsePgUrl("postgres://h1,/db"), /host "": expected host or host:port/);
  assert.throws(() => parsePgUrl("postgres://h/db?target_session_attrs=writable"), /expected one of any, read-write/);
  assert.throws(() => parsePgUrl("mysql://h/db"), /expected postgres:\/\//);
});

test("read-write finds the primary wherever it is listed; read-only and standby find the replica", async () => {
  const p = primary!;
  const r = replica!;
  const both = (order: LocalCluster[], attrs: string) =>
    `postgres://postgres@${order.map(hostOf).join(",")}/postgres?target_session_attrs=${attrs}`;
  for (const [url, expected] of [
    [both([r, p], "read-write"), false],
    [both([p, r], "read-write"), false],
    [both([p, r], "standby"), true],
    [both([p, r], "prefer-standby"), true],
    [both([r, p], "primary"), false],
    [both([p, r], "read-only"), true],
  ] as const) {
    const chosen: string[] = [];
    const db = await openPg({ url, schema: "public", onHostChosen: (h) => chosen.push(h) }).catch((err: Error) => err);
    if (db instanceof Error) {
      // A standby refuses CREATE SCHEMA: opening on a replica is for the reader, not openPg.
      assert.ok(expected, `${url}: ${db.message}`);
      assert.match(db.message, /read-only transaction/);
      continue;
    }
    open.push(db);
    const { rows } = await db.query<{ standby: boolean }>("SELECT pg_is_in_recovery() AS standby");
    assert.is(rows[0]!.standby, expected, url);
    assert.equal(chosen, [hostOf(expected ? r : p)]);
  }
});

test("a dead first host is skipped; no fitting host is one clear error", async () => {
  const dead = await freePort();
  const db = await openPg({
    url: `postgres://postgres@127.0.0.1:${dead},${hostOf(primary!)}/postgres?target_session_attrs=read-write`,
    schema: "public",
  });
  open.push(db);
  assert.equal((await db.query<{ one: number }>("SELECT 1 AS one")).rows, [{ one: 1 }]);
  try {
    await openPg({
      url: `postgres://postgres@127.0.0.1:${dead},${hostOf(replica!)}/postgres?target_session_attrs=read-write`,
      schema: "public",
    });
    assert.unreachable("no read-write host");
  } catch (err) {
    assert.match(
      (err as Error).message,
      new RegExp(
        `^cannot connect to DATABASE_URL: no host of DATABASE_URL fits target_session_attrs=read-write \\(127\\.0\\.0\\.1:${dead}: .*; ${hostOf(replica!).replaceAll(".", "\\.")}: in recovery \\(a standby\\)\\)$`,
      ),
    );
  }
});

test("DATABASE_READ_URL: reads on the replica, on the primary while it is down, back on the replica after", async () => {
  const p = await openPg({ url: primary!.url(), schema: "public" });
  open.push(p);
  let now = 0;
  const reader = openPgReader({
    url: replica!.url(),
    schema: "public",
    primary: p,
    retryAfterMs: 1000,
    now: () => now,
  });
  open.push(reader);
  const standby = async () =>
    (await reader.query<{ standby: boolean }>("SELECT pg_is_in_recovery() AS standby")).rows[0]!.standby;
  assert.is(await standby(), true, "read on the replica");
  // Writes and transactions are the primary's.
  await reader.transaction(async (tx) => {
    const { rows } = await tx.query<{ standby: boolean }>("SELECT pg_is_in_recovery() AS standby");
    assert.is(rows[0]!.standby, false);
  });
  // A wrong query is the caller's error, not a reason to fall back.
  try {
    await reader.query("SELECT * FROM no_such_table");
    assert.unreachable();
  } catch (err) {
    assert.match((err as Error).message, /no_such_table/);
  }
  await replica!.stop();
  assert.is(await standby(), false, "read on the primary while the replica is down");
  assert.is(reader.replicaDownSince, 0);
  await replica!.start();
  assert.is(await standby(), false, "the replica is tried again only after retryAfterMs");
  now += 1000;
  assert.is(await standby(), true, "back on the replica");
  assert.is(reader.replicaDownSince, undefined);
});

test("the check-in list is read through DATABASE_READ_URL's replica, and still answers with the replica down", async () => {
  const p = await openPg({ url: primary!.url(), schema: "paylane" });
  open.push(p);
  await migrate(p);
  await seedSite(p, { id: "rr", name: "Read replica", timezone: "UTC" });
  // Committed with remote_apply: the commit returns once the replica has replayed it, so the replica's list has it.
  await p.query("ALTER SYSTEM SET synchronous_standby_names = 'replica'");
  await p.query("SELECT pg_reload_conf()");
  await p.transaction(async (tx) => {
    await tx.query("SET LOCAL synchronous_commit = remote_apply");
    await tx.query(
      `INSERT INTO inbox (site_id, device_id, seq, entry_id, kind, outcome, at, body, received_at)
       VALUES ('rr', 'k1', 1, gen_random_uuid()::text, 'checkin', 'applied', now(), $1, now())`,
      [
        JSON.stringify({
          memberId: "m-ada",
          credential: { type: "card", uid: "04A2B3C4" },
          replicaVersion: 1,
          offline: false,
        }),
      ],
    );
  });
  await p.query("ALTER SYSTEM RESET synchronous_standby_names");
  await p.query("SELECT pg_reload_conf()");
  const reader = openPgReader({ url: replica!.url(), schema: "paylane", primary: p, retryAfterMs: 60_000 });
  open.push(reader);
  /** Where each query of the API's read side went: the replica (in recovery) or the primary. */
  const servedBy: boolean[] = [];
  const readDb: Database = {
    ...reader,
    async query(sql, params) {
      const result = await reader.query(sql, params);
      const { rows } = await reader.query<{ standby: boolean }>("SELECT pg_is_in_recovery() AS standby");
      servedBy.push(rows[0]!.standby);
      return result as never;
    },
  };
  const secret = "read-replica-test-secret-of-32-characters";
  const app = createApi({
    db: p,
    readDb,
    presence: new MemoryPresence(),
    registry: () => new Registry({ version: 1, devices: [], services: [] }),
    metrics: new MetricsRegistry(),
    health: async () => ({ status: "ok" }),
    jwtSecret: secret,
  });
  const token = await mintOperatorToken(secret, { sub: "ops", role: "viewer", sites: ["rr"] });
  const list = async () => {
    const res = await app.request("/api/v1/checkins?site=rr", { headers: { authorization: `Bearer ${token}` } });
    assert.is(res.status, 200);
    return ((await res.json()) as { items: { memberId: string }[] }).items.map((i) => i.memberId);
  };
  assert.equal(await list(), ["m-ada"]);
  assert.ok(servedBy.length > 0 && servedBy.every((standby) => standby), `served by ${servedBy}`);
  servedBy.length = 0;
  await replica!.stop();
  assert.equal(await list(), ["m-ada"], "the primary answers while the replica is down");
  assert.ok(servedBy.length > 0 && servedBy.every((standby) => !standby), `served by ${servedBy}`);
  await replica!.start();
});

test.run();
