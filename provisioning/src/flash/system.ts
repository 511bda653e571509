/**
 * What the machine says about a flash target, read from the kernel's own
 * files: /proc/self/mountinfo for what is mounted, and /sys/dev/block/<maj:min>
 * for which disk a partition (or a device-mapper / md device, through its
 * slaves) lives on, its size and whether it is removable. The paths are
 * injectable so tests run on fixture trees instead of this machine's disks.
 */
import { readdir, readFile, realpath, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

export interface DeviceNumber {
  major: number;
  minor: number;
}

export interface SystemView {
  /** Stands for /proc/self/mountinfo. */
  mountinfo: string;
  /** Stands for /sys. */
  sysRoot: string;
  /** The device number of the block device at `path`; null when `path` is not one (a file, or nothing). */
  blockDevice(path: string): Promise<DeviceNumber | null>;
}

export const thisMachine: SystemView = {
  mountinfo: "/proc/self/mountinfo",
  sysRoot: "/sys",
  async blockDevice(path) {
    const info = await stat(path).catch(() => undefined);
    if (!info?.isBlockDevice()) return null;
    // Linux's dev_t: major in bits 8-19 and 32+, minor in bits 0-7 and 20+.
    const rdev = BigInt(info.rdev);
    const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
    const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
    return { major, minor };
  },
};

export interface BlockNode {
  /** Kernel name: sdb, sdb1, mmcblk0p1, dm-0. */
  name: string;
  /** Its folder under /sys/devices. */
  sysPath: string;
  /** A partition: its disk is the parent folder. */
  partition: boolean;
}

/** The /sys node of a device number, or null when the kernel has none. */
export async function blockNode(view: SystemView, dev: DeviceNumber | string): Promise<BlockNode | null> {
  const id = typeof dev === "string" ? dev : `${dev.major}:${dev.minor}`;
  const sysPath = await realpath(join(view.sysRoot, "dev", "block", id)).catch(() => null);
  if (!sysPath) return null;
  const partition = await stat(join(sysPath, "partition")).then(
    () => true,
    () => false,
  );
  return { name: basename(sysPath), sysPath, partition };
}

/**
 * The whole disks under a device: a partition's disk, a disk itself, or
 * every disk a device-mapper / md device is built on (LUKS, LVM, RAID).
 */
export async function disksUnder(view: SystemView, node: BlockNode, depth = 0): Promise<string[]> {
  if (node.partition) return [basename(dirname(node.sysPath))];
  const slaves = await readdir(join(node.sysPath, "slaves")).catch(() => [] as string[]);
  if (slaves.length === 0 || depth > 8) return [node.name];
  const disks: string[] = [];
  for (const slave of slaves) {
    const sysPath = await realpath(join(node.sysPath, "slaves", slave)).catch(() => null);
    if (!sysPath) continue;
    const partition = await stat(join(sysPath, "partition")).then(
      () => true,
      () => false,
    );
    disks.push(...(await disksUnder(view, { name: basename(sysPath), sysPath, partition }, depth + 1)));
  }
  return disks;
}

export interface Mount {
  mountPoint: string;
  source: string;
  /** The whole disks it lives on. */
  disks: string[];
}

/** Every mount with the disks under it (mountinfo: "id parent maj:min root mountpoint opts … - fstype source superopts"). */
export async function mounts(view: SystemView): Promise<Mount[]> {
  const text = await readFile(view.mountinfo, "utf8");
  const result: Mount[] = [];
  for (const line of text.split("\n")) {
    const fields = line.split(" ");
    const dash = fields.indexOf("-");
    if (fields.length < 7 || dash < 6) continue;
    const mountPoint = unescapeMount(fields[4]!);
    const source = unescapeMount(fields[dash + 2] ?? "");
    const disks = new Set<string>();
    const byNumber = await blockNode(view, fields[2]!);
    if (byNumber) for (const d of await disksUnder(view, byNumber)) disks.add(d);
    // btrfs and some others report an anonymous device number: their source names the real one.
    if (source.startsWith("/dev/")) {
      const dev = await view.blockDevice(source).catch(() => null);
      const node = dev ? await blockNode(view, dev) : null;
      if (node) for (const d of await disksUnder(view, node)) disks.add(d);
    }
    if (disks.size > 0) result.push({ mountPoint, source, disks: [...disks] });
  }
  return result;
}

/** mountinfo escapes space, tab, newline and backslash as octal. */
const unescapeMount = (s: string) =>
  s.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));

export interface DiskFacts {
  bytes: number;
  /** Removable media (SD card readers, USB sticks): the kernel's flag, or a USB / MMC bus. */
  removable: boolean;
}

export async function diskFacts(node: BlockNode): Promise<DiskFacts> {
  const read = (file: string) =>
    readFile(join(node.sysPath, file), "utf8").then(
      (s) => s.trim(),
      () => "",
    );
  // /sys/.../size counts 512-byte sectors whatever the device's own sector size.
  const bytes = Number(await read("size")) * 512;
  const flagged = (await read("removable")) === "1";
  const bus = /\/usb\d*\/|\/mmc\d*\/|\/mmc_host\//.test(node.sysPath) || node.name.startsWith("mmcblk");
  return { bytes, removable: flagged || bus };
}
