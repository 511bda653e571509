/** Gap detection: N+2 committed before N+1 is asked for after a bounded wait, again with backoff, and forgotten once filled. */
import type { DeviceAddress } from "@paylane/protocol";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { FakeTimers } from "../../test/support/fake-timers.ts";
import { GapTracker } from "../src/bridge/gaps.ts";

const K1: DeviceAddress = { site: "s1", device: "k1" };
const K2: DeviceAddress = { site: "s1", device: "k2" };

function rig(waitMs = 1000) {
  const timers = new FakeTimers();
  const asked: Array<[string, number]> = [];
  const gaps: Array<[string, number]> = [];
  const tracker = new GapTracker({
    waitMs,
    maxWaitMs: 4000,
    timers,
    requestReplay: (d, from) => asked.push([d.device, from]),
    onGap: (d, from) => gaps.push([d.device, from]),
    now: timers.now,
  });
  return { timers, asked, gaps, tracker };
}

test("a contiguous stream never asks for anything", () => {
  const { timers, asked, gaps, tracker } = rig();
  tracker.observe(K1, 10, 10);
  tracker.observe(K1, 20, 20);
  timers.advance(60_000);
  assert.equal(asked, []);
  assert.equal(gaps, []);
  assert.is(timers.pending, 0);
});

test("N+2 before N+1: nothing before the wait, then replay-from N+1, then again with backoff", () => {
  const { timers, asked, gaps, tracker } = rig();
  tracker.observe(K1, 10, 15); // 11 missing, 12..15 committed
  assert.equal(gaps, [["k1", 11]]);
  timers.advance(999);
  assert.equal(asked, [], "a bounded wait first: 11 may still be committing");
  timers.advance(1);
  assert.equal(asked, [["k1", 11]]);
  timers.advance(1999);
  assert.equal(asked.length, 1);
  timers.advance(1);
  assert.equal(
    asked,
    [
      ["k1", 11],
      ["k1", 11],
    ],
    "asked again after twice the wait",
  );
  timers.advance(4000);
  timers.advance(4000);
  assert.is(asked.length, 4, "backoff is capped at maxWaitMs");
});

test("the gap is forgotten once the mark passes everything seen, even from a batch of old seqs", () => {
  const { timers, asked, tracker } = rig();
  tracker.observe(K1, 10, 15);
  tracker.observe(K1, 10, 9); // a duplicate batch: the gap is still open
  timers.advance(1000);
  assert.equal(asked, [["k1", 11]]);
  tracker.observe(K1, 15, 11); // 11 arrived: the mark jumps over everything seen
  assert.equal(tracker.open, []);
  timers.advance(60_000);
  assert.is(asked.length, 1);
  assert.is(timers.pending, 0);
});

test("a mark that moves up to a later gap starts a new wait for it; devices are independent", () => {
  const { timers, asked, gaps, tracker } = rig();
  tracker.observe(K1, 10, 20);
  tracker.observe(K2, 5, 5);
  timers.advance(500);
  tracker.observe(K1, 14, 20); // 11..14 arrived, 15 still missing
  assert.equal(gaps, [
    ["k1", 11],
    ["k1", 15],
  ]);
  timers.advance(500);
  assert.equal(asked, [], "the new gap waits its own full interval");
  timers.advance(500);
  assert.equal(asked, [["k1", 15]]);
  tracker.stop();
  assert.is(timers.pending, 0, "stop leaves no timer");
  tracker.observe(K2, 5, 9); // a batch that was still committing when the bridge stopped
  assert.is(timers.pending, 0, "nothing is armed after stop");
});

test("each open gap says since when it is open (the bridge's oldest open gap age); a later gap starts its own clock", () => {
  const { timers, tracker } = rig();
  const opened = timers.now();
  tracker.observe(K1, 10, 15);
  timers.advance(5000);
  tracker.observe(K2, 3, 7);
  timers.advance(1000);
  tracker.observe(K1, 10, 16); // the same gap, more seen behind it: still open since the first sight
  assert.equal(
    tracker.open.map((g) => [g.device.device, g.from, g.since.getTime() - opened.getTime()]),
    [
      ["k1", 11, 0],
      ["k2", 4, 5000],
    ],
  );
  tracker.observe(K1, 12, 16); // 11 and 12 came: the gap is now at 13, a new one
  const k1 = tracker.open.find((g) => g.device.device === "k1")!;
  assert.is(k1.from, 13);
  assert.is(k1.since.getTime() - opened.getTime(), 6000);
  tracker.stop();
});

test.run();
