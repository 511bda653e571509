/**
 * image build refuses what it cannot make a kiosk image of, each time with
 * one line that names the problem, and leaves no partial output behind.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { buildImage } from "../src/image/build.ts";
import type { KioskImageContents } from "../src/kiosk-image/contents.ts";
import { makeBaseImage, xz } from "./support/base-image.ts";

const root = mkdtempSync(join(tmpdir(), "paylane-image-refusals-"));
test.after(() => rmSync(root, { recursive: true, force: true }));

const contents = (extra: KioskImageContents["files"] = []): KioskImageContents => ({
  files: [{ path: "paylane/kiosk.json", content: "{}\n" }, ...extra],
  editCmdline: (c) => `${c.trimEnd()} systemd.run=/boot/firstrun.sh\n`,
  versions: {},
});

const base = makeBaseImage({ dir: root });
let n = 0;
/** A fresh, empty output folder: after a refusal it must still be empty. */
const outDir = () => {
  const d = join(root, `out${n++}`);
  mkdirSync(d);
  return d;
};

async function refused(build: () => Promise<unknown>, pattern: RegExp): Promise<string> {
  try {
    await build();
  } catch (err) {
    const message = (err as Error).message;
    assert.not.match(message, /\n/, "one line");
    assert.match(message, pattern);
    return message;
  }
  assert.unreachable(`expected a refusal matching ${pattern}`);
  return "";
}

test("a base image that does not exist", async () => {
  const out = outDir();
  await refused(
    () => buildImage({ base: join(root, "nope.img"), out: join(out, "k.img"), contents: contents() }),
    /^base image .*nope\.img not found$/,
  );
  assert.equal(readdirSync(out), []);
});

test("a file that is not a disk image (no MBR signature)", async () => {
  const junk = join(root, "junk.img");
  writeFileSync(junk, Buffer.alloc(1024 * 1024, 0x41));
  const out = outDir();
  await refused(
    () => buildImage({ base: junk, out: join(out, "k.img"), contents: contents() }),
    /is not a disk image: it has no partition table \(no MBR signature 0x55AA\)/,
  );
  assert.equal(readdirSync(out), []);
});

test("a truncated base image (a partition ends past the end of the file), raw or xz", async () => {
  const cut = join(root, "cut.img");
  writeFileSync(cut, readFileSync(base.path).subarray(0, 20 * 1024 * 1024));
  const out = outDir();
  await refused(
    () => buildImage({ base: cut, out: join(out, "k.img"), contents: contents() }),
    /cut\.img is truncated: partition 1 ends at byte \d+ but the image has 20971520 bytes/,
  );
  await refused(
    () => buildImage({ base: xz(cut), out: join(out, "k.img"), contents: contents() }),
    /is truncated: partition 1 ends/,
  );
  assert.equal(readdirSync(out), []);
});

test("a corrupt xz file, cut short or garbled", async () => {
  const good = xz(base.path);
  const bytes = readFileSync(good);
  const short = join(root, "short.img.xz");
  writeFileSync(short, bytes.subarray(0, Math.floor(bytes.length / 2)));
  const garbled = join(root, "garbled.img.xz");
  const g = Buffer.from(bytes);
  for (let i = 200; i < g.length - 200; i += 97) g[i] = (g[i]! ^ 0x5a) & 0xff;
  writeFileSync(garbled, g);
  const out = outDir();
  await refused(
    () => buildImage({ base: short, out: join(out, "k.img"), contents: contents() }),
    /short\.img\.xz is a corrupt xz file: .+\(download it again\)$/,
  );
  await refused(
    () => buildImage({ base: garbled, out: join(out, "k.img"), contents: contents() }),
    /garbled\.img\.xz is (a corrupt xz file|not a disk image|truncated)/,
  );
  assert.equal(readdirSync(out), []);
});

