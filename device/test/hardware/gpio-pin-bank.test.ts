/** The bookkeeping every GPIO backend shares (pin-bank.ts): lines given back once, edges filtered one way. */
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { Level } from "../../src/hardware/gpio/backend.ts";
import { EdgeWatch } from "../../src/hardware/gpio/pin-bank.ts";
import { SimulatedGpio } from "../../src/hardware/gpio/simulated.ts";

test("an input's watcher hears only changes its edge reports; a repeated level is no change", () => {
  const heard: Level[] = [];
  const falling = new EdgeWatch("falling", 1);
  falling.watch((level) => heard.push(level));
  assert.ok(falling.see(0));
  assert.not.ok(falling.see(0));
  assert.ok(falling.see(1));
  assert.ok(falling.see(0));
  assert.equal(heard, [0, 0]);
  assert.is(falling.level, 0);
  falling.unwatch();
  falling.see(1);
  falling.see(0);
  assert.equal(heard, [0, 0]);
});

test("a released line is given back once: an old release never frees the line's next holder", async () => {
  const gpio = new SimulatedGpio();
  const first = await gpio.output(5, { initial: 0 });
  first.release();
  const second = await gpio.output(5, { initial: 1 });
  first.release();
  second.write(0);
  assert.is(gpio.level(5), 0);
  const third = await gpio.output(5, { initial: 0 }).catch((err: Error) => err);
  assert.instance(third, Error);
  assert.match((third as Error).message, /already in use/);
});

test("stop() gives back every line still held: inputs stop hearing, outputs refuse writes", async () => {
  const gpio = new SimulatedGpio();
  const heard: Level[] = [];
  const button = await gpio.input(17, "both", { pull: "up" });
  button.watch((level) => heard.push(level));
  const led = await gpio.output(27, { initial: 0 });
  gpio.drive(17, 0);
  await gpio.stop();
  gpio.drive(17, 1);
  assert.equal(heard, [0]);
  assert.throws(() => led.write(1), /released/);
});

test.run();
