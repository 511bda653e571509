/**
 * aedes' bus (mqemitter) under a long queue: thousands of messages queued
 * behind a held slot, whose subscriber answers at once, are all delivered in
 * order, without the stack overflow that killed the gateway in the scale
 * bench, and a message published meanwhile still comes after them.
 */
import { createRequire } from "node:module";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { boundEmitterDepth } from "../src/emitter-depth.ts";

const require = createRequire(import.meta.url);
type Emitter = {
  on(topic: string, notify: (m: { topic: string; n: number }, done: () => void) => void): void;
  emit(m: { topic: string; n: number }, cb?: (err?: Error) => void): void;
};
const mqemitter = require("mqemitter") as (opts: { concurrency: number }) => Emitter;

const QUEUED = 10_000;

/** One slot, held by message 0 until `release()`; every other message is answered at once. */
function heldQueue(mq: Emitter) {
  const seen: number[] = [];
  let release!: () => void;
  mq.on("k/#", (m, done) => {
    seen.push(m.n);
    if (m.n === 0) release = done;
    else done();
  });
  let last!: Promise<void>;
  for (let n = 0; n <= QUEUED; n++) {
    const sent = new Promise<void>((resolve, reject) =>
      mq.emit({ topic: "k/status", n }, (err) => (err ? reject(err) : resolve())),
    );
    if (n === QUEUED) last = sent;
  }
  return { seen, release: () => release(), last };
}

test("10,000 messages queued behind a held one are all delivered, in order, with no stack overflow", async () => {
  const q = heldQueue(boundEmitterDepth(mqemitter({ concurrency: 1 })));
  assert.equal(q.seen, [0], "the rest wait for the held slot");
  q.release(); // unbounded, this recursed until about 1,240 deep and threw RangeError
  await q.last;
  assert.is(q.seen.length, QUEUED + 1);
  assert.ok(
    q.seen.every((n, i) => n === i),
    "delivered in the order published",
  );
});

test("a message published while the queue drains comes after every queued one", async () => {
  const mq = boundEmitterDepth(mqemitter({ concurrency: 1 }));
  const q = heldQueue(mq);
  q.release(); // drains the first stretch, then goes on on the next turn
  const late = new Promise<void>((resolve) => mq.emit({ topic: "k/status", n: -1 }, () => resolve()));
  assert.ok(q.seen.length < QUEUED + 1, "the drain goes on after this turn");
  await Promise.all([q.last, late]);
  assert.is(q.seen.at(-1), -1, "the late message is delivered last");
  assert.ok(
    q.seen.slice(0, -1).every((n, i) => n === i),
    "the queued ones in their order",
  );
});

test("an emitter without mqemitter 7's internals is refused with a line naming the file to check", () => {
  assert.throws(() => boundEmitterDepth({ emit() {} }), /mqemitter 7.*emitter-depth\.ts/);
});

test.run();
