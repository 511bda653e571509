/**
 * The fleet benchmark's harness, small (bench/fleet.bench.ts at 50 kiosks, so
 * the bench cannot rot): a gateway and a cloud in their own processes, 50
 * kiosks with their own credentials sending births, telemetry and check-ins;
 * every check-in is acked, the telemetry reaches the history, and after a
 * gateway restart every kiosk is back online with its current session, in the
 * cloud and in its retained status.
 */
import { openPg } from "@paylane/cloud";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { FleetSite, SITE } from "../../bench/fleet/harness.ts";
import { PG_URL } from "../support/site.ts";

const KIOSKS = 50;

test("50 kiosks: every check-in acked, telemetry stored, and all back online after a gateway restart", async () => {
  const site = new FleetSite({ maxKiosks: KIOSKS, workers: 1, databaseUrl: PG_URL });
  try {
    await site.start();
    const { connected, failed } = await site.connectUpTo(KIOSKS);
    assert.equal(failed, []);
    assert.is(connected, KIOSKS);

    // One step, compressed: telemetry every second, a check-in every 2 s per kiosk.
    await site.collect();
    site.load(1000, 2000);
    let sent = 0;
    const latencies: number[] = [];
    const poll = async (done: (pending: number) => boolean, what: string) => {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const s = await site.collect();
        sent += s.checkins;
        latencies.push(...s.latencies);
        if (done(s.pending)) return s.pending;
        if (Date.now() > deadline) throw new Error(`${what}: not within 30 s (sent ${sent}, pending ${s.pending})`);
        await new Promise((r) => setTimeout(r, 250));
      }
    };
    await poll(() => sent >= KIOSKS * 2, "two check-ins per kiosk sent");
    site.pause();
    const pending = await poll((p) => p === 0, "every check-in acked");
    assert.is(pending, 0);
    assert.is(latencies.length, sent, "one ack latency per check-in");

    // The cloud stored the telemetry of every kiosk.
    const db = await openPg({ url: PG_URL, schema: site.schema });
    try {
      const { rows } = await db.query<{ n: number }>(
        "SELECT count(DISTINCT device_id)::int AS n FROM device_telemetry WHERE site_id = $1",
        [SITE],
      );
      assert.is(rows[0]!.n, KIOSKS);
    } finally {
      await db.close();
    }

    const storm = await site.reconnectStorm(60_000);
    assert.equal(storm.retainedWrong, [], "retained statuses online with the current session");
    assert.equal(storm.presenceWrong, [], "the cloud's presence online");
    assert.ok(Number.isFinite(storm.presenceOnlineMs));
  } finally {
    await site.close();
  }
});

test.run();
