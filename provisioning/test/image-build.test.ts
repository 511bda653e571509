/**
 * image build on a synthetic Raspberry Pi OS-shaped image: the boot
 * partition read back with mtools holds every file with its content,
 * cmdline.txt is edited, the partition table and the root partition are
 * untouched, xz in and out both work, and the hashes agree with the manifest
 * and the files.
 */
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { buildImage } from "../src/image/build.ts";
import type { Manifest } from "../src/image/manifest.ts";
import type { KioskImageContents } from "../src/kiosk-image/contents.ts";
import {
  BOOT_START_SECTOR,
  CMDLINE,
  listBoot,
  makeBaseImage,
  readBootFile,
  SECTOR,
  sfdiskJson,
  unxz,
  xz,
} from "./support/base-image.ts";

const dir = mkdtempSync(join(tmpdir(), "paylane-image-build-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");
const binary = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7919) % 256));
const HOOK = " systemd.run=/boot/firstrun.sh systemd.run_success_action=reboot";

const contents = (): KioskImageContents => ({
  files: [
    { path: "firstrun.sh", content: "#!/bin/bash\necho first boot\n" },
    { path: "paylane/kiosk.json", content: '{"site":"demo"}\n' },
    { path: "paylane/bundle/daemon.js", content: binary },
    { path: "paylane/systemd/paylane-device.service", content: "[Service]\nRestart=always\n" },
    { path: "config.txt", content: "# kiosk config\ndtoverlay=vc4-kms-v3d\n" },
  ],
  editCmdline: (c) => (c.includes(HOOK) ? c : `${c.trimEnd()}${HOOK}\n`),
  versions: { daemon: "1.0.0", node: "v20" },
});

const base = makeBaseImage({ dir });
const baseBytes = readFileSync(base.path);
const rootStart = BOOT_START_SECTOR * SECTOR + 40 * 1024 * 1024;

test("a raw base becomes a raw kiosk image: every file in the boot partition, cmdline edited, the rest untouched", async () => {
  const out = join(dir, "kiosk.img");
  const result = await buildImage({ base: base.path, out, contents: contents(), options: { site: "demo" } });

  for (const f of contents().files) {
    const back = readBootFile(out, f.path);
    assert.ok(back.equals(Buffer.from(f.content)), `${f.path} read back differs`);
  }
  assert.is(readBootFile(out, "cmdline.txt").toString(), `${CMDLINE.trimEnd()}${HOOK}\n`);
  const listing = listBoot(out);
  for (const path of ["firstrun.sh", "paylane/", "paylane/bundle/daemon.js", "config.txt", "cmdline.txt"]) {
    assert.ok(listing.includes(path), `${path} missing from ${listing.join(", ")}`);
  }

  assert.equal(sfdiskJson(out), sfdiskJson(base.path), "partition table changed");
  const built = readFileSync(out);
  assert.is(built.length, baseBytes.length);
  assert.ok(built.subarray(0, BOOT_START_SECTOR * SECTOR).equals(baseBytes.subarray(0, BOOT_START_SECTOR * SECTOR)));
  assert.ok(built.subarray(rootStart).equals(baseBytes.subarray(rootStart)), "the root partition changed");

  const manifest = JSON.parse(readFileSync(`${out}.manifest.json`, "utf8")) as Manifest;
  assert.is(result.sha256, sha256(built));
  assert.is(manifest.output.sha256, result.sha256);
  assert.is(manifest.output.raw.sha256, result.sha256);
  assert.is(manifest.output.compressed, false);
  assert.is(manifest.base.sha256, sha256(baseBytes));
  assert.is(manifest.base.bytes, baseBytes.length);
  assert.equal(manifest.partitionTable.partitions, [
    { number: 1, type: "0x0c", start: 4 * 1024 * 1024, bytes: 40 * 1024 * 1024 },
    { number: 2, type: "0x83", start: rootStart, bytes: 8 * 1024 * 1024 },
  ]);
  assert.is(manifest.partitionTable.boot, 1);
  const daemon = manifest.files.find((f) => f.path === "paylane/bundle/daemon.js");
  assert.equal(daemon, { path: "paylane/bundle/daemon.js", bytes: binary.length, sha256: sha256(binary) });
  assert.ok(manifest.files.some((f) => f.path === "cmdline.txt"));
  assert.equal(manifest.versions, { daemon: "1.0.0", node: "v20" });
  assert.equal(manifest.options, { site: "demo" });
  assert.is(manifest.cmdline.before, CMDLINE);
});

