/**
 * Which disks flash refuses, decided from the kernel's view (mountinfo and
 * /sys) given as fixture trees: the system disk, a disk with a mounted
 * partition, a partition, a card too small, a non-removable disk without
 * --force. The fixture is laid out as Linux lays out /sys: /sys/dev/block/
 * <maj:min> links into /sys/devices/…/block/<disk>[/<partition>].
 */
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { describeIoError, flashImage } from "../src/flash/flash.ts";
import type { SystemView } from "../src/flash/system.ts";
import { checkTarget } from "../src/flash/target.ts";
import { makeBaseImage } from "./support/base-image.ts";

const root = mkdtempSync(join(tmpdir(), "paylane-flash-target-"));
test.after(() => rmSync(root, { recursive: true, force: true }));

const sys = join(root, "sys");
const devices: Record<string, { major: number; minor: number }> = {};

/** A disk in the fixture /sys, with its partitions; `bus` is the folder chain it hangs off. */
function disk(
  name: string,
  major: number,
  minor: number,
  o: { sectors: number; removable: 0 | 1; bus: string; parts: number },
) {
  const diskDir = join(sys, "devices", o.bus, "block", name);
  mkdirSync(diskDir, { recursive: true });
  writeFileSync(join(diskDir, "size"), `${o.sectors}\n`);
  writeFileSync(join(diskDir, "removable"), `${o.removable}\n`);
  const link = (id: string, to: string) => {
    const at = join(sys, "dev", "block", id);
    mkdirSync(dirname(at), { recursive: true });
    symlinkSync(relative(dirname(at), to), at);
  };
  link(`${major}:${minor}`, diskDir);
  devices[`/dev/${name}`] = { major, minor };
  for (let p = 1; p <= o.parts; p++) {
    const partName = name.startsWith("mmcblk") ? `${name}p${p}` : `${name}${p}`;
    const partDir = join(diskDir, partName);
    mkdirSync(partDir);
    writeFileSync(join(partDir, "partition"), `${p}\n`);
    writeFileSync(join(partDir, "size"), "1000\n");
    link(`${major}:${minor + p}`, partDir);
    devices[`/dev/${partName}`] = { major, minor: minor + p };
  }
}

// An internal SATA disk holding /, a USB card reader, an internal MMC slot, a second internal disk.
disk("sda", 8, 0, {
  sectors: 500_000_000,
  removable: 0,
  bus: "pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0",
  parts: 2,
});
disk("sdb", 8, 16, {
  sectors: 62_333_952,
  removable: 1,
  bus: "pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.0/host6/target6:0:0/6:0:0:0",
  parts: 2,
});
disk("mmcblk0", 179, 0, {
  sectors: 7_626_752,
  removable: 0,
  bus: "pci0000:00/0000:00:14.5/mmc_host/mmc0/mmc0:aaaa",
  parts: 1,
});
disk("sdc", 8, 32, {
  sectors: 900_000_000,
  removable: 0,
  bus: "pci0000:00/0000:00:17.0/ata2/host1/target1:0:0/1:0:0:0",
  parts: 0,
});

const ROOT_MOUNT = "22 1 8:2 / / rw,relatime shared:1 - ext4 /dev/sda2 rw,errors=remount-ro";
const BOOT_MOUNT = "23 22 8:1 / /boot/efi rw,relatime shared:2 - vfat /dev/sda1 rw";
const PROC = "24 22 0:22 / /proc rw,nosuid - proc proc rw";
const CARD_MOUNT = "61 22 8:17 / /media/ann/bootfs rw,nosuid,nodev shared:300 - vfat /dev/sdb1 rw,uid=1000";

function view(...lines: string[]): SystemView {
  const mountinfo = join(root, `mountinfo-${lines.length}-${Math.random().toString(36).slice(2)}`);
  writeFileSync(mountinfo, `${lines.join("\n")}\n`);
  return { mountinfo, sysRoot: sys, blockDevice: async (path) => devices[path] ?? null };
}

async function refusal(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    const message = (err as Error).message;
    assert.not.match(message, /\n/);
    return message;
  }
  assert.unreachable("expected a refusal");
  return "";
}

const GB = 1e9;

test("the disk holding / is refused, --force or not", async () => {
  const message = await refusal(checkTarget("/dev/sda", GB, view(ROOT_MOUNT, BOOT_MOUNT, PROC), true));
  assert.is(message, "/dev/sda is the system disk (it holds /, from /dev/sda2): refusing to overwrite it");
});

