/**
 * A tool polling in a tight loop must not bury the simulator's output: the
 * same request and answer print once, then one line counting the repeats —
 * when something else happens, or once the line goes quiet.
 */
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { RepeatFolder } from "../src/sim/repeat-folder.ts";
import { FakeTimers } from "./fake-timers.ts";

const test = suite("paylane-sim repeat folding");

function rig() {
  const printed: string[] = [];
  const timers = new FakeTimers();
  return { printed, timers, folder: new RepeatFolder((l) => printed.push(l), timers) };
}

test("a poll repeated a thousand times prints once and a count, then what came next", () => {
  const { printed, folder } = rig();
  folder.line("← InListPassiveTarget max 1, 106 kbps type A");
  for (let i = 0; i < 1000; i++) {
    folder.line("→ 1 target: UID 04A1B2C3");
    folder.line("← InListPassiveTarget max 1, 106 kbps type A");
  }
  folder.line("→ no target");
  assert.equal(printed, [
    "← InListPassiveTarget max 1, 106 kbps type A",
    "→ 1 target: UID 04A1B2C3",
    "  … the same 2 lines 999 more times",
    "← InListPassiveTarget max 1, 106 kbps type A",
    "→ no target",
  ]);
});

test("a run still going is counted out once the line is quiet, and a later repeat is news again", () => {
  const { printed, timers, folder } = rig();
  for (let i = 0; i < 3; i++) {
    folder.line("← Diagnose");
    folder.line("→ echo");
  }
  assert.is(printed.length, 2, "the repeats wait to be counted");
  timers.advance(500);
  assert.equal(printed.slice(2), ["  … the same 2 lines 2 more times"]);
  folder.line("← Diagnose");
  assert.equal(printed.slice(3), ["← Diagnose"]);
});

test("lines that do not repeat all print, in order, even when one looks like the start of a run", () => {
  const { printed, folder } = rig();
  for (const l of ["a", "b", "c", "a", "c", "b"]) folder.line(l);
  assert.equal(printed, ["a", "b", "c", "a", "c", "b"]);
});

test.run();