test("a base without a FAT boot partition", async () => {
  const d = join(root, "nofat");
  mkdirSync(d);
  const linuxOnly = makeBaseImage({ dir: d, fat: false, ext4: false });
  const out = outDir();
  await refused(
    () => buildImage({ base: linuxOnly.path, out: join(out, "k.img"), contents: contents() }),
    /has no FAT boot partition \(partitions 1: 0x83, 2: 0x83;/,
  );
  assert.equal(readdirSync(out), []);
});

test("a boot partition too small for the kiosk files: how much is free, how much is needed", async () => {
  const out = outDir();
  const big = Buffer.alloc(45 * 1024 * 1024, 1);
  const message = await refused(
    () =>
      buildImage({ base: base.path, out: join(out, "k.img"), contents: contents([{ path: "big.bin", content: big }]) }),
    /^the boot partition has (\d+) MiB free; the kiosk files need (\d+) MiB/,
  );
  const [, free, need] = /has (\d+) MiB free; .* need (\d+) MiB/.exec(message)!;
  assert.ok(Number(free) >= 38 && Number(free) <= 40, message);
  assert.is(Number(need), 45);
  assert.equal(readdirSync(out), [], "the partial image is deleted");
});

test("a boot file path FAT cannot hold (or mtools would mangle) is refused, naming it", async () => {
  for (const path of ["../etc/passwd", "/abs", "a//b", "what?.txt", "café.txt"]) {
    const out = outDir();
    await refused(
      () => buildImage({ base: base.path, out: join(out, "k.img"), contents: contents([{ path, content: "x" }]) }),
      /^boot file path ".*" is not a plain relative FAT path$/,
    );
    assert.equal(readdirSync(out), []);
  }
});

test("the output is the base image itself: refused before anything is written", async () => {
  const before = readFileSync(base.path);
  await refused(
    () => buildImage({ base: base.path, out: base.path, contents: contents() }),
    /is the base image itself: write the kiosk image to another file/,
  );
  await refused(
    () => buildImage({ base: base.path, out: join(root, ".", "raspios.img"), contents: contents() }),
    /is the base image itself/,
  );
  assert.ok(readFileSync(base.path).equals(before));
});

test("an output in /dev that does not exist (a disk meant for flash) is refused, not created in RAM", async () => {
  await refused(
    () => buildImage({ base: base.path, out: "/dev/sdz-paylane-test", contents: contents() }),
    /^\/dev\/sdz-paylane-test is in \/dev, where a file would fill memory: build to a file, then write it with paylane-provision flash$/,
  );
});

test("a full disk (/dev/full answers every write with ENOSPC): where, and how much is needed", async () => {
  await refused(
    () => buildImage({ base: base.path, out: "/dev/full", contents: contents() }),
    /^no space left on \/dev writing the image: needs 52 MiB$/,
  );
});

test("a file size limit (ulimit -f) stops the write: said so, and the partial image is deleted", () => {
  const out = outDir();
  const script = [
    `import { buildImage } from ${JSON.stringify(join(import.meta.dirname, "../src/image/build.ts"))};`,
    `await buildImage({ base: ${JSON.stringify(base.path)}, out: ${JSON.stringify(join(out, "k.img"))},`,
    "  contents: { files: [], editCmdline: (c) => c, versions: {} } })",
    "  .catch((err) => { process.stderr.write(err.message + '\\n'); process.exitCode = 1; });",
  ].join("\n");
  const scriptPath = join(root, "limited.mts");
  writeFileSync(scriptPath, script);
  // 10 MiB in 1 KiB blocks: the 52 MiB image cannot fit.
  const r = spawnSync("sh", ["-c", 'ulimit -f 10240 && exec "$0" --import tsx "$1"', process.execPath, scriptPath], {
    encoding: "utf8",
  });
  assert.is(r.status, 1, r.stderr);
  assert.match(r.stderr, /^the file size limit \(ulimit -f\) stopped writing the image to .*: it needs 52 MiB\n$/);
  assert.equal(readdirSync(out), []);
});

test("Ctrl-C in the middle of a build deletes the partial image and the staged kiosk files", () => {
  const out = outDir();
  const staging = outDir();
  const script = [
    `import { buildImage } from ${JSON.stringify(join(import.meta.dirname, "../src/image/build.ts"))};`,
    `import { deletePartialOutputOnInterrupt } from ${JSON.stringify(join(import.meta.dirname, "../src/cli/image.ts"))};`,
    "deletePartialOutputOnInterrupt();",
    // The Ctrl-C arrives once the kiosk files are being written: the image and the staging folder both exist.
    "const progress = { phase: (label) => ({ advance() { if (label === 'writing files') process.kill(process.pid, 'SIGINT'); }, finish() {}, abort() {} }) };",
    `await buildImage({ base: ${JSON.stringify(base.path)}, out: ${JSON.stringify(join(out, "k.img"))}, progress,`,
    "  contents: { files: [{ path: 'a.txt', content: 'a' }, { path: 'paylane/claim', content: '12345' }], editCmdline: (c) => c, versions: {} } });",
    "process.stdout.write('finished\\n');",
  ].join("\n");
  const scriptPath = join(root, "interrupted.mts");
  writeFileSync(scriptPath, script);
  const r = spawnSync(process.execPath, ["--import", "tsx", scriptPath], {
    encoding: "utf8",
    env: { ...process.env, TMPDIR: staging },
  });
  assert.is(r.status, 130, r.stderr);
  assert.match(r.stderr, /paylane-provision: interrupted \(SIGINT\); the partial image was deleted\n$/);
  assert.is(r.stdout, "");
  assert.equal(readdirSync(out), []);
  const left = readdirSync(staging).filter((f) => f.startsWith("paylane-"));
  assert.equal(left, [], "the staged files (a claim code among them) are gone");
});

test.run();
