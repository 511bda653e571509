/** Replica pulls: a cloud that keeps failing is left alone by a circuit breaker, and the replica is kept as it was. */
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConstantBackoff } from "cockatiel";
import { pino } from "pino";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { FakeTimers } from "../../test/support/fake-timers.ts";
import { Signal } from "../../test/support/signal.ts";
import { CloudClient } from "../src/cloud/cloud-client.ts";
import { Replica } from "../src/replica.ts";
import { ReplicaSync } from "../src/replica-sync.ts";

test("after 5 failed pulls the circuit opens: no more requests, a clear error, the replica untouched", async () => {
  const root = await mkdtemp(join(tmpdir(), "paylane-sync-"));
  let requests = 0;
  const server = createServer((_req, res) => {
    requests++;
    res.writeHead(503).end("down");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const replica = await Replica.open(join(root, "replica.db"));
  const member = { id: "m-ada", name: "Ada", cardUid: "04A2B3C4", code: null, status: "active" as const };
  await replica.replace({ site: "s1", version: 3, timezone: "UTC", siteName: "Venue", members: [member] }, new Date());
  const timers = new FakeTimers();
  const cloud = new CloudClient({
    address: { site: "s1", device: "k1" },
    secret: "replica-sync-secret-0123",
    cloudUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    timers,
    pullBackoff: new ConstantBackoff(0), // retries at once: the test never waits on the wall clock
  });
  const sync = new ReplicaSync({
    cloud,
    replica,
    logger: pino({ level: "silent" }),
    timers,
    now: timers.now,
    refreshMs: 60_000,
  });
  try {
    for (let i = 0; i < 5; i++) await sync.syncNow();
    assert.is(requests, 15, "each failed pull: one try and two retries");
    assert.match(sync.lastError ?? "", /503/);
    await sync.syncNow();
    assert.is(requests, 15, "the open circuit sends nothing");
    assert.match(sync.lastError ?? "", /circuit open/);
    assert.equal((await replica.info()).version, 3, "the kiosk keeps deciding from what it has");
    assert.ok(await replica.byCard("04A2B3C4"));
  } finally {
    sync.stop();
    await replica.close();
    await new Promise((resolve) => server.close(resolve));
    await rm(root, { recursive: true, force: true });
  }
});

test("syncNow during a pull waits for a pull that starts after it: a change made meanwhile reaches the replica", async () => {
  const root = await mkdtemp(join(tmpdir(), "paylane-sync-"));
  const ada = { id: "m-ada", name: "Ada", cardUid: "04A2B3C4", code: null, status: "active" as const };
  // The cloud's member list; each answer is what it held when the request arrived.
  let cloudMembers: Array<Omit<typeof ada, "status"> & { status: "active" | "revoked" }> = [ada];
  let version = 1;
  const arrived: number[] = [];
  let releaseFirst!: () => void;
  const firstHeld = new Promise<void>((resolve) => {
    releaseFirst = resolve;
  });
  const signal = new Signal();
  const server = createServer((_req, res) => {
    const body = JSON.stringify({ site: "s1", version, timezone: "UTC", siteName: "Venue", members: cloudMembers });
    arrived.push(version);
    signal.notify();
    const answer = () => res.writeHead(200, { "content-type": "application/json" }).end(body);
    if (arrived.length === 1) void firstHeld.then(answer);
    else answer();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const replica = await Replica.open(join(root, "replica.db"));
  const timers = new FakeTimers();
  const sync = new ReplicaSync({
    cloud: new CloudClient({
      address: { site: "s1", device: "k1" },
      secret: "replica-sync-secret-0123",
      cloudUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      timers,
      pullBackoff: new ConstantBackoff(0),
    }),
    replica,
    logger: pino({ level: "silent" }),
    timers,
    now: timers.now,
    refreshMs: 60_000,
  });
  try {
    sync.start(); // the daemon's first pull: read by the cloud, its answer still on the way
    await signal.until(() => arrived.length === 1, "the first pull at the cloud");
    // meanwhile ops revoke Ada's card, and the caller asks for a sync to learn it
    cloudMembers = [{ ...ada, status: "revoked" }];
    version = 2;
    const synced = sync.syncNow();
    releaseFirst();
    await synced;
    assert.equal(arrived, [1, 2], "a second pull, after the change");
    assert.is((await replica.info()).version, 2);
    assert.is((await replica.byCard("04A2B3C4"))?.status, "revoked");
    // callers during one pull share the one that follows it
    const [a, b] = [sync.syncNow(), sync.syncNow()];
    const c = sync.syncNow();
    await Promise.all([a, b, c]);
    assert.is(arrived.length, 4, "one pull running, one queued for the three callers");
  } finally {
    await sync.stop();
    await replica.close();
    await new Promise((resolve) => server.close(resolve));
    await rm(root, { recursive: true, force: true });
  }
});

test.run();
