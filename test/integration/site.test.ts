/**
 * The walking skeleton end to end, on every backend combination:
 * Postgres and PGlite, Redis and the in-process store, aedes and Mosquitto.
 */
import { REPLAY_FROM, topics } from "@paylane/protocol";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { loud } from "../support/hooks.ts";
import { batch, checkinEntry, record } from "../support/probe.ts";
import { BACKEND_MATRIX, describe, TestSite } from "../support/site.ts";

for (const backends of BACKEND_MATRIX) {
  const it = suite<{ site: TestSite }>(describe(backends));
  let site: TestSite;

  it.before(
    loud(`${describe(backends)} site setup`, async () => {
      site = new TestSite({ ...backends, probes: ["probe1", "probe2", "probe3", "probe4"] });
      await site.start();
    }),
  );
  it.after(async () => {
    await site?.stop();
  });

  it("a known card is welcomed, committed once in Postgres, acked and listed", async () => {
    const k1 = site.kiosk("k1");
    const result = await k1.tap("04A2B3C4");
    assert.is(result.outcome, "welcome");
    assert.is(result.message, "Welcome, Ada Lovelace");
    await site.signal.until(async () => (await k1.journal.stats()).backlog === 0, "k1 journal acked");
    assert.is(
      await site.count("SELECT count(*) AS n FROM checkins WHERE site_id = $1 AND member_id = 'm-ada'", [site.site]),
      1,
    );

    const checkins = (await site.operator("GET", `/api/v1/checkins?site=${site.site}`)).body as {
      items: Array<Record<string, unknown>>;
    };
    assert.is(checkins.items.length, 1);
    assert.is(checkins.items[0]!.memberName, "Ada Lovelace");
    assert.is(checkins.items[0]!.device, "k1");
    assert.is(checkins.items[0]!.seq, result.seq);

    const devices = (await site.operator("GET", `/api/v1/devices?site=${site.site}`)).body as {
      items: Array<Record<string, unknown>>;
    };
    const k1Row = devices.items.find((d) => d.device === "k1")!;
    assert.is(k1Row.state, "online");
    assert.ok(k1Row.lastSeen, "last-seen is recorded");
    assert.is(k1Row.ackedSeq, result.seq);
  });

  it("an unknown card, a second tap the same day and a blocked card are answered locally", async () => {
    const k1 = site.kiosk("k1");
    const before = (await k1.journal.stats()).lastSeq;
    assert.equal(
      [(await k1.tap("04FFFFFF")).message, (await k1.tap("04A2B3C4")).message, (await k1.tap("04DEAD00")).outcome],
      ["Card not recognised", "Already checked in today", "refused"],
    );
    assert.is((await k1.journal.stats()).lastSeq, before, "nothing journaled for refusals");
  });

  it("the same batch twice, a DUP redelivery after a dropped connection, and an overlapping replay: one row each", async () => {
    const a = site.address("probe1");
    const entries = [checkinEntry(1, "m-ada"), checkinEntry(2, "m-grace"), checkinEntry(3, "m-alan")];
    const payload = batch("probe1", entries);
    // First connection: publish, then drop the TCP connection without waiting for the PUBACK.
    const first = await site.rawDevice("probe1");
    first.publish(topics.events(a), payload, { qos: 1 });
    first.stream.destroy();
    // Reconnect with the same client id and redeliver with DUP, as a client does for an unacknowledged QoS 1 publish.
    const probe = await site.rawDevice("probe1");
    const acks = await record<{ upTo: number }>(probe, topics.ack(a), site.signal);
    await probe.publishAsync(topics.events(a), payload, { qos: 1, dup: true });
    await probe.publishAsync(topics.events(a), payload, { qos: 1 });
    await site.signal.until(() => acks.some((x) => x.upTo === 3), "ack upTo 3");
    // A replay overlapping committed entries plus one new one.
    await probe.publishAsync(
      topics.events(a),
      batch("probe1", [entries[1], entries[2], checkinEntry(4, "m-katherine")]),
      {
        qos: 1,
      },
    );
    await site.signal.until(() => acks.some((x) => x.upTo === 4), "ack upTo 4");
    const q = "SELECT count(*) AS n FROM %s WHERE site_id = $1 AND device_id = 'probe1'";
    assert.is(await site.count(q.replace("%s", "inbox"), [site.site]), 4);
    assert.is(await site.count(q.replace("%s", "checkins"), [site.site]), 4);
    assert.ok(
      acks.every((x, i) => i === 0 || x.upTo >= acks[i - 1]!.upTo),
      "acks never go backwards",
    );
  });

  it("a gap (seq 3 missing) is asked for with cmd/replay-from after a bounded wait, then filled and acked", async () => {
    const probe = await site.rawDevice("probe4");
    const a = site.address("probe4");
    const acks = await record<{ upTo: number }>(probe, topics.ack(a), site.signal);
    const replays = await record<{ id: string; args: { from: number } }>(
      probe,
      topics.cmd(a, REPLAY_FROM),
      site.signal,
    );
    const send = (...seqs: number[]) =>
      probe.publishAsync(
        topics.events(a),
        batch(
          "probe4",
          seqs.map((s) => checkinEntry(s, `m-gap-${s}`)),
        ),
        { qos: 1 },
      );

    await send(1, 2);
    await send(4, 5);
    await site.signal.until(() => acks.some((x) => x.upTo === 2), "the ack stops before the gap");
    await site.signal.until(() => replays.length >= 1, "the cloud asks for a replay");
    assert.is(replays[0]!.args.from, 3, "from the first missing seq");
    assert.not.ok(
      acks.some((x) => x.upTo > 2),
      "nothing past the gap is acked",
    );

    await send(3, 4, 5);
    await site.signal.until(() => acks.some((x) => x.upTo === 5), "the replay fills the gap: ack 5");
    assert.is(
      await site.count("SELECT count(*) AS n FROM inbox WHERE site_id = $1 AND device_id = 'probe4'", [site.site]),
      5,
    );
    const metrics = await site.cloudMetrics();
    assert.match(metrics, /paylane_bridge_gaps_detected_total [1-9]/);
    assert.match(metrics, /paylane_bridge_replays_requested_total [1-9]/);
    assert.match(
      metrics,
      /paylane_bridge_entries_total\{outcome="duplicate"\} [1-9]/,
      "the resent 4 and 5 were absorbed",
    );
  });

  it("bad input is refused with a reason and never blocks the valid entries around it", async () => {
    const probe = await site.rawDevice("probe2");
    const a = site.address("probe2");
    const acks = await record<{ upTo: number }>(probe, topics.ack(a), site.signal);
    const errors = await record<{ code: string; reason: string; seq?: number }>(probe, topics.errors(a), site.signal);

    await probe.publishAsync(topics.events(a), "{not json", { qos: 1 });
    const bad = { ...checkinEntry(2, "m-grace"), at: "yesterday" };
    const unknownKind = { ...checkinEntry(3, "m-alan"), kind: "teleport" };
    const badBody = { ...checkinEntry(4, "m-alan"), body: { memberId: 42 } };
    await probe.publishAsync(
      topics.events(a),
      batch("probe2", [checkinEntry(1, "m-ada"), bad, unknownKind, badBody, checkinEntry(5, "m-katherine")]),
      { qos: 1 },
    );
    await site.signal.until(() => acks.some((x) => x.upTo === 5), "ack upTo 5 across the refused entries");
    await site.signal.until(() => errors.length >= 4, "four error reports");

    const byCode = Object.fromEntries(errors.map((e) => [e.code, e]));
    assert.match(byCode["malformed-json"]!.reason, /malformed JSON/);
    assert.is(byCode["invalid-entry"]!.seq, 2);
    assert.match(byCode["invalid-entry"]!.reason, /entries\[1\]\.at/);
    assert.is(byCode["unknown-kind"]!.seq, 3);
    assert.match(byCode["unknown-kind"]!.reason, /"teleport"/);
    assert.is(byCode["invalid-body"]!.seq, 4);
    assert.match(byCode["invalid-body"]!.reason, /memberId/);

    const members = await site.db.query<{ member_id: string }>(
      "SELECT member_id FROM checkins WHERE site_id = $1 AND device_id = 'probe2' ORDER BY seq",
      [site.site],
    );
    assert.equal(
      members.rows.map((r) => r.member_id),
      ["m-ada", "m-katherine"],
    );
    assert.is(
      await site.count("SELECT count(*) AS n FROM quarantine WHERE site_id = $1 AND device_id = 'probe2'", [site.site]),
      4,
    );
  });

  it("a batch for another device's topic is refused (the broker's ACL where it has one, the bridge on an open broker)", async () => {
    const probe = await site.rawDevice("probe3");
    const k2 = site.address("k2");
    const forged = checkinEntry(999, "m-ada");
    const closed = new Promise<void>((resolve) => probe.once("close", () => resolve()));
    probe.publish(topics.events(k2), batch("probe3", [forged]), { qos: 1 });
    if (backends.broker === "aedes") {
      // MQTT 3.1.1 has no negative PUBACK: aedes refuses by closing the connection.
      await closed;
    }
    // A positive control through the same path proves the bridge had its chance to see the forgery.
    const r = await site.kiosk("k2").tap("04C0FFEE");
    assert.is(r.outcome, "welcome");
    await site.signal.until(async () => (await site.kiosk("k2").journal.stats()).backlog === 0, "k2 acked");
    assert.is(await site.count("SELECT count(*) AS n FROM inbox WHERE entry_id = $1", [forged.id]), 0);
    assert.is(
      await site.count("SELECT count(*) AS n FROM checkins WHERE site_id = $1 AND device_id = 'k2'", [site.site]),
      1,
    );
    // Mosquitto with the registry's ACL drops it silently (3.1.1): nothing reaches the bridge to quarantine.
    if (backends.broker === "mosquitto" || backends.broker === "mosquitto-private") {
      await site.signal.until(
        async () =>
          (await site.count("SELECT count(*) AS n FROM quarantine WHERE site_id = $1 AND code = 'wrong-device'", [
            site.site,
          ])) === 1,
        "wrong-device quarantined",
      );
    }
  });

  it("with the cloud down the kiosk still answers, shows offline, and catches up when it returns", async () => {
    const k1 = site.kiosk("k1");
    await site.stopCloud("kill");
    await site.signal.until(async () => !(await k1.state()).online, "k1 sees the cloud offline");
    const health = (await (await fetch(`http://127.0.0.1:${k1.port}/healthz`)).json()) as Record<string, unknown>;
    assert.equal([health.status, health.broker, health.cloud], ["degraded", true, false], "kiosk health says why");
    const r = await k1.tap("04B1C2D3");
    assert.is(r.outcome, "welcome");
    assert.is(r.message, "Welcome, Grace Hopper");
    assert.is((await k1.state()).backlog, 1);
    await site.startCloud();
    await site.signal.until(async () => {
      const s = await k1.state();
      return s.online && s.backlog === 0;
    }, "k1 back online with its backlog drained");
    const rows = await site.db.query<{ offline: boolean }>(
      "SELECT offline FROM checkins WHERE site_id = $1 AND device_id = 'k1' AND member_id = 'm-grace'",
      [site.site],
    );
    assert.equal(rows.rows, [{ offline: true }], "exactly one row, recorded as decided offline");
  });

  it.run();
}
