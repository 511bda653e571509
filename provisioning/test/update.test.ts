/**
 * Kiosk updates (issue 19, docs/kiosk-updates.md): a new release goes in
 * beside the current one, /opt/paylane/current switches to it, and it stays
 * only if the daemon — a real process started from the release folder —
 * answers /healthz; otherwise the previous release is switched back and runs
 * again. The journal in /var/lib/paylane is never touched.
 */
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, readlink, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { type Outcome, Updater } from "../src/update/updater.ts";
import { bundle, deps, FakeClock, FakeService, seedDataFolder } from "./support/update-kiosk.ts";

interface Kiosk {
  root: string;
  service: FakeService;
  clock: FakeClock;
  log: string[];
  updater: Updater;
  journal: () => Promise<string>;
  v1: string;
}

const kiosks: Kiosk[] = [];

/** A kiosk running release 1.0.0 (installed by the updater itself on an empty /opt/paylane). */
async function kiosk(): Promise<Kiosk> {
  const root = await mkdtemp(join(tmpdir(), "paylane-update-"));
  const service = new FakeService(root);
  const clock = new FakeClock();
  const log: string[] = [];
  const updater = new Updater(deps(root, service, clock, log));
  const journal = await seedDataFolder(root);
  const first = await updater.apply(await bundle(root, "1.0.0", "good"));
  assert.is(first.outcome, "updated");
  const k = { root, service, clock, log, updater, journal, v1: (first as { to: string }).to };
  kiosks.push(k);
  return k;
}

async function current(k: Kiosk): Promise<string> {
  return readlink(join(k.root, "opt/paylane/current"));
}

function rolledBack(o: Outcome): Extract<Outcome, { outcome: "rolled-back" }> {
  if (o.outcome !== "rolled-back") throw new Error(`expected a rollback, got ${JSON.stringify(o)}`);
  return o;
}

test.after.each(async () => {
  for (const k of kiosks.splice(0)) {
    await k.service.stop();
    await rm(k.root, { recursive: true, force: true });
  }
});

test("a good update switches current to the new release, whose daemon is then healthy", async () => {
  const k = await kiosk();
  const before = await k.journal();
  const outcome = await k.updater.apply(await bundle(k.root, "1.1.0", "good"));
  assert.is(outcome.outcome, "updated");
  const to = (outcome as { to: string }).to;
  assert.match(to, /^1\.1\.0-[0-9a-f]{12}$/);
  assert.is(await current(k), `releases/${to}`);
  assert.ok(k.service.starts.at(-1)?.endsWith(`/releases/${to}`), "the daemon was restarted from the new release");
  assert.is(await k.service.probe(), null);
  const state = await k.updater.state();
  assert.equal([state.current, state.previous, state.pending], [to, k.v1, null]);
  // The same lockfile: node_modules came from the current release, no npm ci.
  assert.ok(existsSync(join(k.root, "opt/paylane/releases", to, "node_modules/fake-native/index.js")));
  assert.is(k.log.filter((l) => l.startsWith("npm ci")).length, 1, "npm ci ran for the first release only");
  assert.is(await k.journal(), before, "the journal is untouched");

  // Idempotent: the same bundle again changes nothing and restarts nothing.
  const starts = k.service.starts.length;
  const again = await k.updater.apply(await bundle(k.root, "1.1.0", "good"));
  assert.equal(again, { outcome: "unchanged", to });
  assert.is(k.service.starts.length, starts);
});

