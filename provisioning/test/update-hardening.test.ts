/**
 * The security review of paylane-update (docs/kiosk-updates.md, "What is
 * refused"): each test performs one attack against a kiosk in a temporary
 * folder — an old signed bundle replayed, a bundle swapped after its hash was
 * checked, setuid and world-writable modes in the archive, a dependency's
 * install script — and checks it gets nowhere.
 */
import { execFile } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { existsSync, renameSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readlink, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import * as tar from "tar";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { MANIFEST_NAME, sha256File, writeReleaseBundle } from "../src/update/release.ts";
import { npmCi } from "../src/update/system.ts";
import { Updater } from "../src/update/updater.ts";
import { deps, FakeClock, FakeService, releaseFiles } from "./support/update-kiosk.ts";

const exec = promisify(execFile);
const roots: Array<{ root: string; service: FakeService }> = [];

test.after.each(async () => {
  for (const { root, service } of roots.splice(0)) {
    await service.stop();
    await rm(root, { recursive: true, force: true });
  }
});

/** A kiosk that accepts only bundles signed with `keys`, and a signed bundle maker. */
async function signedKiosk(onLog?: (line: string) => void) {
  const root = await mkdtemp(join(tmpdir(), "paylane-harden-"));
  const service = new FakeService(root);
  roots.push({ root, service });
  const log: string[] = [];
  const keys = generateKeyPairSync("ed25519");
  const base = deps(root, service, new FakeClock(), log);
  const updater = new Updater({
    ...base,
    log: (line) => {
      log.push(line);
      onLog?.(line);
    },
    target: { platform: process.platform, arch: process.arch, signingKey: keys.publicKey },
  });
  const signed = async (version: string, mode: "good" | "exits" = "good", name = `${version}-${mode}`) => {
    const out = join(root, `${name}.tar.gz`);
    await writeReleaseBundle(await releaseFiles(version, mode), { version, arch: process.arch }, out, keys.privateKey);
    return out;
  };
  const current = async () => (await readlink(join(root, "opt/paylane/current"))).replace(/^releases\//, "");
  return { root, service, log, updater, signed, current };
}

async function refusal(run: () => Promise<unknown>): Promise<Error> {
  const err = await run().then(
    () => undefined,
    (e: Error) => e,
  );
  if (!err) throw new Error("expected a refusal, the update went through");
  assert.is(err.name, "BundleRefused", err.message);
  return err;
}

test("an older signed bundle is refused (both versions and the flag in one line) unless --allow-downgrade", async () => {
  const k = await signedKiosk();
  const old = await k.signed("1.0.0"); // captured by an attacker: validly signed, with a flaw 1.1.0 fixed
  const v1 = (await k.updater.apply(old)) as { to: string };
  const v2 = (await k.updater.apply(await k.signed("1.1.0"))) as { to: string };
  assert.is(await k.current(), v2.to);
  const starts = k.service.starts.length;

  const err = await refusal(() => k.updater.apply(old));
  assert.is(
    err.message,
    `${old}: version 1.0.0 is older than the current release's 1.1.0: a downgrade can bring back fixed flaws; pass --allow-downgrade to install it anyway`,
  );
  assert.is(await k.current(), v2.to, "still on 1.1.0");
  assert.is(k.service.starts.length, starts, "the daemon was not restarted");

  // Same id: the idempotent no-op, not a downgrade.
  assert.equal(await k.updater.apply(await k.signed("1.1.0", "good", "again")), { outcome: "unchanged", to: v2.to });
  // A pre-release of the same version is older than it (semver), so refused too.
  const rc = await k.signed("1.1.0-rc.1");
  assert.match((await refusal(() => k.updater.apply(rc))).message, /version 1\.1\.0-rc\.1 is older than .* 1\.1\.0/);

  // The rollback command goes to the kept previous release (older, and allowed).
  assert.equal(await k.updater.rollback(), { outcome: "updated", from: v2.to, to: v1.to });
  // And an operator can choose a downgrade on purpose.
  await k.updater.apply(await k.signed("1.1.0"));
  const down = await k.updater.apply(old, undefined, { allowDowngrade: true });
  assert.equal(down, { outcome: "updated", from: v2.to, to: v1.to });
  assert.ok(k.log.includes("downgrading from 1.1.0 to 1.0.0 (--allow-downgrade)"));
  // A version that cannot be compared cannot prove it is not older.
  const odd = await k.signed("nightly");
  assert.match(
    (await refusal(() => k.updater.apply(odd))).message,
    /version nightly cannot be compared with the current release's 1\.0\.0 \(not semver\); pass --allow-downgrade/,
  );
});

test("a bundle swapped after its SHA-256 was checked is not what gets installed", async () => {
  // The bundle sits where the attacker can write (a download folder). The moment the updater starts
  // checking, the attacker renames a self-consistent bundle of their own over it.
  let swap: (() => void) | undefined;
  const k = await signedKiosk();
  // A kiosk without a signing key: --sha256 is the only proof the bundle is the one meant.
  const hashOnly = new Updater({ ...deps(k.root, k.service, new FakeClock(), k.log), log: (l) => k.log.push(l) });
  const withHook = new Updater({
    ...deps(k.root, k.service, new FakeClock(), k.log),
    log: (line) => {
      k.log.push(line);
      if (line.startsWith("checking ")) swap?.();
    },
  });
  await hashOnly.apply(await writeBundle(k.root, "1.0.0", "good", "first"));
  const download = join(await mkdtemp(join(tmpdir(), "paylane-download-")), "paylane-kiosk.tar.gz");
  renameSync(await writeBundle(k.root, "1.1.0", "good", "meant"), download);
  const meant = await sha256File(download);
  const evil = await writeBundle(k.root, "9.9.9", "good", "evil");
  swap = () => {
    renameSync(evil, download);
    swap = undefined;
  };
  const err = await withHook.apply(download, meant).then(
    () => undefined,
    (e: Error) => e,
  );
  const now = await k.current();
  assert.not.match(now, /^9\.9\.9-/, "the attacker's release was installed");
  assert.match(err?.message ?? "", /SHA-256 is [0-9a-f]{64}, expected [0-9a-f]{64}; download it again/);
  await rm(join(download, ".."), { recursive: true, force: true });
});

async function writeBundle(dir: string, version: string, mode: "good", name: string): Promise<string> {
  const out = join(dir, `${name}.tar.gz`);
  await writeReleaseBundle(await releaseFiles(version, mode), { version, arch: process.arch }, out);
  return out;
}

test("setuid, setgid and world-writable modes in a bundle are masked: files 0644 or 0755, folders 0755", async () => {
  const k = await signedKiosk();
  await k.updater.apply(await k.signed("1.0.0"));
  // A validly signed bundle (modes are not in the manifest) whose tar headers carry dangerous modes.
  const work = await mkdtemp(join(tmpdir(), "paylane-modes-"));
  await tar.x({ file: await k.signed("1.1.0"), cwd: work });
  await chmod(join(work, "app/paylane-device.mjs"), 0o6777);
  await chmod(join(work, "app/mode.json"), 0o666);
  await chmod(join(work, "app/dist"), 0o777);
  const out = join(k.root, "modes.tar.gz");
  await tar.c({ gzip: true, file: out, cwd: work, portable: true }, [
    MANIFEST_NAME,
    "paylane-release.sig",
    "package.json",
    "package-lock.json",
    "app",
  ]);
  await rm(work, { recursive: true, force: true });
  const o = (await k.updater.apply(out)) as { outcome: string; to: string };
  assert.is(o.outcome, "updated");
  const release = join(k.root, "opt/paylane/releases", o.to);
  const mode = async (p: string) => ((await stat(join(release, p))).mode & 0o7777).toString(8);
  assert.is(await mode("app/paylane-device.mjs"), "755");
  assert.is(await mode("app/mode.json"), "644");
  assert.is(await mode("app/dist"), "755");
  assert.is(await mode("."), "755");
});

test("npm ci runs no dependency's install script; only the native packages' builds run (npm rebuild)", async () => {
  const dir = await mkdtemp(join(tmpdir(), "paylane-npmci-"));
  const markers = await mkdtemp(join(tmpdir(), "paylane-npmci-markers-"));
  roots.push({ root: dir, service: new FakeService(dir) }, { root: markers, service: new FakeService(markers) });
  // Two local packages packed as tarballs: a dependency with a postinstall that would run as root, and a
  // stand-in for epoll whose install script is its native build.
  const pack = async (name: string, script: string) => {
    const src = join(dir, "src", name);
    await mkdir(src, { recursive: true });
    await writeFile(
      join(src, "package.json"),
      JSON.stringify({
        name,
        version: "1.0.0",
        scripts: { [script]: `node -e "require('fs').writeFileSync(process.env.MARKERS + '/${name}', 'ran')"` },
      }),
    );
    await writeFile(join(src, "index.js"), "module.exports = 1;\n");
    const { stdout } = await exec("npm", ["pack", "--silent", "--pack-destination", join(dir, "vendor")], { cwd: src });
    return `file:vendor/${stdout.trim()}`;
  };
  await mkdir(join(dir, "vendor"));
  const evil = await pack("left-pad-evil", "postinstall");
  const epoll = await pack("epoll", "install");
  await writeFile(
    join(dir, "package.json"),
    JSON.stringify({ name: "paylane-kiosk", version: "1.0.0", dependencies: { "left-pad-evil": evil, epoll } }),
  );
  const env = { ...process.env, MARKERS: markers };
  await exec("npm", ["install", "--package-lock-only", "--ignore-scripts", "--no-audit", "--no-fund"], {
    cwd: dir,
    env,
  });
  await rm(join(dir, "src"), { recursive: true, force: true });

  const saved = process.env.MARKERS;
  process.env.MARKERS = markers;
  try {
    await npmCi(dir);
  } finally {
    process.env.MARKERS = saved;
  }
  assert.ok(existsSync(join(dir, "node_modules/left-pad-evil/index.js")), "the dependency is installed");
  assert.not.ok(existsSync(join(markers, "left-pad-evil")), "its postinstall ran as root");
  assert.ok(existsSync(join(markers, "epoll")), "the native package's build ran (npm rebuild epoll)");
});

test.run();
