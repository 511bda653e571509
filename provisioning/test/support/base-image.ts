/**
 * A small stand-in for a Raspberry Pi OS image, made the way one is laid
 * out: an MBR with a FAT32 (LBA, 0x0c) "bootfs" partition at 4 MiB holding
 * cmdline.txt and config.txt, then an ext4 root. Made with Debian's tools on
 * a plain file (truncate, sfdisk, mkfs.vfat --offset, mkfs.ext4 -E offset),
 * no root needed. Also reads a built image back with mtools for assertions.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export const SECTOR = 512;
export const BOOT_START_SECTOR = 8192; // 4 MiB, as Raspberry Pi OS
export const CMDLINE =
  "console=serial0,115200 console=tty1 root=PARTUUID=6c586e13-02 rootfstype=ext4 fsck.repair=yes rootwait\n";
export const CONFIG = "# For more options and information see\n# http://rptl.io/configtxt\ndtparam=audio=on\n[all]\n";

export interface BaseImageOptions {
  dir: string;
  name?: string;
  /** Size of the boot partition (FAT32 needs ~33 MiB at least). */
  bootMiB?: number;
  rootMiB?: number;
  /** false: partition 1 is Linux (0x83) with no file system: a base without a FAT boot partition. */
  fat?: boolean;
  /** Files in the boot partition (default cmdline.txt and config.txt). */
  bootFiles?: Record<string, string | Buffer>;
  /** An ext4 root with a few files (mkfs.ext4 -d); false: left empty. */
  ext4?: boolean;
}

export interface BaseImage {
  path: string;
  bytes: number;
  bootOffset: number;
}

const MTOOLS_ENV = { ...process.env, MTOOLS_SKIP_CHECK: "1", MTOOLSRC: "/dev/null" };

export function makeBaseImage(o: BaseImageOptions): BaseImage {
  const path = join(o.dir, o.name ?? "raspios.img");
  const bootSectors = (o.bootMiB ?? 40) * 2048;
  const rootStart = BOOT_START_SECTOR + bootSectors;
  const rootSectors = (o.rootMiB ?? 8) * 2048;
  const bytes = (rootStart + rootSectors) * SECTOR;
  execFileSync("truncate", ["-s", String(bytes), path]);
  const script = [
    "label: dos",
    "unit: sectors",
    "",
    `start=${BOOT_START_SECTOR}, size=${bootSectors}, type=${o.fat === false ? "83" : "c"}`,
    `start=${rootStart}, size=${rootSectors}, type=83`,
    "",
  ].join("\n");
  execFileSync("sfdisk", ["--quiet", "--no-reread", "--no-tell-kernel", path], { input: script });
  if (o.fat !== false) {
    execFileSync(
      "mkfs.vfat",
      ["-F", "32", "-s", "1", "-n", "BOOTFS", "--offset", String(BOOT_START_SECTOR), path, String(bootSectors / 2)],
      { stdio: "ignore" },
    );
    const staging = join(o.dir, `${o.name ?? "raspios.img"}.bootfs`);
    mkdirSync(staging, { recursive: true });
    const files = o.bootFiles ?? { "cmdline.txt": CMDLINE, "config.txt": CONFIG };
    for (const [name, content] of Object.entries(files)) {
      writeFileSync(join(staging, name), content);
      execFileSync("mcopy", ["-i", `${path}@@${BOOT_START_SECTOR * SECTOR}`, join(staging, name), `::/${name}`], {
        env: MTOOLS_ENV,
      });
    }
  }
  if (o.ext4 !== false) {
    const rootfs = join(o.dir, `${o.name ?? "raspios.img"}.rootfs`);
    mkdirSync(join(rootfs, "etc"), { recursive: true });
    writeFileSync(join(rootfs, "etc", "hostname"), "raspberrypi\n");
    execFileSync(
      "mkfs.ext4",
      ["-q", "-F", "-L", "rootfs", "-E", `offset=${rootStart * SECTOR}`, "-d", rootfs, path, `${rootSectors / 2}k`],
      { stdio: "ignore" },
    );
  }
  return { path, bytes, bootOffset: BOOT_START_SECTOR * SECTOR };
}

/** `xz` a copy of `path` to `path.xz` (keeping the original). */
export function xz(path: string): string {
  execFileSync("xz", ["-k", "-f", "-T0", "-0", path]);
  return `${path}.xz`;
}

export function unxz(path: string, to: string): string {
  execFileSync("sh", ["-c", 'xz -dc "$1" > "$2"', "sh", path, to]);
  return to;
}

/** The partition table as sfdisk reports it, without the file name (which differs between copies). */
export function sfdiskJson(path: string): unknown {
  const json = JSON.parse(execFileSync("sfdisk", ["--json", path], { encoding: "utf8" })) as {
    partitiontable: { device?: string; partitions: { node?: string }[] };
  };
  const t = json.partitiontable;
  delete t.device;
  for (const p of t.partitions) delete p.node;
  return json;
}

/** A file read back from the boot partition of `image`. */
export function readBootFile(image: string, path: string, offset = BOOT_START_SECTOR * SECTOR): Buffer {
  return execFileSync("mcopy", ["-n", "-i", `${image}@@${offset}`, `::/${path}`, "-"], {
    env: MTOOLS_ENV,
    maxBuffer: 256 * 1024 * 1024,
  });
}

/** Every path in the boot partition (`mdir -/ -b`), directories with a trailing `/`. */
export function listBoot(image: string, offset = BOOT_START_SECTOR * SECTOR): string[] {
  return execFileSync("mdir", ["-i", `${image}@@${offset}`, "-/", "-b", "::/"], { env: MTOOLS_ENV, encoding: "utf8" })
    .split("\n")
    .filter((l) => l.startsWith("::/"))
    .map((l) => l.slice(3));
}
