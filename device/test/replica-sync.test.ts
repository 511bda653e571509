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

test.run();
