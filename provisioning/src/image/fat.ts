/**
 * The FAT boot partition inside a disk image file, edited in place with
 * mtools at its byte offset (`-i image@@offset`): no root, no loop device,
 * no mount. MTOOLS_SKIP_CHECK keeps mtools from refusing a file system whose
 * geometry fields do not match a floppy's; MTOOLSRC keeps a person's own
 * ~/.mtoolsrc out of it.
 */
import { spawn } from "node:child_process";
import { missingTool } from "./source.ts";

export class BootPartitionFullError extends Error {
  override name = "BootPartitionFullError";
}

interface Ran {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

export class FatPartition {
  constructor(
    readonly imagePath: string,
    readonly offset: number,
  ) {}

  private get drive() {
    return `${this.imagePath}@@${this.offset}`;
  }

  private mtools(command: string, args: string[]): Promise<Ran> {
    return new Promise((resolve, reject) => {
      const child = spawn(command, ["-i", this.drive, ...args], {
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...process.env, MTOOLS_SKIP_CHECK: "1", MTOOLSRC: "/dev/null", LC_ALL: "C" },
      });
      const out: Buffer[] = [];
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => out.push(d));
      child.stderr.on("data", (d) => {
        stderr += d;
      });
      child.on("error", (err) => reject(missingTool(command, err)));
      child.on("close", (code) => resolve({ code, stdout: Buffer.concat(out), stderr }));
    });
  }

  private async must(command: string, args: string[], doing: string): Promise<Buffer> {
    const r = await this.mtools(command, args);
    if (r.code !== 0) {
      if (/disk full/i.test(r.stderr)) throw new BootPartitionFullError(r.stderr.trim());
      throw new Error(`${doing} on the boot partition failed: ${firstLine(r.stderr) || `${command} exited ${r.code}`}`);
    }
    return r.stdout;
  }

  /** The file at `path` (relative to the root), or null when there is none. */
  async read(path: string): Promise<Buffer | null> {
    const r = await this.mtools("mcopy", ["-n", `::/${path}`, "-"]);
    if (r.code === 0) return r.stdout;
    if (/not found/i.test(r.stderr)) return null;
    throw new Error(`reading ${path} from the boot partition failed: ${firstLine(r.stderr)}`);
  }

  /** Free space, as mdir counts it ("N bytes free", digits grouped by spaces). */
  async freeBytes(): Promise<number> {
    const listing = (await this.must("mdir", ["::/"], "listing")).toString("latin1");
    const match = /([\d ]+) bytes free/.exec(listing);
    if (!match) throw new Error("mdir did not say how much of the boot partition is free");
    return Number(match[1]!.replace(/ /g, ""));
  }

  /** The allocation unit: every file takes whole clusters. */
  async clusterBytes(): Promise<number> {
    const info = (await this.must("minfo", ["::"], "reading the boot sector")).toString("latin1");
    const sector = Number(/sector size: (\d+) bytes/.exec(info)?.[1] ?? 512);
    const perCluster = Number(/cluster size: (\d+) sectors/.exec(info)?.[1] ?? 1);
    return sector * perCluster;
  }

  /** Every directory, lower-cased (FAT names are case-insensitive), without the leading `::/` or a trailing `/`. */
  async directories(): Promise<Set<string>> {
    const listing = (await this.must("mdir", ["-/", "-b", "::/"], "listing")).toString("utf8");
    const dirs = new Set<string>();
    for (const line of listing.split("\n")) {
      if (line.startsWith("::/") && line.endsWith("/")) dirs.add(line.slice(3, -1).toLowerCase());
    }
    return dirs;
  }

  /** Creates the directories in order (parents before children). */
  async makeDirectories(paths: string[]): Promise<void> {
    if (paths.length === 0) return;
    await this.must(
      "mmd",
      paths.map((p) => `::/${p}`),
      "making directories",
    );
  }

  /** Copies local files into directory `dir` (`""`: the root), under their own names, overwriting. */
  async copyInto(dir: string, localFiles: string[]): Promise<void> {
    await this.must("mcopy", ["-o", "-D", "o", "-Q", ...localFiles, `::/${dir ? `${dir}/` : ""}`], "copying files");
  }
}

const firstLine = (text: string) => text.trim().split("\n")[0]?.trim() ?? "";
