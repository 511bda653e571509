/**
 * One contract suite for both presence stores: the in-process map used by
 * `npm start` and Redis (real, at TEST_REDIS_URL or redis://127.0.0.1:6379,
 * under a key prefix of its own that is deleted at the end).
 */
import { randomBytes } from "node:crypto";
import type { DeviceAddress } from "@paylane/protocol";
import { Redis } from "ioredis";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { dropRedisPrefix } from "../../test/support/site.ts";
import { MemoryPresence } from "../src/presence/memory-presence.ts";
import type { PresenceStore } from "../src/presence/presence-store.ts";
import { RedisPresence } from "../src/presence/redis-presence.ts";

const REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
const PREFIX = `test:presence:${randomBytes(6).toString("hex")}:`;

const t = (minute: number) => new Date(Date.UTC(2024, 4, 1, 10, minute, 0));
const iso = (minute: number) => t(minute).toISOString();

interface Backend {
  name: string;
  open(): Promise<PresenceStore>;
  cleanUp(): Promise<void>;
}

let deviceSeq = 0;
/** A device no other test touched: the Redis backend shares one prefix per run. */
const freshDevice = (site = "s1"): DeviceAddress => ({ site, device: `k${++deviceSeq}` });

function presenceContract(backend: Backend): void {
  const test = suite<{ store: PresenceStore }>(`presence contract: ${backend.name}`, {} as { store: PresenceStore });
  test.before(async (ctx) => {
    ctx.store = await backend.open();
  });
  test.after(async (ctx) => {
    await ctx.store.close();
    await backend.cleanUp();
  });

  test("an unknown device is state unknown with nothing recorded", async ({ store }) => {
    const d = freshDevice();
    assert.equal(await store.get([d]), [
      { ...d, state: "unknown", lastSeen: null, statusAt: null, version: null, bootedAt: null, payments: null },
    ]);
    assert.equal(await store.get([]), []);
  });

  test("setStatus records state, version and bootedAt, and counts as seen", async ({ store }) => {
    const d = freshDevice();
    await store.setStatus(d, { state: "online", at: t(1), version: "1.2.3", bootedAt: iso(0) });
    assert.equal(await store.get([d]), [
      { ...d, state: "online", lastSeen: iso(1), statusAt: iso(1), version: "1.2.3", bootedAt: iso(0), payments: null },
    ]);
  });

  test("going offline keeps the last known version and bootedAt", async ({ store }) => {
    const d = freshDevice();
    await store.setStatus(d, { state: "online", at: t(1), version: "1.2.3", bootedAt: iso(0) });
    await store.setStatus(d, { state: "offline", at: t(5) });
    assert.equal(await store.get([d]), [
      {
        ...d,
        state: "offline",
        lastSeen: iso(5),
        statusAt: iso(5),
        version: "1.2.3",
        bootedAt: iso(0),
        payments: null,
      },
    ]);
  });

  test("touch moves lastSeen forward without changing the state", async ({ store }) => {
    const d = freshDevice();
    await store.setStatus(d, { state: "online", at: t(1), version: "1", bootedAt: iso(0) });
    await store.touch(d, t(7));
    const [p] = await store.get([d]);
    assert.is(p!.state, "online");
    assert.is(p!.statusAt, iso(1));
    assert.is(p!.lastSeen, iso(7));
  });

  test("touch of a device with no status yet records lastSeen", async ({ store }) => {
    const d = freshDevice();
    await store.touch(d, t(3));
    const [p] = await store.get([d]);
    assert.is(p!.lastSeen, iso(3));
    assert.is(p!.state, "unknown");
  });

  test("lastSeen never moves backwards under an older touch", async ({ store }) => {
    const d = freshDevice();
    await store.touch(d, t(10));
    await store.touch(d, t(4));
    assert.is((await store.get([d]))[0]!.lastSeen, iso(10));
    await store.touch(d, t(11));
    assert.is((await store.get([d]))[0]!.lastSeen, iso(11));
  });

  // Regression: MemoryPresence.setStatus once moved lastSeen back to an older status time,
  // disagreeing with Redis (touchmax). Both backends pass one contract.
  test("lastSeen never moves backwards under an older status", async ({ store }) => {
    const d = freshDevice();
    await store.touch(d, t(10));
    await store.setStatus(d, { state: "offline", at: t(4) });
    const [p] = await store.get([d]);
    assert.is(p!.state, "offline");
    assert.is(p!.lastSeen, iso(10));
  });

  test("each device is its own record, and get answers in the order asked", async ({ store }) => {
    const a = freshDevice("s1");
    const b = { site: "s2", device: a.device };
    const unknown = freshDevice();
    await store.setStatus(a, { state: "online", at: t(1), version: "a" });
    await store.setStatus(b, { state: "offline", at: t(2) });
    const got = await store.get([b, unknown, a]);
    assert.equal(
      got.map((p) => [p.site, p.device, p.state, p.version]),
      [
        ["s2", a.device, "offline", null],
        ["s1", unknown.device, "unknown", null],
        ["s1", a.device, "online", "a"],
      ],
    );
  });

  test("a record handed out is a copy: changing it changes nothing stored", async ({ store }) => {
    const d = freshDevice();
    await store.setStatus(d, { state: "online", at: t(1) });
    const [p] = await store.get([d]);
    p!.state = "offline";
    assert.is((await store.get([d]))[0]!.state, "online");
  });

  test("exposure reports: the newest one is kept, whatever order they arrive in", async ({ store }) => {
    const d = freshDevice();
    const report = (offlineExposure: number) => ({ currency: "EUR", offlineExposure, offlinePayments: 1, cap: 20_000 });
    await store.setExposure(d, report(500), t(5));
    await store.setExposure(d, report(100), t(3));
    assert.equal((await store.get([d]))[0]!.payments, { ...report(500), at: iso(5) });
    await store.setExposure(d, report(0), t(6));
    assert.equal((await store.get([d]))[0]!.payments, { ...report(0), at: iso(6) });
  });

  // Sessions (docs/status.md): the birth in force decides which offline counts.
  test("a Will older than the birth in force is ignored: the device stays online", async ({ store }) => {
    const d = freshDevice();
    await store.setStatus(d, { state: "online", at: t(1), version: "1", bootedAt: iso(0), session: 7 });
    await store.setStatus(d, { state: "online", at: t(2), version: "1", bootedAt: iso(0), session: 8 });
    assert.is(await store.setStatus(d, { state: "offline", at: t(3), session: 7 }), false);
    const [p] = await store.get([d]);
    assert.is(p!.state, "online");
    assert.is(p!.statusAt, iso(2));
    assert.is(p!.lastSeen, iso(2), "a stale Will is not the device speaking");
  });

  test("the Will (or goodbye) of the session in force takes the device offline", async ({ store }) => {
    const d = freshDevice();
    await store.setStatus(d, { state: "online", at: t(1), session: 8 });
    assert.is(await store.setStatus(d, { state: "offline", at: t(4), session: 8 }), true);
    assert.is((await store.get([d]))[0]!.state, "offline");
    // and a late copy of an even older one changes nothing afterwards
    assert.is(await store.setStatus(d, { state: "offline", at: t(5), session: 3 }), false);
    assert.is((await store.get([d]))[0]!.statusAt, iso(4));
  });

  test("an offline of a newer session than the birth seen applies (that birth was missed)", async ({ store }) => {
    const d = freshDevice();
    await store.setStatus(d, { state: "online", at: t(1), session: 8 });
    assert.is(await store.setStatus(d, { state: "offline", at: t(2), session: 9 }), true);
    assert.is((await store.get([d]))[0]!.state, "offline");
  });

  test("statuses without a session (older kiosks) behave as before", async ({ store }) => {
    const d = freshDevice();
    await store.setStatus(d, { state: "online", at: t(1), session: 8 });
    // an offline with no session always applies
    assert.is(await store.setStatus(d, { state: "offline", at: t(2) }), true);
    assert.is((await store.get([d]))[0]!.state, "offline");
    // a birth with no session (the kiosk was downgraded) clears the session in force
    await store.setStatus(d, { state: "online", at: t(3) });
    assert.is(await store.setStatus(d, { state: "offline", at: t(4), session: 2 }), true);
    assert.is((await store.get([d]))[0]!.state, "offline");
  });

  test("a birth always applies, whatever its session", async ({ store }) => {
    const d = freshDevice();
    await store.setStatus(d, { state: "online", at: t(1), session: 8 });
    await store.setStatus(d, { state: "offline", at: t(2), session: 8 });
    // a journal replaced after damage may count from lower: the device speaking now is in force
    assert.is(await store.setStatus(d, { state: "online", at: t(3), session: 5 }), true);
    assert.is(await store.setStatus(d, { state: "offline", at: t(4), session: 4 }), false);
    assert.is((await store.get([d]))[0]!.state, "online");
  });

  test("ping answers true while the store is reachable", async ({ store }) => {
    assert.is(await store.ping(), true);
  });

  test.run();
}

async function dropPrefix(): Promise<void> {
  await dropRedisPrefix(PREFIX);
  const redis = new Redis(REDIS_URL, { lazyConnect: true });
  try {
    await redis.connect();
    const [, left] = await redis.scan("0", "MATCH", `${PREFIX}*`, "COUNT", 500);
    if (left.length > 0) throw new Error(`presence test left keys behind: ${left.join(", ")}`);
  } finally {
    redis.disconnect();
  }
}

const backends: Backend[] = [
  { name: "memory", open: async () => new MemoryPresence(), cleanUp: async () => {} },
  {
    name: "redis",
    open: async () => {
      const store = new RedisPresence(REDIS_URL, PREFIX);
      await store.connect();
      return store;
    },
    cleanUp: dropPrefix,
  },
];

for (const backend of backends) {
  presenceContract(backend);
}
