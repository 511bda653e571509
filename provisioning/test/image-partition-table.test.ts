/**
 * The partition table read in code: the same offsets sfdisk reports, for MBR
 * and GPT; a GPT image (an EFI system partition) builds like an MBR one;
 * damaged tables are refused with what is wrong.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { buildImage } from "../src/image/build.ts";
import { bootPartition, readPartitionTable } from "../src/image/partition-table.ts";
import { makeBaseImage, readBootFile } from "./support/base-image.ts";

const dir = mkdtempSync(join(tmpdir(), "paylane-partition-table-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const ESP = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
const LINUX = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";

function sfdiskOffsets(path: string) {
  const { partitiontable } = JSON.parse(execFileSync("sfdisk", ["--json", path], { encoding: "utf8" })) as {
    partitiontable: { partitions: { start: number; size: number; type: string }[] };
  };
  return partitiontable.partitions.map((p) => ({ start: p.start * 512, bytes: p.size * 512, type: p.type }));
}

test("MBR: the offsets and types sfdisk reports", () => {
  const image = makeBaseImage({ dir, name: "mbr.img", ext4: false });
  const table = readPartitionTable(readFileSync(image.path), image.bytes, "mbr.img");
  assert.is(table.scheme, "mbr");
  const fromSfdisk = sfdiskOffsets(image.path);
  assert.equal(
    table.partitions.map((p) => ({ start: p.start, bytes: p.bytes })),
    fromSfdisk.map(({ start, bytes }) => ({ start, bytes })),
  );
  assert.equal(
    table.partitions.map((p) => p.type),
    ["0x0c", "0x83"],
  );
  assert.is(bootPartition(table, "mbr.img").number, 1);
});

test("GPT: an EFI system partition is the FAT boot partition, and an image on it builds", async () => {
  const path = join(dir, "gpt.img");
  const bytes = (8192 + 81920 + 16384 + 2048) * 512;
  execFileSync("truncate", ["-s", String(bytes), path]);
  const script = `label: gpt\nunit: sectors\n\nstart=8192, size=81920, type=${ESP}\nstart=90112, size=16384, type=${LINUX}\n`;
  execFileSync("sfdisk", ["--quiet", "--no-reread", "--no-tell-kernel", path], { input: script });
  execFileSync("mkfs.vfat", ["-F", "32", "-s", "1", "--offset", "8192", path, "40960"], { stdio: "ignore" });
  writeFileSync(join(dir, "cmdline.txt"), "console=tty1 root=PARTUUID=x rootwait\n");
  execFileSync("mcopy", ["-i", `${path}@@${8192 * 512}`, join(dir, "cmdline.txt"), "::/cmdline.txt"], {
    env: { ...process.env, MTOOLS_SKIP_CHECK: "1" },
  });

  const table = readPartitionTable(readFileSync(path), bytes, "gpt.img");
  assert.is(table.scheme, "gpt");
  assert.equal(
    table.partitions.map((p) => [p.number, p.type, p.start, p.bytes, p.fat]),
    [
      [1, ESP, 8192 * 512, 81920 * 512, true],
      [2, LINUX, 90112 * 512, 16384 * 512, false],
    ],
  );
  const out = join(dir, "gpt-kiosk.img");
  const result = await buildImage({
    base: path,
    out,
    contents: {
      files: [{ path: "firstrun.sh", content: "#!/bin/sh\n" }],
      editCmdline: (c) => `${c.trim()} x=1\n`,
      versions: {},
    },
  });
  assert.is(result.manifest.partitionTable.scheme, "gpt");
  assert.is(readBootFile(out, "firstrun.sh").toString(), "#!/bin/sh\n");
  assert.is(readBootFile(out, "cmdline.txt").toString(), "console=tty1 root=PARTUUID=x rootwait x=1\n");
  assert.equal(sfdiskOffsets(out), sfdiskOffsets(path));
});

function mbr(entries: { type: number; start: number; sectors: number }[]): Buffer {
  const head = Buffer.alloc(64 * 1024);
  entries.forEach((e, i) => {
    const at = 446 + i * 16;
    head[at + 4] = e.type;
    head.writeUInt32LE(e.start, at + 8);
    head.writeUInt32LE(e.sectors, at + 12);
  });
  head.writeUInt16LE(0xaa55, 510);
  return head;
}

test("damaged tables: what is wrong, in one line", () => {
  const refusal = (fn: () => unknown) => {
    try {
      fn();
    } catch (err) {
      return (err as Error).message;
    }
    return "accepted";
  };
  assert.match(
    refusal(() => readPartitionTable(mbr([]), 1e6, "x.img")),
    "x.img is not a disk image: its partition table is empty",
  );
  assert.match(
    refusal(() => readPartitionTable(mbr([{ type: 0xee, start: 1, sectors: 1000 }]), 1e6, "x.img")),
    "its protective MBR points to a GPT header that is missing",
  );
  assert.match(
    refusal(() => readPartitionTable(mbr([{ type: 0x0c, start: 0, sectors: 100 }]), 1e6, "x.img")),
    "partition 1 starts inside the partition table",
  );
  assert.match(
    refusal(() => readPartitionTable(Buffer.alloc(100), 100, "tiny.img")),
    "tiny.img is not a disk image: it has no partition table",
  );
  // An extended partition is a container, not checked against the end; its primaries still are.
  const withExtended = mbr([
    { type: 0x0c, start: 8192, sectors: 8192 },
    { type: 0x05, start: 16384, sectors: 1 << 30 },
  ]);
  const table = readPartitionTable(withExtended, 16384 * 512, "ext.img");
  assert.is(table.partitions.length, 2);
});

test.run();
