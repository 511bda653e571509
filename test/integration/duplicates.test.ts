/**
 * Issue 4: "Duplicates: the same entry delivered five times, including DUP
 * redeliveries and a replay overlapping acked entries: one row."
 *
 * A probe device (raw MQTT with a device's own credentials) delivers the same
 * entries in five messages, each waited on until the cloud has committed and
 * acked it, so every delivery really reaches the bridge:
 *
 *   1. plain: seqs 1-10;
 *   2. the connection drops and, reconnected, the device redelivers 1-10 with
 *      DUP set, as a client does with a QoS 1 publish it cannot know was
 *      committed [MQTT-4.4.0-1];
 *   3. a clean reconnect, then 1-10 again, plain;
 *   4. a replay of 5-15 overlapping the acked 1-10;
 *   5. one batch holding 5-10 and new 16-20 twice each.
 *
 * Seqs 5-10 arrive in all five messages (six times). Each (device, seq) must
 * be one inbox row and one check-in, under the entry's own id; every
 * delivery is acked (a device that lost an ack needs it again); and the
 * bridge's `paylane_bridge_entries_total{outcome="duplicate"}` counts exactly
 * the copies absorbed. The shared Mosquitto run is the real broker's DUP path.
 */
import type { Entry } from "@paylane/protocol";
import { topics } from "@paylane/protocol";
import type { MqttClient } from "mqtt";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { loud } from "../support/hooks.ts";
import { batch, checkinEntry, record } from "../support/probe.ts";
import { type Backends, describe, TestSite } from "../support/site.ts";

const CONFIGS: Backends[] = [
  { db: "pg", presence: "redis", broker: "aedes" },
  { db: "pglite", presence: "memory", broker: "mosquitto" },
  { db: "pg", presence: "memory", broker: "mosquitto-private" },
];

const PROBE = "probe";
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

for (const backends of CONFIGS) {
  const it = suite(`duplicates, ${describe(backends)}`);
  let site: TestSite;

  it.before(
    loud(`${describe(backends)} site setup`, async () => {
      site = new TestSite({ ...backends, kiosks: [], probes: [PROBE] });
      await site.start();
    }),
  );
  it.after(
    loud(`${describe(backends)} site teardown`, async () => {
      await site?.stop();
    }),
  );

  it("the same entries delivered five times (DUP redelivery, reconnect, overlapping replay, twice in one batch): one row each", async () => {
    const a = site.address(PROBE);
    // seq -> the one entry the device journaled under it; every delivery resends this very entry
    const journal = new Map<number, Entry>(range(1, 20).map((s) => [s, checkinEntry(s, `m-dup-${s}`)]));
    const payload = (seqs: number[]) =>
      batch(
        PROBE,
        seqs.map((s) => journal.get(s)!),
      );
    // Acks watched from a connection of their own, so the probe's reconnects miss none.
    const watcher = await site.opsClient();
    const acks = await record<{ upTo: number }>(watcher, topics.ack(a), site.signal);
    const before = await site.bridgeEntries();
    let sent = 0;

    const deliver = async (client: MqttClient, seqs: number[], dup = false) => {
      const expected = acks.length + 1;
      await client.publishAsync(topics.events(a), payload(seqs), { qos: 1, dup });
      sent += seqs.length;
      await site.signal.until(() => acks.length >= expected, `the cloud's ack after delivery ${expected}`);
    };

    // 1. plain
    const first = await site.rawDevice(PROBE);
    await deliver(first, range(1, 10));
    // 2. the connection drops; reconnected, the device cannot know 1-10 were committed and redelivers them with DUP
    first.stream.destroy();
    const second = await site.rawDevice(PROBE);
    await deliver(second, range(1, 10), true);
    // 3. a clean disconnect and a fresh connection, then the same batch again
    await second.endAsync();
    const third = await site.rawDevice(PROBE);
    await deliver(third, range(1, 10));
    // 4. a replay overlapping the acked 1-10
    await deliver(third, range(5, 15));
    // 5. old and new entries, each twice in one batch
    await deliver(third, [...range(5, 10), ...range(16, 20), ...range(5, 10), ...range(16, 20)]);

    assert.equal(
      acks.map((x) => x.upTo),
      [10, 10, 10, 15, 20],
      "every delivery acked, duplicates included, never backwards",
    );
    const { rows } = await site.db.query<{ seq: string | number; entry_id: string; copies: number }>(
      "SELECT seq, entry_id, count(*) OVER (PARTITION BY seq)::int AS copies FROM inbox WHERE site_id = $1 AND device_id = $2 ORDER BY seq",
      [site.site, PROBE],
    );
    assert.equal(
      rows.map((r) => [Number(r.seq), r.entry_id, r.copies]),
      range(1, 20).map((s) => [s, journal.get(s)!.id, 1]),
      "one inbox row per seq, holding the entry's own id",
    );
    const checkins = await site.db.query<{ n: number; distinct_seqs: number }>(
      "SELECT count(*)::int AS n, count(DISTINCT seq)::int AS distinct_seqs FROM checkins WHERE site_id = $1 AND device_id = $2",
      [site.site, PROBE],
    );
    assert.equal(checkins.rows[0], { n: 20, distinct_seqs: 20 }, "one check-in per seq");
    assert.is(
      await site.count("SELECT acked_seq AS n FROM device_streams WHERE site_id = $1 AND device_id = $2", [
        site.site,
        PROBE,
      ]),
      20,
      "the cloud's high-water mark covers every entry",
    );

    const after = await site.bridgeEntries();
    const applied = after.applied - before.applied;
    const duplicates = after.duplicate - before.duplicate;
    assert.is(applied, 20, "each entry applied once");
    assert.is(duplicates, sent - 20, "every other copy counted as an absorbed duplicate");
    console.log(
      `  duplicates (${describe(backends)}): ${sent} copies of 20 entries in 5 messages, ` +
        `${rows.length} inbox rows, ${checkins.rows[0]!.n} check-ins, ${duplicates} absorbed, acks ${acks.map((x) => x.upTo).join(",")}`,
    );
  });

  it.run();
}
