/**
 * paylane-update's own inputs: the kiosk's update signing key and --health-url.
 * A key file that exists but cannot be read (a folder, no permission) must not
 * read as "no key" (every unsigned bundle accepted: the check silently off);
 * a key that is not a PEM public key is one line naming the file; a
 * --health-url that is not an http(s) URL is refused before anything changes
 * (it would fail every health check and roll back a good release).
 */
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { test } from "uvu";
import * as assert from "uvu/assert";

const exec = promisify(execFile);
const BIN = join(import.meta.dirname, "../bin/paylane-update.mjs");
let root: string;

async function update(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return exec(process.execPath, [BIN, ...args], { env: { ...process.env, PAYLANE_ROOT: root }, cwd: tmpdir() }).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
}

test.before(async () => {
  root = await mkdtemp(join(tmpdir(), "paylane-update-key-"));
  await mkdir(join(root, "etc/paylane"), { recursive: true });
});
test.after(async () => {
  await rm(root, { recursive: true, force: true });
});

test("an update signing key that is there but unreadable stops the updater: it never runs unchecked", async () => {
  const key = join(root, "etc/paylane/update-signing.pub");
  await mkdir(key); // EISDIR on read, as EACCES would be for a non-root reader
  const r = await update("verify", join(root, "no-such-bundle.tar.gz"));
  await rm(key, { recursive: true });
  assert.is.not(r.code, 0);
  assert.match(r.stderr, /update-signing\.pub: cannot read it/);
  assert.not.match(r.stderr, /no such file \(nothing was changed\)/, "it went on to the bundle without its key");
});

test("an update signing key that is not a PEM public key is one line naming the file", async () => {
  const key = join(root, "etc/paylane/update-signing.pub");
  await writeFile(key, "garbage\n");
  const r = await update("verify", join(root, "no-such-bundle.tar.gz"));
  await rm(key);
  assert.is.not(r.code, 0);
  assert.is(r.stderr.trim().split("\n").length, 1, r.stderr);
  assert.match(r.stderr, /update-signing\.pub: not an Ed25519 public key/);
});

test("--health-url must be an http(s) URL", async () => {
  const r = await update("--health-url", "nonsense", "status");
  assert.is(r.code, 2, r.stderr);
  assert.match(r.stderr, /--health-url/);
});

test.run();
