/** Where a bench's files live: the file system under a folder, read from /proc/mounts (Linux only). */
import { readFileSync, realpathSync } from "node:fs";

/** "ext4 on /dev/vda (mounted at /)"; a tmpfs makes every fsync free, which a bench must say. */
export function describeFileSystem(dir: string): string {
  let path = dir;
  let mounts: string[][] = [];
  try {
    path = realpathSync(dir);
    mounts = readFileSync("/proc/mounts", "utf8")
      .split("\n")
      .map((l) => l.split(" "));
  } catch {
    return "file system unknown";
  }
  let best: string[] | undefined;
  for (const m of mounts) {
    const at = m[1];
    if (!at || !(path === at || path.startsWith(at.endsWith("/") ? at : `${at}/`))) continue;
    if (!best || at.length >= best[1]!.length) best = m;
  }
  return best ? `${best[2]} on ${best[0]} (mounted at ${best[1]})` : "file system unknown";
}