test("an xz base becomes an xz kiosk image, told apart by magic bytes, not by name", async () => {
  const compressed = xz(base.path);
  // A name that says nothing about xz: the magic bytes decide.
  const renamed = join(dir, "download.img");
  renameSync(compressed, renamed);
  const out = join(dir, "kiosk-xz.img.xz");
  const result = await buildImage({ base: renamed, out, contents: contents() });

  const files = readdirSync(dir).filter((f) => f.startsWith("kiosk-xz"));
  assert.equal(files.sort(), ["kiosk-xz.img.xz", "kiosk-xz.img.xz.manifest.json"], "no raw leftovers");
  const raw = unxz(out, join(dir, "kiosk-xz.raw"));
  const rawBytes = readFileSync(raw);
  assert.is(readBootFile(raw, "paylane/kiosk.json").toString(), '{"site":"demo"}\n');
  assert.ok(readBootFile(raw, "cmdline.txt").toString().includes(HOOK));
  assert.equal(sfdiskJson(raw), sfdiskJson(base.path));

  const manifest = JSON.parse(readFileSync(`${out}.manifest.json`, "utf8")) as Manifest;
  assert.is(manifest.base.compressed, true);
  assert.is(manifest.base.sha256, sha256(readFileSync(renamed)));
  assert.is(manifest.base.rawBytes, baseBytes.length);
  assert.is(manifest.output.compressed, true);
  assert.is(manifest.output.sha256, sha256(readFileSync(out)));
  assert.is(result.sha256, manifest.output.sha256);
  assert.is(manifest.output.raw.sha256, sha256(rawBytes));
  assert.is(result.raw.sha256, sha256(rawBytes));
});

test("building again from a kiosk image is idempotent for cmdline.txt (the hook is added once)", async () => {
  const first = join(dir, "kiosk.img"); // built by the first test
  const second = join(dir, "second.img");
  await buildImage({ base: first, out: second, contents: contents() });
  assert.is(readBootFile(second, "cmdline.txt").toString(), `${CMDLINE.trimEnd()}${HOOK}\n`);
});

test("the manifest never holds a secret, nor a hash of a file that holds one", async () => {
  const claim = "12345-67890-12345-67890";
  const wifi = "correct horse battery";
  const out = join(dir, "secret.img");
  await buildImage({
    base: base.path,
    out,
    contents: {
      files: [
        { path: "paylane/claim", content: `${claim}\n` },
        { path: "paylane/wifi.nmconnection", content: `[wifi-security]\npsk=${wifi}\n` },
        { path: "paylane/plain.txt", content: "nothing secret\n" },
      ],
      editCmdline: (c) => c,
      versions: {},
    },
    options: { site: "demo", claim: true, wifi: { ssid: "venue", country: "GB" } },
    secrets: [claim, wifi],
  });
  const text = readFileSync(`${out}.manifest.json`, "utf8");
  assert.not.match(text, claim);
  assert.not.match(text, wifi);
  const manifest = JSON.parse(text) as Manifest;
  assert.equal(
    manifest.files.find((f) => f.path === "paylane/claim"),
    {
      path: "paylane/claim",
      bytes: claim.length + 1,
      secret: true,
    },
  );
  assert.ok(manifest.files.find((f) => f.path === "paylane/plain.txt")?.sha256);
  assert.is(readBootFile(out, "paylane/claim").toString(), `${claim}\n`, "the image itself holds it");
});

test.run();