test("a release whose daemon exits at once is rolled back: the previous one runs and is healthy again", async () => {
  const k = await kiosk();
  const before = await k.journal();
  const o = rolledBack(await k.updater.apply(await bundle(k.root, "1.1.0", "exits")));
  assert.is(o.from, k.v1);
  assert.match(o.reason, /the daemon did not start \(paylane-device exited with code 1/);
  assert.ok(o.previousHealthy);
  assert.is(await current(k), `releases/${k.v1}`);
  assert.ok(k.service.starts.at(-1)?.endsWith(`/releases/${k.v1}`), "restarted on the previous release");
  assert.is(await k.service.probe(), null, "the previous release answers /healthz again");
  const state = await k.updater.state();
  assert.is(state.current, k.v1);
  assert.is(state.pending, null);
  assert.is(state.last?.outcome, "rolled-back");
  assert.is(state.last?.to, o.to);
  assert.ok(k.log.some((l) => l.includes(`failed its health check`) && l.includes(`rolling back to ${k.v1}`)));
  assert.is(await k.journal(), before, "the journal is untouched");
});

test("a release that starts but never answers /healthz is rolled back at the deadline (injected clock)", async () => {
  const k = await kiosk();
  const t0 = k.clock.now();
  const o = rolledBack(await k.updater.apply(await bundle(k.root, "1.1.0", "unhealthy")));
  assert.match(o.reason, /not healthy within 90 s \(http:\/\/127\.0\.0\.1:\d+\/healthz answered 503\)/);
  assert.ok(k.clock.now() - t0 >= 90_000, "the whole deadline passed, on the fake clock");
  assert.is(await current(k), `releases/${k.v1}`);
  assert.is(await k.service.probe(), null);
});

test("a release healthy for a moment, then failing, does not pass: it must stay healthy for the settle time", async () => {
  const k = await kiosk();
  const o = rolledBack(await k.updater.apply(await bundle(k.root, "1.1.0", "flaps")));
  assert.match(o.reason, /not healthy within 90 s \(healthy at first, then .*answered 503\)/);
  assert.is(await current(k), `releases/${k.v1}`);
});

test("a corrupt bundle, a tampered file and another architecture are refused with the old release still current", async () => {
  const k = await kiosk();
  const starts = k.service.starts.length;
  const good = await bundle(k.root, "1.1.0", "good");
  const bytes = await readFile(good);

  const truncated = join(k.root, "truncated.tar.gz");
  await import("node:fs/promises").then((fs) => fs.writeFile(truncated, bytes.subarray(0, bytes.length - 40)));
  await refused(() => k.updater.apply(truncated), /truncated\.tar\.gz: not a readable \.tar\.gz/);

  // A file changed after the manifest was made: the tar is fine, the hash is not.
  const { writeReleaseBundle, releaseManifest } = await import("../src/update/release.ts");
  const { releaseFiles } = await import("./support/update-kiosk.ts");
  const files = await releaseFiles("1.1.0", "good");
  const manifest = releaseManifest(files, { version: "1.1.0", arch: process.arch });
  const tampered = join(k.root, "tampered.tar.gz");
  await writeReleaseBundle(files, { version: "1.1.0", arch: process.arch }, tampered);
  const tar = await import("tar");
  const work = await mkdtemp(join(tmpdir(), "paylane-tamper-"));
  await tar.x({ file: tampered, cwd: work });
  await import("node:fs/promises").then((fs) =>
    fs.appendFile(join(work, "app/paylane-device.mjs"), "\nprocess.exit(1);\n"),
  );
  await tar.c({ gzip: true, file: tampered, cwd: work }, [
    "paylane-release.json",
    ...manifest.files.map((f) => f.path),
  ]);
  await refused(() => k.updater.apply(tampered), /app\/paylane-device\.mjs is corrupt/);
  await rm(work, { recursive: true, force: true });

  const other = join(k.root, "other-arch.tar.gz");
  await writeReleaseBundle(files, { version: "1.1.0", arch: process.arch === "arm64" ? "x64" : "arm64" }, other);
  await refused(() => k.updater.apply(other), /built for linux-(x64|arm64), this kiosk is linux-/);

  await refused(() => k.updater.apply(good, "0".repeat(64)), /SHA-256 is [0-9a-f]{64}, expected 0{64}/);

  assert.is(await current(k), `releases/${k.v1}`);
  assert.is(k.service.starts.length, starts, "the daemon was never restarted");
  assert.equal(await readdir(join(k.root, "opt/paylane/releases")), [k.v1], "nothing left behind");
  assert.is((await k.updater.state()).pending, null);
});

test("a power cut after the switch, before the health check: the next run keeps a healthy new release", async () => {
  const k = await kiosk();
  const b = await bundle(k.root, "1.1.0", "good");
  const cut = k.service.powerCutAtNextRestart();
  void k.updater.apply(b);
  await cut;
  await reboot(k);
  const pending = await pendingUpdate(k);
  assert.is(await current(k), `releases/${pending.to}`, "the symlink was switched before the cut");

  // Next boot: a fresh updater (paylane-update-check.service runs `paylane-update recover`).
  const boot = new Updater(deps(k.root, k.service, k.clock, k.log));
  const o = await boot.recover();
  assert.equal(o, { outcome: "updated", from: k.v1, to: pending.to });
  assert.is((await boot.state()).pending, null);
  assert.is(await k.service.probe(), null);
});

test("a power cut after switching to a bad release: the next run rolls back", async () => {
  const k = await kiosk();
  const before = await k.journal();
  const b = await bundle(k.root, "1.1.0", "exits");
  const cut = k.service.powerCutAtNextRestart();
  void k.updater.apply(b);
  await cut;
  await reboot(k);
  const pending = await pendingUpdate(k);
  assert.is(await current(k), `releases/${pending.to}`);

  // The next `paylane-update apply` (of another bundle) first finishes the interrupted one.
  const next = new Updater(deps(k.root, k.service, k.clock, k.log));
  const o = await next.apply(await bundle(k.root, "1.2.0", "good"));
  assert.ok(k.log.some((l) => l.includes(`an update from ${k.v1} to ${pending.to} was interrupted`)));
  assert.ok(k.log.some((l) => l === "the interrupted update ended: rolled-back"));
  assert.is(o.outcome, "updated");
  assert.is((o as { from: string }).from, k.v1, "1.2.0 replaced the release that was rolled back to");
  assert.is(await k.journal(), before);
});

test("a power cut before the switch: the next boot forgets the pending update, the old release stays", async () => {
  const k = await kiosk();
  const { writeFile } = await import("node:fs/promises");
  const state = await k.updater.state();
  await writeFile(
    join(k.root, "opt/paylane/update-state.json"),
    JSON.stringify({ ...state, pending: { from: k.v1, to: "1.1.0-000000000000", startedAt: "x" } }),
  );
  const o = rolledBack(await k.updater.recover());
  assert.is(o.reason, "interrupted before the switch");
  assert.is(await current(k), `releases/${k.v1}`);
  assert.is((await k.updater.state()).pending, null);
  assert.is(await k.service.probe(), null);
});

test("rollback by hand goes back to the previous release; only two releases are kept", async () => {
  const k = await kiosk();
  const v2 = (await k.updater.apply(await bundle(k.root, "1.1.0", "good"))) as { to: string };
  const v3 = (await k.updater.apply(await bundle(k.root, "1.2.0", "good"))) as { to: string };
  assert.equal((await readdir(join(k.root, "opt/paylane/releases"))).sort(), [v2.to, v3.to].sort());
  const o = await k.updater.rollback();
  assert.equal(o, { outcome: "updated", from: v3.to, to: v2.to });
  assert.is(await current(k), `releases/${v2.to}`);
});

test("with a signing key on the kiosk, only bundles signed with that key are accepted", async () => {
  const k = await kiosk();
  const { generateKeyPairSync } = await import("node:crypto");
  const { writeReleaseBundle } = await import("../src/update/release.ts");
  const { releaseFiles } = await import("./support/update-kiosk.ts");
  const ours = generateKeyPairSync("ed25519");
  const theirs = generateKeyPairSync("ed25519");
  const signed = new Updater({
    ...deps(k.root, k.service, k.clock, k.log),
    target: { platform: process.platform, arch: process.arch, signingKey: ours.publicKey },
  });
  const files = await releaseFiles("1.1.0", "good");
  const meta = { version: "1.1.0", arch: process.arch };
  const unsigned = join(k.root, "unsigned.tar.gz");
  await writeReleaseBundle(files, meta, unsigned);
  await refused(() => signed.apply(unsigned), /is not signed, and this kiosk accepts only signed bundles/);
  const forged = join(k.root, "forged.tar.gz");
  await writeReleaseBundle(files, meta, forged, theirs.privateKey);
  await refused(() => signed.apply(forged), /its signature does not match this kiosk's update signing key/);
  assert.is(await current(k), `releases/${k.v1}`);

  const good = join(k.root, "signed.tar.gz");
  await writeReleaseBundle(files, meta, good, ours.privateKey);
  assert.is((await signed.apply(good)).outcome, "updated");
});

test("one updater at a time: a live lock refuses a second run; a dead one's lock is taken over", async () => {
  const k = await kiosk();
  const { readFile: read, writeFile } = await import("node:fs/promises");
  const lock = join(k.root, "opt/paylane/.update.lock");
  const boot = (await read("/proc/sys/kernel/random/boot_id", "utf8").catch(() => "unknown")).trim();
  await writeFile(lock, `${process.pid} ${boot}\n`); // this very process: alive
  const b = await bundle(k.root, "1.1.0", "good");
  const err = await k.updater.apply(b).then(
    () => undefined,
    (e: Error) => e,
  );
  assert.match(err?.message ?? "", new RegExp(`another paylane-update \\(pid ${process.pid}\\) is running`));
  assert.is(await current(k), `releases/${k.v1}`);
  await writeFile(lock, `2147483646 ${boot}\n`); // no such process: a crashed run
  assert.is((await k.updater.apply(b)).outcome, "updated");
  assert.ok(k.log.some((l) => l.startsWith("taking over a stale lock (pid 2147483646")));
  assert.not.ok(existsSync(lock), "the lock goes with the run");
});

test("a kiosk from before release folders, or on the read-only root's overlay, is refused in one line", async () => {
  const root = await mkdtemp(join(tmpdir(), "paylane-update-old-"));
  const service = new FakeService(root);
  const log: string[] = [];
  const { mkdir } = await import("node:fs/promises");
  await mkdir(join(root, "opt/paylane/app"), { recursive: true });
  const old = new Updater(deps(root, service, new FakeClock(), log));
  const b = await bundle(root, "1.1.0", "good");
  const err = await old.apply(b).then(
    () => undefined,
    (e: Error) => e,
  );
  assert.match(err?.message ?? "", /has app\/ but no current: this kiosk predates release folders; flash a new image/);
  const overlay = new Updater({ ...deps(root, service, new FakeClock(), log), volatile: async () => "on overlay" });
  const err2 = await overlay.apply(b).then(
    () => undefined,
    (e: Error) => e,
  );
  assert.is(err2?.message, "on overlay");
  assert.is(service.starts.length, 0);
  await rm(root, { recursive: true, force: true });
});

/** What a power cut and a new boot leave of the dead updater's lock: its pid, another boot's id. */
async function reboot(k: Kiosk): Promise<void> {
  const { writeFile } = await import("node:fs/promises");
  await writeFile(join(k.root, "opt/paylane/.update.lock"), `${process.pid} an-earlier-boot\n`);
}

async function pendingUpdate(k: Kiosk) {
  const p = (await k.updater.state()).pending;
  if (!p) throw new Error("no pending update in update-state.json");
  return p;
}

/** `run` fails with a BundleRefused whose message matches `pattern`. */
async function refused(run: () => Promise<unknown>, pattern: RegExp): Promise<void> {
  const err = await run().then(
    () => undefined,
    (e: Error) => e,
  );
  assert.ok(err, "expected a refusal");
  assert.is(err?.name, "BundleRefused");
  assert.match(err?.message ?? "", pattern);
}

test.run();
