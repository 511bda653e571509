import { test } from "uvu";
import * as assert from "uvu/assert";
import { FakeTimers } from "./fake-timers.ts";

test("fires due timers in time order and moves now() with them", () => {
  const t = new FakeTimers(1000);
  const fired: Array<[string, number]> = [];
  t.setTimeout(() => fired.push(["b", t.now().getTime()]), 20);
  t.setTimeout(() => fired.push(["a", t.now().getTime()]), 10);
  const c = t.setTimeout(() => fired.push(["c", t.now().getTime()]), 15);
  t.clearTimeout(c);
  t.advance(9);
  assert.equal(fired, []);
  t.advance(11);
  assert.equal(fired, [
    ["a", 1010],
    ["b", 1020],
  ]);
  assert.is(t.now().getTime(), 1020);
  assert.is(t.pending, 0);
});

test("a timer set by a firing timer fires in the same advance when due", () => {
  const t = new FakeTimers(0);
  const fired: number[] = [];
  t.setTimeout(() => {
    fired.push(t.now().getTime());
    t.setTimeout(() => fired.push(t.now().getTime()), 5);
  }, 5);
  t.advance(10);
  assert.equal(fired, [5, 10]);
});

test("set() moves forward only, firing what advance() would", () => {
  const t = new FakeTimers(0);
  const fired: number[] = [];
  t.setTimeout(() => fired.push(t.now().getTime()), 30);
  t.set(new Date(30));
  assert.equal(fired, [30]);
  assert.throws(() => t.set(new Date(29)), /only moves forward/);
});

test("a negative delay is due at once; advance() runs callbacks but settles no promise by itself", async () => {
  const t = new FakeTimers(0);
  const seen: string[] = [];
  t.setTimeout(() => {
    seen.push("timer");
    void Promise.resolve().then(() => seen.push("then"));
  }, -5);
  assert.is(t.pending, 1);
  t.advance(0);
  assert.equal(seen, ["timer"]);
  await Promise.resolve();
  assert.equal(seen, ["timer", "then"]);
});

test.run();
