/**
 * The committed-events feed (issue 14): once the cloud commits a device's
 * entries it tells viewers on `paylane/v1/cloud/events/{site}/{device}` —
 * seq, id, kind and time, never a body (member ids, card UIDs) — and a
 * redelivered batch (duplicates) is not announced twice.
 */
import { decode, type EventsMeta, EventsMetaSchema, topics } from "@paylane/protocol";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { loud } from "../../test/support/hooks.ts";
import { batch, checkinEntry } from "../../test/support/probe.ts";
import { TestSite } from "../../test/support/site.ts";

const it = suite("committed-events feed");
let site: TestSite;

it.before(
  loud("site setup", async () => {
    site = new TestSite({ db: "pglite", presence: "memory", broker: "aedes", kiosks: [], probes: ["probe"] });
    await site.start();
  }),
);
it.after(async () => {
  await site?.stop();
});

it("a viewer sees what was committed, without bodies, once", async () => {
  const viewer = await site.operatorClient("viewer");
  const feed: Array<{ raw: string; meta: EventsMeta }> = [];
  viewer.on("message", (_t, payload) => {
    const meta = decode(EventsMetaSchema, payload);
    if (meta.ok) feed.push({ raw: payload.toString(), meta: meta.value });
    site.signal.notify();
  });
  await viewer.subscribeAsync(topics.fleetEventsMeta(site.site), { qos: 1 });

  const probe = await site.rawDevice("probe");
  const entries = [checkinEntry(1, "m-ada"), checkinEntry(2, "m-grace")];
  await probe.publishAsync(topics.events(site.address("probe")), batch("probe", entries), { qos: 1 });
  await site.signal.until(() => feed.length >= 1, "the feed message");
  const { meta, raw } = feed[0]!;
  assert.is(meta.site, site.site);
  assert.is(meta.device, "probe");
  assert.equal(
    meta.entries.map((e) => [e.seq, e.id, e.kind, e.at]),
    entries.map((e) => [e.seq, e.id, e.kind, e.at]),
  );
  assert.not.match(raw, /m-ada|04A2B3C4|memberId|credential/, "no bodies on the feed");

  // The same batch again: acked again, committed nothing, announced nothing.
  await probe.publishAsync(topics.events(site.address("probe")), batch("probe", entries), { qos: 1 });
  const third = [checkinEntry(3, "m-ada")];
  await probe.publishAsync(topics.events(site.address("probe")), batch("probe", third), { qos: 1 });
  await site.signal.until(() => feed.length >= 2, "the next feed message");
  assert.equal(
    feed[1]!.meta.entries.map((e) => e.seq),
    [3],
    "the duplicate batch was not announced",
  );
});

it.run();
