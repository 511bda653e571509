/**
 * The partition table of a disk image, read in code (MBR, and GPT behind a
 * protective MBR), so the boot partition's byte offset is known without
 * root, loop devices or sfdisk. Raspberry Pi OS uses MBR: partition 1 FAT32
 * "bootfs", partition 2 ext4.
 */

export const SECTOR = 512;
/** Enough of the image's head for an MBR and a GPT header with its 128 entries. */
export const TABLE_HEAD_BYTES = 64 * 1024;

export interface Partition {
  /** 1-based, as Linux names them (sdb1). */
  number: number;
  /** MBR: the type byte as `0x0c`; GPT: the type GUID. */
  type: string;
  /** Byte offset from the start of the image. */
  start: number;
  bytes: number;
  /** A FAT file system by its type (MBR 0x0b/0x0c/0x0e/0x06, GPT basic data or EFI system). */
  fat: boolean;
}

export interface PartitionTable {
  scheme: "mbr" | "gpt";
  sectorSize: number;
  partitions: Partition[];
}

/** The image is not one we can edit; `message` is the one line the installer reads. */
export class DiskImageError extends Error {
  override name = "DiskImageError";
}

const FAT_MBR_TYPES = new Set([0x06, 0x0b, 0x0c, 0x0e]);
const EXTENDED_MBR_TYPES = new Set([0x05, 0x0f, 0x85]);
const GPT_PROTECTIVE = 0xee;
const GPT_FAT_TYPES = new Set([
  "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7", // Microsoft basic data
  "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", // EFI system partition
]);

/**
 * Reads the table from the image's first bytes (`head`, at least
 * TABLE_HEAD_BYTES or the whole image) and checks it against the image's
 * size: every partition must end inside the image, or the image is truncated.
 */
export function readPartitionTable(head: Buffer, imageBytes: number, what: string): PartitionTable {
  if (head.length < SECTOR || head.readUInt16LE(510) !== 0xaa55) {
    throw new DiskImageError(`${what} is not a disk image: it has no partition table (no MBR signature 0x55AA)`);
  }
  const primaries: Partition[] = [];
  for (let i = 0; i < 4; i++) {
    const entry = 446 + i * 16;
    const type = head[entry + 4]!;
    const first = head.readUInt32LE(entry + 8);
    const sectors = head.readUInt32LE(entry + 12);
    if (type === 0 || sectors === 0) continue;
    primaries.push({
      number: i + 1,
      type: `0x${type.toString(16).padStart(2, "0")}`,
      start: first * SECTOR,
      bytes: sectors * SECTOR,
      fat: FAT_MBR_TYPES.has(type),
    });
  }
  let table: PartitionTable;
  if (primaries.some((p) => Number(p.type) === GPT_PROTECTIVE)) {
    table = { scheme: "gpt", sectorSize: SECTOR, partitions: readGpt(head, what) };
  } else {
    table = { scheme: "mbr", sectorSize: SECTOR, partitions: primaries };
  }
  if (table.partitions.length === 0)
    throw new DiskImageError(`${what} is not a disk image: its partition table is empty`);
  for (const p of table.partitions) {
    if (p.start < SECTOR) {
      throw new DiskImageError(`${what} is not a disk image: partition ${p.number} starts inside the partition table`);
    }
    // Extended partitions are containers; their logical partitions are not read (Raspberry Pi OS has none).
    if (table.scheme === "mbr" && EXTENDED_MBR_TYPES.has(Number(p.type))) continue;
    if (p.start + p.bytes > imageBytes) {
      throw new DiskImageError(
        `${what} is truncated: partition ${p.number} ends at byte ${p.start + p.bytes} but the image has ${imageBytes} bytes ` +
          "(download it again)",
      );
    }
  }
  return table;
}

function guid(b: Buffer): string {
  const hex = (buf: Buffer) => buf.toString("hex").toUpperCase();
  const le = (buf: Buffer) => hex(Buffer.from(buf).reverse());
  return `${le(b.subarray(0, 4))}-${le(b.subarray(4, 6))}-${le(b.subarray(6, 8))}-${hex(b.subarray(8, 10))}-${hex(b.subarray(10, 16))}`;
}

function readGpt(head: Buffer, what: string): Partition[] {
  const header = head.subarray(SECTOR, 2 * SECTOR);
  if (header.length < 92 || header.toString("latin1", 0, 8) !== "EFI PART") {
    throw new DiskImageError(`${what} is not a disk image: its protective MBR points to a GPT header that is missing`);
  }
  const entriesLba = Number(header.readBigUInt64LE(72));
  const count = header.readUInt32LE(80);
  const size = header.readUInt32LE(84);
  if (size < 128 || count > 1024) throw new DiskImageError(`${what} has a GPT header with impossible entries`);
  const partitions: Partition[] = [];
  for (let i = 0; i < count; i++) {
    const at = entriesLba * SECTOR + i * size;
    if (at + 128 > head.length) break;
    const entry = head.subarray(at, at + 128);
    if (entry.subarray(0, 16).every((b) => b === 0)) continue;
    const type = guid(entry.subarray(0, 16));
    const first = Number(entry.readBigUInt64LE(32));
    const last = Number(entry.readBigUInt64LE(40));
    partitions.push({
      number: i + 1,
      type,
      start: first * SECTOR,
      bytes: (last - first + 1) * SECTOR,
      fat: GPT_FAT_TYPES.has(type),
    });
  }
  return partitions;
}

/** The partition Raspberry Pi OS boots from: the first FAT one. */
export function bootPartition(table: PartitionTable, what: string): Partition {
  const boot = table.partitions.find((p) => p.fat);
  if (!boot) {
    const types = table.partitions.map((p) => `${p.number}: ${p.type}`).join(", ");
    throw new DiskImageError(
      `${what} has no FAT boot partition (partitions ${types}; a Raspberry Pi OS image starts with a FAT32 one)`,
    );
  }
  return boot;
}
