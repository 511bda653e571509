/**
 * The cloud's liveness as the kiosk judges it, on a fake clock: silence for
 * the window makes the cloud unreachable, a heartbeat or an ack brings it
 * back, and nothing is judged while not watching.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { CloudLiveness } from "../src/cloud-liveness.ts";
import { FakeTimers } from "./fake-timers.ts";

function setUp(windowMs = 10_000) {
  const timers = new FakeTimers();
  const changes: boolean[] = [];
  const liveness = new CloudLiveness({ windowMs, timers, onChange: (alive) => changes.push(alive) });
  return { timers, changes, liveness };
}

test("silent for the window while watching: unreachable, once", () => {
  const { timers, changes, liveness } = setUp(10_000);
  liveness.watch(3);
  timers.advance(9_999);
  assert.is(liveness.alive, true, "not before the window is over");
  timers.advance(1);
  assert.is(liveness.alive, false);
  assert.equal(changes, [false]);
  timers.advance(60_000);
  assert.equal(changes, [false], "unreachable is said once, not on every window");
  assert.is(timers.pending, 0, "no timer runs while unreachable");
});

test("each heartbeat or ack starts the window again", () => {
  const { timers, changes, liveness } = setUp(10_000);
  liveness.watch(3);
  for (let i = 0; i < 10; i++) {
    timers.advance(3_000);
    liveness.heard();
  }
  timers.advance(9_999);
  assert.is(liveness.alive, true);
  assert.equal(changes, []);
});

test("heard again after the silence: alive, and the window runs anew", () => {
  const { timers, changes, liveness } = setUp(5_000);
  liveness.watch(1);
  timers.advance(5_000);
  liveness.heard();
  assert.is(liveness.alive, true);
  assert.equal(changes, [false, true]);
  timers.advance(5_000);
  assert.equal(changes, [false, true, false]);
});

test("not watching (broker down, cloud offline, a cloud without heartbeats): always alive, no timer", () => {
  const { timers, changes, liveness } = setUp(5_000);
  liveness.heard();
  timers.advance(60_000);
  assert.is(liveness.alive, true);
  liveness.watch(1);
  timers.advance(5_000);
  assert.is(liveness.alive, false);
  liveness.unwatch();
  assert.is(liveness.alive, true, "whoever stops watching reports the link's state itself");
  assert.is(timers.pending, 0);
  assert.equal(changes, [false], "unwatch does not fire onChange");
});

test("the window is never shorter than two heartbeats of the cloud", () => {
  const { timers, liveness } = setUp(3_000);
  liveness.watch(5);
  assert.is(liveness.effectiveWindowMs, 10_000);
  timers.advance(9_999);
  assert.is(liveness.alive, true, "a 3 s window would flap on a cloud that beats every 5 s");
  timers.advance(1);
  assert.is(liveness.alive, false);
});

test("setWindowMs applies live: a running window restarts with the new length", () => {
  const { timers, changes, liveness } = setUp(10_000);
  liveness.watch(1);
  timers.advance(4_000);
  liveness.setWindowMs(3_000);
  timers.advance(2_999);
  assert.is(liveness.alive, true);
  timers.advance(1);
  assert.equal(changes, [false]);
  assert.throws(() => liveness.setWindowMs(0), /positive/);
});

test.run();