test("a root on LVM / LUKS (device-mapper) still leads to its disk through the slaves", async () => {
  const dm = join(sys, "devices", "virtual", "block", "dm-0");
  mkdirSync(join(dm, "slaves"), { recursive: true });
  writeFileSync(join(dm, "size"), "1000\n");
  const sdaPart2 = join(
    sys,
    "devices",
    "pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0",
    "block",
    "sda",
    "sda2",
  );
  symlinkSync(relative(join(dm, "slaves"), sdaPart2), join(dm, "slaves", "sda2"));
  symlinkSync(relative(join(sys, "dev", "block"), dm), join(sys, "dev", "block", "253:0"));
  const message = await refusal(
    checkTarget("/dev/sda", GB, view("22 1 253:0 / / rw - ext4 /dev/mapper/vg-root rw"), false),
  );
  assert.match(message, /^\/dev\/sda is the system disk \(it holds \/, from \/dev\/mapper\/vg-root\)/);
});

test("a card with a mounted partition is refused, naming the mount and how to unmount it", async () => {
  const message = await refusal(checkTarget("/dev/sdb", GB, view(ROOT_MOUNT, CARD_MOUNT), false));
  assert.is(
    message,
    "/dev/sdb has mounted file systems (/dev/sdb1 on /media/ann/bootfs): unmount them first (e.g. udisksctl unmount -b /dev/sdb1)",
  );
});

test("a partition is refused: flash the whole disk", async () => {
  const message = await refusal(checkTarget("/dev/sdb1", GB, view(ROOT_MOUNT), false));
  assert.is(message, "/dev/sdb1 is a partition of /dev/sdb: flash the whole disk (/dev/sdb)");
});

test("a card smaller than the image: both sizes, as printed on cards", async () => {
  // mmcblk0 is 7,626,752 sectors = 3.9 GB; a 4.2 GB image.
  const message = await refusal(checkTarget("/dev/mmcblk0", 4.2 * GB, view(ROOT_MOUNT), false));
  assert.is(message, "/dev/mmcblk0 is too small: the card is 3.9 GB; the image needs 4.2 GB");
});

test("the size check runs on the image's real size, through flash itself (a sparse 4.2 GB image)", async () => {
  const d = join(root, "sparse");
  mkdirSync(d);
  const small = makeBaseImage({ dir: d, ext4: false });
  const big = join(d, "big.img");
  const fd = openSync(big, "w");
  writeSync(fd, readFileSync(small.path).subarray(0, 512), 0, 512, 0);
  writeSync(fd, Buffer.from([0]), 0, 1, 4.2e9 - 1);
  closeSync(fd);
  const message = await refusal(flashImage({ image: big, device: "/dev/mmcblk0", system: view(ROOT_MOUNT) }));
  assert.is(message, "/dev/mmcblk0 is too small: the card is 3.9 GB; the image needs 4.2 GB");
});

test("an internal (non-removable) disk needs --force; a USB reader and an MMC slot do not", async () => {
  const v = view(ROOT_MOUNT, BOOT_MOUNT, PROC);
  const message = await refusal(checkTarget("/dev/sdc", GB, v, false));
  assert.is(message, "/dev/sdc is not a removable disk (460.8 GB, an internal drive?): pass --force if you are sure");
  assert.equal(await checkTarget("/dev/sdc", GB, v, true), {
    kind: "disk",
    path: "/dev/sdc",
    disk: "sdc",
    bytes: 460_800_000_000,
  });
  assert.is((await checkTarget("/dev/sdb", GB, v, false)).kind, "disk");
  assert.is((await checkTarget("/dev/mmcblk0", GB, v, false)).kind, "disk");
});

test("a regular file is a target; a folder is not", async () => {
  assert.equal(await checkTarget(join(root, "new-file"), GB, view(ROOT_MOUNT), false), {
    kind: "file",
    path: join(root, "new-file"),
  });
  const notDir = join(root, "a-folder");
  mkdirSync(notDir);
  const message = await refusal(checkTarget(notDir, GB, view(ROOT_MOUNT), false));
  assert.match(message, /a-folder is neither a disk nor a regular file/);
});

test("a /dev path that is no disk (a card not inserted, a typo) is refused: a file there would fill RAM", async () => {
  assert.is(
    await refusal(checkTarget("/dev/sdz", GB, view(ROOT_MOUNT), false)),
    "/dev/sdz is not a disk (no such device): is the card inserted? lsblk lists the disks",
  );
  assert.is(
    await refusal(checkTarget("/dev/null", GB, view(ROOT_MOUNT), false)),
    "/dev/null is not a disk: is the card inserted? lsblk lists the disks",
  );
});

test("a busy disk (EBUSY from the O_EXCL open) and a locked card are said plainly", () => {
  const busy = Object.assign(new Error("EBUSY: resource busy or locked, open '/dev/sdb'"), { code: "EBUSY" });
  assert.is(
    (describeIoError(busy, "/dev/sdb") as Error).message,
    "/dev/sdb is in use (mounted, or open in another program): unmount it and close what uses it",
  );
  const rofs = Object.assign(new Error("EROFS"), { code: "EROFS" });
  assert.match((describeIoError(rofs, "/dev/sdb") as Error).message, /read-only: is the card's lock switch on\?/);
});

test.run();
