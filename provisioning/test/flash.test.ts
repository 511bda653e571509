/**
 * flash to a file target: the image (raw or xz) lands byte for byte and is
 * verified by reading it back; one bit flipped between writing and
 * verifying is caught and located.
 */
import { spawn } from "node:child_process";
import { createHash, randomFillSync } from "node:crypto";
import {
  closeSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { flashImage } from "../src/flash/flash.ts";
import { xz } from "./support/base-image.ts";

const dir = mkdtempSync(join(tmpdir(), "paylane-flash-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));

/**
 * Flash copies bytes and needs only a partition table, so a small image will
 * do: an MBR with one FAT-typed partition, noise and zeros after it (so xz
 * has work to do and a flipped bit lands in real data).
 */
function smallImage(path: string): { path: string } {
  const bytes = Buffer.alloc(12 * 1024 * 1024);
  bytes[446 + 4] = 0x0c;
  bytes.writeUInt32LE(2048, 446 + 8);
  bytes.writeUInt32LE(bytes.length / 512 - 2048, 446 + 12);
  bytes.writeUInt16LE(0xaa55, 510);
  randomFillSync(bytes, 1024 * 1024, 6 * 1024 * 1024);
  writeFileSync(path, bytes);
  return { path };
}

const image = smallImage(join(dir, "kiosk.img"));
const imageBytes = readFileSync(image.path);
const imageSha = createHash("sha256").update(imageBytes).digest("hex");
const compressed = xz(image.path);

function flipBit(path: string, offset: number) {
  const fd = openSync(path, "r+");
  const b = Buffer.alloc(1);
  readSync(fd, b, 0, 1, offset);
  b[0] = b[0]! ^ 0x10;
  writeSync(fd, b, 0, 1, offset);
  closeSync(fd);
}

test("a raw image to a new file: written, read back, verified", async () => {
  const target = join(dir, "card-raw");
  const result = await flashImage({ image: image.path, device: target });
  assert.is(result.target.kind, "file");
  assert.is(result.bytes, imageBytes.length);
  assert.is(result.sha256, imageSha);
  assert.ok(readFileSync(target).equals(imageBytes));
});

test("an xz image to an existing bigger file: overwritten to exactly the image", async () => {
  const target = join(dir, "card-xz");
  writeFileSync(target, Buffer.alloc(imageBytes.length + 12345, 0xee), { mode: 0o644 });
  const result = await flashImage({ image: compressed, device: target });
  assert.is(result.sha256, imageSha, "the hash is the raw image's, whatever the file was compressed with");
  assert.is(statSync(target).size, imageBytes.length);
  assert.is(statSync(target).mode & 0o777, 0o600, "a copy of an image (claim code, Wi-Fi key) is the owner's only");
  assert.ok(readFileSync(target).equals(imageBytes));
});

test("a bit flipped after writing fails verification, naming the byte", async () => {
  const target = join(dir, "card-flip");
  const offset = 5_000_123;
  try {
    await flashImage({ image: image.path, device: target, afterWrite: () => flipBit(target, offset) });
    assert.unreachable("verification passed on a changed target");
  } catch (err) {
    const message = (err as Error).message;
    assert.match(message, /^verification failed: .*card-flip differs from the image at byte 5000123 \(sha256 written/);
    assert.not.match(message, /\n/);
  }
});

test("from an xz image too: the difference is located by decompressing again", async () => {
  const target = join(dir, "card-flip-xz");
  const offset = 11 * 1024 * 1024 + 3;
  try {
    await flashImage({ image: compressed, device: target, afterWrite: () => flipBit(target, offset) });
    assert.unreachable("verification passed on a changed target");
  } catch (err) {
    assert.match((err as Error).message, `differs from the image at byte ${offset} `);
  }
});

test("a target that gives back less than was written fails verification", async () => {
  const target = join(dir, "card-short");
  try {
    await flashImage({
      image: image.path,
      device: target,
      afterWrite: () => writeFileSync(target, imageBytes.subarray(0, 1000)),
    });
    assert.unreachable("verification passed on a truncated target");
  } catch (err) {
    assert.match((err as Error).message, /gave back 1000 of the \d+ bytes written/);
  }
});

test("what is not a disk image is refused before the target is touched", async () => {
  const manifest = join(dir, "kiosk.img.manifest.json");
  writeFileSync(manifest, "{}\n");
  const target = join(dir, "card-untouched");
  try {
    await flashImage({ image: manifest, device: target });
    assert.unreachable();
  } catch (err) {
    assert.match((err as Error).message, /is not a disk image/);
  }
  assert.throws(() => statSync(target));
  try {
    await flashImage({ image: image.path, device: image.path });
    assert.unreachable();
  } catch (err) {
    assert.match((err as Error).message, /is the image itself/);
  }
});

test("an image with its manifest beside it must match it: a changed image is named as such", async () => {
  const d = mkdtempSync(join(dir, "manifest-"));
  const img = join(d, "kiosk.img");
  writeFileSync(img, imageBytes);
  writeFileSync(`${img}.manifest.json`, JSON.stringify({ output: { sha256: imageSha } }));
  const ok = await flashImage({ image: img, device: join(d, "card") });
  assert.is(ok.manifest, `${img}.manifest.json`);
  const noManifest = await flashImage({ image: image.path, device: join(d, "card2") });
  assert.is(noManifest.manifest, null);

  writeFileSync(`${img}.manifest.json`, JSON.stringify({ output: { sha256: "0".repeat(64) } }));
  try {
    await flashImage({ image: img, device: join(d, "card3") });
    assert.unreachable("a changed image passed");
  } catch (err) {
    assert.match(
      (err as Error).message,
      /kiosk\.img does not match its manifest \(sha256 [0-9a-f]{12}…, recorded 000000000000…\): it changed or was damaged/,
    );
  }
});

function cli(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", join(import.meta.dirname, "../src/main.ts"), ...args], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

test("paylane-provision flash as a child process: --help, a verified write with its output, a refusal in one line", async () => {
  const d = mkdtempSync(join(dir, "cli-"));
  const img = join(d, "kiosk.img.xz");
  writeFileSync(img, readFileSync(compressed));
  writeFileSync(
    `${img}.manifest.json`,
    JSON.stringify({ output: { sha256: createHash("sha256").update(readFileSync(img)).digest("hex") } }),
  );
  const card = join(d, "card.raw");
  const [help, ok, refused] = await Promise.all([
    cli("flash", "--help"),
    cli("flash", "--image", img, "--device", card),
    cli("flash", "--image", img, "--device", "/dev/sdz-paylane-test"),
  ]);
  assert.is(help.code, 0);
  for (const flag of ["--image", "--device", "--force", "Examples:"]) assert.match(help.stdout, flag);

  assert.is(ok.code, 0, ok.stderr);
  assert.is(
    ok.stdout,
    `wrote and verified 12 MiB on ${card}\nsha256 ${imageSha}  (raw image)\nthe image matches ${img}.manifest.json\n`,
  );
  // Not a TTY: a line a phase, no bar.
  assert.match(ok.stderr, /^writing: 12 MiB in [\d.]+ s\nverifying: 12 MiB in [\d.]+ s\n$/);
  assert.ok(readFileSync(card).equals(imageBytes));

  assert.is(refused.code, 1);
  assert.is(
    refused.stderr,
    "paylane-provision: /dev/sdz-paylane-test is not a disk (no such device): is the card inserted? lsblk lists the disks\n",
  );
});

test.run();
