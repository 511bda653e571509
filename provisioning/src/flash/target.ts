/**
 * Whether a flash target may be written: a regular file always (created or
 * overwritten), a whole removable disk that nothing on this machine has
 * mounted and that is big enough. The disk holding `/` is never written,
 * --force or not.
 */
import { stat } from "node:fs/promises";
import { resolve } from "node:path";
import { blockNode, diskFacts, disksUnder, mounts, type SystemView } from "./system.ts";

export class FlashError extends Error {
  override name = "FlashError";
}

export type Target = { kind: "file"; path: string } | { kind: "disk"; path: string; disk: string; bytes: number };

/** Sizes as printed on a card: decimal gigabytes, with enough decimals to tell two sizes apart. */
export function gigabytes(bytes: number, other?: number): string {
  for (let decimals = 1; decimals <= 3; decimals++) {
    const a = (bytes / 1e9).toFixed(decimals);
    if (other === undefined || a !== (other / 1e9).toFixed(decimals)) return `${a} GB`;
  }
  return `${bytes} bytes`;
}

export async function checkTarget(
  device: string,
  imageBytes: number,
  view: SystemView,
  force: boolean,
): Promise<Target> {
  const dev = await view.blockDevice(device);
  if (!dev) {
    const info = await stat(device).catch(() => undefined);
    // /dev is memory: a file made there by a mistyped or missing disk fills RAM and writes no card.
    if (resolve(device).startsWith("/dev/") && !info?.isBlockDevice()) {
      throw new FlashError(
        `${device} is not a disk${info ? "" : " (no such device)"}: is the card inserted? lsblk lists the disks`,
      );
    }
    if (info && !info.isFile()) {
      throw new FlashError(`${device} is neither a disk nor a regular file: give a disk such as /dev/sdb, or a file`);
    }
    return { kind: "file", path: device };
  }
  const node = await blockNode(view, dev);
  if (!node)
    throw new FlashError(`${device} is a block device the kernel does not list in /sys: is it still plugged in?`);
  if (node.partition) {
    const [disk] = await disksUnder(view, node);
    throw new FlashError(`${device} is a partition of /dev/${disk}: flash the whole disk (/dev/${disk})`);
  }
  const all = await mounts(view);
  const onTarget = all.filter((m) => m.disks.includes(node.name));
  const system = onTarget.find((m) => m.mountPoint === "/");
  if (system) {
    throw new FlashError(`${device} is the system disk (it holds /, from ${system.source}): refusing to overwrite it`);
  }
  if (onTarget.length > 0) {
    const list = onTarget.map((m) => `${m.source} on ${m.mountPoint}`).join(", ");
    throw new FlashError(
      `${device} has mounted file systems (${list}): unmount them first (e.g. udisksctl unmount -b ${onTarget[0]!.source})`,
    );
  }
  const facts = await diskFacts(node);
  if (facts.bytes < imageBytes) {
    throw new FlashError(
      `${device} is too small: the card is ${gigabytes(facts.bytes, imageBytes)}; the image needs ${gigabytes(imageBytes, facts.bytes)}`,
    );
  }
  if (!facts.removable && !force) {
    throw new FlashError(
      `${device} is not a removable disk (${gigabytes(facts.bytes)}, an internal drive?): pass --force if you are sure`,
    );
  }
  return { kind: "disk", path: device, disk: node.name, bytes: facts.bytes };
}
