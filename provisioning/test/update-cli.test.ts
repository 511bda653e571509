/**
 * `paylane-update` as a person runs it (docs/kiosk-updates.md): its help, a
 * good update and a rollback through the real CLI process, against a kiosk
 * root in a temporary folder whose systemctl is a stand-in that starts the
 * release's daemon (a real small process) from /opt/paylane/current; and
 * `paylane-provision bundle build`, whose bundle the bundled updater (the file
 * the kiosk runs) accepts.
 */
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, readlink, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { bundle, FAKE_SYSTEMCTL, seedDataFolder } from "./support/update-kiosk.ts";

const exec = promisify(execFile);
const BIN = join(import.meta.dirname, "../bin/paylane-update.mjs");
const PROVISION = join(import.meta.dirname, "../bin/paylane-provision.mjs");

let root: string;
let port: number;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function update(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = {
    ...process.env,
    PAYLANE_ROOT: root,
    PAYLANE_SYSTEMCTL: FAKE_SYSTEMCTL,
    FAKE_DAEMON_PORT: String(port),
  };
  const flags = ["--health-url", `http://127.0.0.1:${port}/healthz`, "--settle", "0s", "--deadline", "5s"];
  return exec(process.execPath, [BIN, ...flags, ...args], { env, cwd: tmpdir() }).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
}

test.before(async () => {
  root = await mkdtemp(join(tmpdir(), "paylane-update-cli-"));
  port = await freePort();
});
test.after(async () => {
  const pid = await readFile(join(root, "run/daemon.pid"), "utf8").catch(() => "");
  if (pid) process.kill(Number(pid), "SIGTERM");
  await rm(root, { recursive: true, force: true });
});

test("--help says what it does, the layout and the exit codes", async () => {
  const r = await update("--help");
  assert.is(r.code, 0);
  for (const text of ["apply [options] <bundle>", "/opt/paylane/current", "4 rolled back", "PAYLANE_SYSTEMCTL"]) {
    assert.ok(r.stdout.includes(text), text);
  }
  const bad = await update("apply");
  assert.is(bad.code, 2);
  assert.is(bad.stderr, "paylane-update: missing required argument 'bundle' (see paylane-update --help)\n");
});

test("a good update, then a release that cannot start is rolled back (exit 4), then a corrupt bundle is refused (exit 3)", async () => {
  const journal = await seedDataFolder(root);
  const before = await journal();
  const v1 = await update("apply", await bundle(root, "1.0.0", "good"));
  assert.is(v1.code, 0, v1.stderr);
  const v2 = await update("apply", await bundle(root, "1.1.0", "good"));
  assert.is(v2.code, 0, v2.stderr);
  assert.match(v2.stdout, /^updated to 1\.1\.0-[0-9a-f]{12} \(was 1\.0\.0-[0-9a-f]{12}\)\n$/);
  const good = await readlink(join(root, "opt/paylane/current"));

  const bad = await update("apply", await bundle(root, "1.2.0", "exits"));
  assert.is(bad.code, 4, bad.stderr);
  assert.match(
    bad.stdout,
    /^ROLLED BACK: 1\.2\.0-\w+ failed \(the daemon did not start \(Job for paylane-device\.service failed/,
  );
  assert.match(bad.stderr, /rolling back to 1\.1\.0-/);
  assert.is(await readlink(join(root, "opt/paylane/current")), good);
  const health = await fetch(`http://127.0.0.1:${port}/healthz`);
  assert.equal(await health.json(), { status: "ok", release: "1.1.0" });

  const corrupt = join(root, "corrupt.tar.gz");
  const bytes = await readFile(await bundle(root, "1.3.0", "good"));
  const middle = Math.floor(bytes.length / 2);
  bytes[middle] = (bytes[middle] ?? 0) ^ 0xff;
  await writeFile(corrupt, bytes);
  const refused = await update("apply", corrupt);
  assert.is(refused.code, 3);
  // One line says why, the last one.
  assert.match(refused.stderr, /\npaylane-update: refused: .*corrupt\.tar\.gz: [^\n]*\(nothing was changed\)\n$/);
  assert.is(await readlink(join(root, "opt/paylane/current")), good);

  // An older bundle (a replayed one, say) is refused; --allow-downgrade is the operator's way to insist.
  const older = await update("apply", await bundle(root, "1.0.0", "good"));
  assert.is(older.code, 3);
  assert.match(
    older.stderr,
    /\npaylane-update: refused: .*1\.0\.0-good\.tar\.gz: version 1\.0\.0 is older than the current release's 1\.1\.0: a downgrade can bring back fixed flaws; pass --allow-downgrade to install it anyway \(nothing was changed\)\n$/,
  );
  assert.is(await readlink(join(root, "opt/paylane/current")), good);

  const status = JSON.parse((await update("status")).stdout) as { last: { outcome: string }; symlink: string };
  assert.is(status.last.outcome, "rolled-back");
  assert.is(`releases/${status.symlink}`, good);
  assert.is(await journal(), before, "the journal is untouched");
});

test("paylane-provision bundle build: a bundle the kiosk's own (bundled) updater verifies", async () => {
  const out = join(root, "paylane-kiosk.tar.gz");
  // Signed with an Ed25519 key; the kiosk holds the public half in /etc/paylane/update-signing.pub.
  const { generateKeyPairSync } = await import("node:crypto");
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const keyFile = join(root, "update-signing.pem");
  await writeFile(keyFile, privateKey.export({ type: "pkcs8", format: "pem" }));
  const kiosk = await mkdtemp(join(tmpdir(), "paylane-signed-kiosk-"));
  await mkdir(join(kiosk, "etc/paylane"), { recursive: true });
  await writeFile(join(kiosk, "etc/paylane/update-signing.pub"), publicKey.export({ type: "spki", format: "pem" }));
  const built = await exec(
    process.execPath,
    [PROVISION, "bundle", "build", "--out", out, "--arch", process.arch, "--sign-key", keyFile],
    { cwd: tmpdir() },
  );
  assert.match(
    built.stdout,
    /^wrote .* \(\d+\.\d MiB, 6 files\)\nrelease 1\.0\.0-[0-9a-f]{12} for linux-\w+, signed \(Ed25519\)\n/,
  );
  const sha = /sha256 ([0-9a-f]{64})/.exec(built.stdout)?.[1] ?? "";
  // The updater as the kiosk has it: one file run by plain node, outside the repository.
  const unpacked = await mkdtemp(join(tmpdir(), "paylane-updater-"));
  const tar = await import("tar");
  await tar.x({ file: out, cwd: unpacked });
  const r = await exec(
    process.execPath,
    [join(unpacked, "updater/paylane-update.mjs"), "--root", kiosk, "verify", out],
    {
      cwd: unpacked,
    },
  );
  await rm(kiosk, { recursive: true, force: true });
  assert.match(r.stdout, /release 1\.0\.0-[0-9a-f]{12} for linux-\w+, 6 files, all hashes match/);
  assert.ok(sha.length === 64);
  await rm(unpacked, { recursive: true, force: true });
});

test.run();
