/**
 * `paylane-sim` refusing bad input as a user meets it: one line on stderr that
 * names what is wrong and how to fix it, exit 2, and nothing left behind.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";

const test = suite("paylane-sim bad input");
const BIN = join(import.meta.dirname, "../bin/paylane-sim.mjs");
let dir: string;

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), "paylane-sim-cli-"));
});
test.after(() => rm(dir, { recursive: true, force: true }));

function sim(...args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 20_000 }, (err, _stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stderr });
    });
  });
}

function oneLine(stderr: string, re: RegExp): void {
  const lines = stderr.trim().split("\n");
  assert.is(lines.length, 1, stderr);
  assert.match(lines[0]!, re);
}

test("a --link in a folder that does not exist is named at once, not after socat's timeout", async () => {
  const r = await sim("pn532", "--link", join(dir, "nope", "pn532"));
  assert.is(r.code, 2);
  oneLine(r.stderr, /--link .*nope\/pn532: folder .*nope does not exist; create it or pick another path$/);
});

test("a --link that already exists is refused, and the file is left as it was", async () => {
  const taken = join(dir, "taken");
  await writeFile(taken, "mine");
  const r = await sim("printer", "--link", taken);
  assert.is(r.code, 2);
  oneLine(r.stderr, /--link .*taken: already exists; give a path that does not/);
  assert.equal(await readdir(dir), ["taken"]);
});

test("a card UID of a length the simulator has no model for, a bad paper state, no --link: each one line", async () => {
  oneLine(
    (await sim("pn532", "--link", join(dir, "p"), "--card", "04A1")).stderr,
    /4 bytes \(MIFARE Classic 1K\) or 7 \(NTAG213\)/,
  );
  oneLine(
    (await sim("printer", "--link", join(dir, "p"), "--paper", "empty")).stderr,
    /expected ok, low or out, not "empty"/,
  );
  oneLine((await sim("terminal")).stderr, /terminal: missing --link <path>/);
});

test.run();
