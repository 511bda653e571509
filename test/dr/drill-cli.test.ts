/**
 * `npm run drill` explains itself and refuses bad input in one line, before it
 * starts any cluster: --help (usage, options, examples) exits 0; a bad value
 * or an empty selection names what is wrong and where help is, and exits 2.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";

const root = join(import.meta.dirname, "..", "..");

function drill(...args: string[]) {
  return spawnSync(process.execPath, ["--import", "tsx", "scripts/drill.ts", ...args], {
    cwd: root,
    encoding: "utf8",
    timeout: 30_000,
  });
}

function assertRefused(r: ReturnType<typeof drill>, pattern: RegExp): void {
  const lines = r.stderr.split("\n").filter((l) => l.trim() !== "");
  assert.is(lines.length, 1, `one line on stderr, got:\n${r.stderr}`);
  assert.match(lines[0]!, pattern);
  assert.is(r.status, 2, r.stderr);
  assert.is(r.stdout, "", "nothing started");
}

test("--help prints the usage, the options and examples, and exits 0", () => {
  const r = drill("--help");
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stderr, "");
  assert.match(r.stdout, /^Usage: npm run drill -- \[options\]/);
  for (const m of ["--kiosks <n>", "--load-seconds <s>", "--skip-backup", "--skip-failover", "--json <file>"])
    assert.match(r.stdout, m);
  assert.match(r.stdout, /\nExamples:\n(.*\n)* {2}\$ npm run drill/);
});

test("a bad value is named with what is expected and where help is", () => {
  assertRefused(
    drill("--kiosks", "0"),
    /^drill: option '--kiosks <n>' argument '0' is invalid\. expected a number of kiosks from 1 to 64 \(see npm run drill -- --help\)$/,
  );
  assertRefused(drill("--load-seconds", "ten"), /^drill: option '--load-seconds <s>' argument 'ten' is invalid/);
  assertRefused(drill("--bogus"), /^drill: unknown option '--bogus'/);
});

test("skipping both drills is refused: nothing would run", () => {
  assertRefused(
    drill("--skip-backup", "--skip-failover"),
    /^drill: --skip-backup with --skip-failover leaves nothing to run$/,
  );
});

test.run();
