/**
 * Ended sessions heard across instances (session-endings.ts): two `Sessions`
 * (two API instances) on one database, each hearing endings through its own
 * live feed's LISTEN, with a session cache that would otherwise believe a
 * live answer for a minute. And an instance that cannot hear them caches
 * nothing, so what it missed costs queries, never a revoked session accepted.
 */
import pino from "pino";
import { Registry as MetricsRegistry } from "prom-client";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { Database } from "../db/database.ts";
import { migrate } from "../db/migrate.ts";
import { openPglite } from "../db/pglite.ts";
import { DatabaseLiveFeed } from "../live/database-live-feed.ts";
import type { SessionRevocations } from "./session-endings.ts";
import { Sessions } from "./sessions.ts";
import { OperatorStore } from "./store.ts";

const SECRET = "a-test-secret-of-at-least-32-characters!";
const PASSWORD = "correct horse battery staple";
/** The cache would believe a live answer this long: longer than any test, so only an ending heard can undo it. */
const CACHE_MS = 60_000;
const logger = pino({ level: "silent" });

const it = suite("ended sessions heard by every instance");
let db: Database;
let store: OperatorStore;
const feeds: DatabaseLiveFeed[] = [];

it.before(async () => {
  db = await openPglite();
  await migrate(db);
  store = new OperatorStore({ db });
  await store.create({ username: "alice", password: PASSWORD, role: "operator" });
});
it.after(async () => {
  for (const feed of feeds) await feed.stop();
  await db.close();
});

function sessions(revocations?: SessionRevocations): Sessions {
  return new Sessions({ db, store, tokens: { secret: SECRET }, cacheMs: CACHE_MS, revocations });
}

async function instance(): Promise<Sessions> {
  const feed = new DatabaseLiveFeed({ db, logger, metrics: new MetricsRegistry() });
  await feed.start();
  feeds.push(feed);
  assert.ok(feed.hearing);
  return sessions(feed.sessions);
}

async function login(s: Sessions): Promise<string> {
  const account = await store.get("alice");
  return (await s.start(account!)).sessionId;
}

/** Polls `check` until it is true, for at most 2 s (a tenth of nothing a cache would forgive). */
async function soon(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = performance.now() + 2000;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`not within 2 s: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A revocation written behind every instance's back: no notification. */
const revokeSilently = (sid: string) =>
  db.query("UPDATE operator_sessions SET revoked_at = now(), reason = 'test' WHERE id = $1", [sid]);

it("a logout on one instance ends the session on another that had cached it live", async () => {
  const a = await instance();
  const b = await instance();
  const sid = await login(a);
  assert.ok(await b.isLive(sid), "b finds it live, and caches that for a minute");
  assert.ok(await a.logout({ sid }));
  await soon(async () => !(await b.isLive(sid)), "b refuses the session a ended");
});

it("a disabled account ends its sessions on every instance", async () => {
  const a = await instance();
  const b = await instance();
  const sid = await login(a);
  assert.ok(await a.isLive(sid));
  assert.ok(await b.isLive(sid));
  const { revoked } = await store.update("alice", { disabled: true });
  assert.is(revoked, 1);
  await soon(async () => !(await a.isLive(sid)) && !(await b.isLive(sid)), "both refuse it");
  await store.update("alice", { disabled: false });
});

it("an instance that cannot hear endings caches nothing; one that can believes its cache", async () => {
  const deaf = sessions({ hearing: false, onSessionsEnded: () => () => {} });
  const hearing = sessions({ hearing: true, onSessionsEnded: () => () => {} });
  const sid = await login(deaf);
  assert.ok(await deaf.isLive(sid));
  assert.ok(await hearing.isLive(sid));
  await revokeSilently(sid);
  assert.not.ok(await deaf.isLive(sid), "asked the database again");
  assert.ok(await hearing.isLive(sid), "the control: a cache that heard nothing still believes it");
});

it("an ending heard without names (a lost LISTEN, many at once) forgets every cached session", async () => {
  let tell: (sids: readonly string[] | null) => void = () => {};
  const s = sessions({
    hearing: true,
    onSessionsEnded: (listener) => {
      tell = listener;
      return () => {};
    },
  });
  const sid = await login(s);
  assert.ok(await s.isLive(sid));
  await revokeSilently(sid);
  assert.ok(await s.isLive(sid), "cached");
  tell(null);
  assert.not.ok(await s.isLive(sid));
});

it.run();
