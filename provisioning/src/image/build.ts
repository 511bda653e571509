/**
 * Builds a kiosk image from a base disk image without root: copy the base
 * (decompressing it when it is xz), find the FAT boot partition in the
 * partition table, write the kiosk files and the edited cmdline.txt into it
 * with mtools, optionally compress, and record everything in a manifest.
 * Whatever fails, the partial output is deleted: a half-written image must
 * never be mistaken for a good one.
 */
import { createHash } from "node:crypto";
import { createReadStream, rmSync, statSync, unlinkSync } from "node:fs";
import { mkdir, mkdtemp, open, realpath, rm, stat, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import type { BootFile, KioskImageContents } from "../kiosk-image/contents.ts";
import { MiB, mib, type Phase, type Progress, silentProgress } from "../progress.ts";
import { BootPartitionFullError, FatPartition } from "./fat.ts";
import { type Manifest, type ManifestFile, manifestFile } from "./manifest.ts";
import {
  bootPartition,
  DiskImageError,
  type Partition,
  type PartitionTable,
  readPartitionTable,
  TABLE_HEAD_BYTES,
} from "./partition-table.ts";
import { compressXz, openImageSource, pumpRaw, readRawHead } from "./source.ts";

export interface BuildImageOptions {
  /** The base disk image: raw or xz (told by its magic bytes). */
  base: string;
  /** Where the kiosk image goes; ending in `.xz`: compressed. */
  out: string;
  /** What to add; a function is called once the base image has been checked (building contents takes seconds). */
  contents: KioskImageContents | (() => Promise<KioskImageContents>);
  /** Where the manifest goes (default `<out>.manifest.json`). */
  manifest?: string;
  /** What was asked for, already free of secrets, recorded in the manifest as is. */
  options?: Record<string, unknown>;
  /** Strings that must not leak through the manifest (claim code, Wi-Fi password): a file holding one is listed without its hash. */
  secrets?: string[];
  /** e.g. `paylane-provision 1.0.0`, for the manifest. */
  tool?: string;
  progress?: Progress;
  now?: () => Date;
}

export interface BuildResult {
  out: string;
  /** SHA-256 of the file written (the .xz when compressed). */
  sha256: string;
  bytes: number;
  /** SHA-256 and size of the raw disk image: what `flash` writes and verifies. */
  raw: { sha256: string; bytes: number };
  manifestPath: string;
  manifest: Manifest;
}

/** A build refused or failed for a reason the installer can act on; `message` is one line. */
export class ImageBuildError extends Error {
  override name = "ImageBuildError";
}

/** How much goes to mcopy at once: big enough to be quick, small enough for a moving progress bar. */
const BATCH_BYTES = 16 * MiB;
/** Characters a FAT long name cannot hold, and anything beyond printable ASCII (mtools mangles it). */
const FAT_FORBIDDEN = /["*:<>?\\|]|[^\x20-\x7e]/;

/**
 * What builds in progress have written so far (images, the raw intermediate,
 * the manifest, the staging folder holding the kiosk files): removed when a
 * build fails, and by removePartialOutputs when the process is interrupted.
 */
const partial = new Set<string>();

/** For a SIGINT / SIGTERM handler: deletes every partial output now, synchronously. */
export function removePartialOutputs(): void {
  for (const path of partial) {
    try {
      const info = statSync(path);
      if (info.isFile()) unlinkSync(path);
      else if (info.isDirectory()) rmSync(path, { recursive: true, force: true });
    } catch {
      // already gone
    }
  }
  partial.clear();
}

/** The paths one build made, also registered in `partial` until the build is done. */
class Made {
  readonly paths: string[] = [];
  add(path: string) {
    this.paths.push(path);
    partial.add(path);
  }
  forget(path: string) {
    this.paths.splice(this.paths.indexOf(path), 1);
    partial.delete(path);
  }
  keepAll() {
    for (const path of this.paths) partial.delete(path);
  }
  async removeAll() {
    await Promise.all(this.paths.map((path) => removeRegularFile(path)));
    this.keepAll();
  }
}

export async function buildImage(o: BuildImageOptions): Promise<BuildResult> {
  const progress = o.progress ?? silentProgress;
  const now = o.now ?? (() => new Date());
  const out = o.out;
  const manifestPath = o.manifest ?? `${out}.manifest.json`;
  const compressOut = out.endsWith(".xz");
  await refuseOverwritingBase(o.base, [out, manifestPath]);
  await checkOutputFolder(out);

  const source = await openImageSource(o.base, "base image");
  const head = await readRawHead(source, TABLE_HEAD_BYTES);
  const table = readPartitionTable(head, source.rawBytes, `base image ${o.base}`);
  const boot = bootPartition(table, `base image ${o.base}`);

  const contents = typeof o.contents === "function" ? await o.contents() : o.contents;
  const files = checkFiles(contents.files);
  const rawPath = compressOut ? `${out}.raw.partial` : out;
  const mode = (o.secrets ?? []).some(Boolean) ? 0o600 : 0o644;
  const made = new Made();
  let phase: Phase | undefined;
  const run = async <T>(label: string, total: number, body: (p: Phase) => Promise<T>): Promise<T> => {
    phase = progress.phase(label, total);
    const result = await body(phase);
    phase.finish();
    phase = undefined;
    return result;
  };
  try {
    // 1. The base, byte for byte (hashing the file as stored on the way).
    const baseHash = createHash("sha256");
    const copied = await run(source.compressed ? "decompressing" : "copying", source.rawBytes, (p) =>
      writeAll(rawPath, mode, made, source.rawBytes, async (write) => {
        await pumpRaw(
          source,
          async (chunk) => {
            await write(chunk);
            p.advance(chunk.length);
          },
          { onFileChunk: (chunk) => baseHash.update(chunk) },
        );
      }),
    );
    if (copied !== source.rawBytes) {
      throw new ImageBuildError(`base image ${o.base} gave ${copied} bytes, expected ${source.rawBytes}`);
    }

    // 2. The boot partition: cmdline.txt edited, the kiosk files added.
    const fat = new FatPartition(rawPath, boot.start);
    const cmdline = await fat.read("cmdline.txt");
    if (cmdline === null) {
      throw new ImageBuildError(
        `base image ${o.base}: its boot partition has no cmdline.txt (is it a Raspberry Pi OS image?)`,
      );
    }
    const before = cmdline.toString("utf8");
    const after = contents.editCmdline(before);
    const written: BootFile[] = [...files, { path: "cmdline.txt", content: after }];
    await run("writing files", totalBytes(written), (p) => writeBootFiles(fat, written, p, made));

    // 3. Hash (and compress) what was made.
    const rawHash = createHash("sha256");
    let outHash = rawHash;
    let outBytes = source.rawBytes;
    if (compressOut) {
      outHash = createHash("sha256");
      outBytes = await run("compressing", source.rawBytes, (p) =>
        writeAll(out, mode, made, undefined, async (write) => {
          await compressXz(
            rawPath,
            (chunk) => {
              rawHash.update(chunk);
              p.advance(chunk.length);
            },
            async (chunk) => {
              outHash.update(chunk);
              await write(chunk);
            },
          );
        }),
      );
      await unlink(rawPath);
      made.forget(rawPath);
    } else {
      await run("hashing", source.rawBytes, async (p) => {
        for await (const chunk of createReadStream(rawPath, { highWaterMark: 4 * MiB })) {
          rawHash.update(chunk as Buffer);
          p.advance((chunk as Buffer).length);
        }
      });
    }
    const rawSha = rawHash.digest("hex");
    const sha256 = compressOut ? outHash.digest("hex") : rawSha;

    const manifest: Manifest = {
      manifestVersion: 1,
      tool: o.tool ?? "paylane-provision",
      created: now().toISOString(),
      base: {
        path: o.base,
        sha256: baseHash.digest("hex"),
        bytes: source.fileBytes,
        compressed: source.compressed,
        rawBytes: source.rawBytes,
      },
      partitionTable: describeTable(table, boot),
      cmdline: { before, after },
      files: written.map((f): ManifestFile => manifestFile(f, o.secrets ?? [])),
      versions: contents.versions,
      options: o.options ?? {},
      output: {
        path: out,
        bytes: outBytes,
        sha256,
        compressed: compressOut,
        raw: { bytes: source.rawBytes, sha256: rawSha },
      },
    };
    made.add(manifestPath);
    await writeFile(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o644 });
    made.keepAll();
    return { out, sha256, bytes: outBytes, raw: { sha256: rawSha, bytes: source.rawBytes }, manifestPath, manifest };
  } catch (err) {
    phase?.abort();
    await made.removeAll();
    throw explain(err, { out, rawBytes: source.rawBytes });
  }
}

async function refuseOverwritingBase(base: string, outputs: string[]): Promise<void> {
  const baseReal = await realpath(base).catch(() => resolve(base));
  const baseStat = await stat(base).catch(() => undefined);
  for (const output of outputs) {
    const real = await realpath(output).catch(() => resolve(output));
    const outStat = await stat(output).catch(() => undefined);
    const sameFile = baseStat && outStat && baseStat.dev === outStat.dev && baseStat.ino === outStat.ino;
    if (real === baseReal || sameFile) {
      throw new ImageBuildError(`${output} is the base image itself: write the kiosk image to another file`);
    }
  }
}

async function checkOutputFolder(out: string): Promise<void> {
  const folder = dirname(resolve(out));
  const info = await stat(folder).catch(() => undefined);
  if (!info?.isDirectory()) throw new ImageBuildError(`the folder of ${out} does not exist: create ${folder} first`);
  const existing = await stat(out).catch(() => undefined);
  if (existing?.isDirectory()) throw new ImageBuildError(`${out} is a folder: give a file name for the image`);
  if (existing?.isBlockDevice() || (!existing && resolve(out).startsWith("/dev/"))) {
    const what = existing ? "is a disk" : "is in /dev, where a file would fill memory";
    throw new ImageBuildError(`${out} ${what}: build to a file, then write it with paylane-provision flash`);
  }
}

/** Boot files' paths are plain relative FAT paths; anything else is a bug in what made them. */
function checkFiles(files: BootFile[]): BootFile[] {
  const seen = new Set<string>();
  for (const f of files) {
    const parts = f.path.split("/");
    if (f.path.startsWith("/") || parts.some((p) => p === "" || p === "." || p === ".." || FAT_FORBIDDEN.test(p))) {
      throw new ImageBuildError(`boot file path ${JSON.stringify(f.path)} is not a plain relative FAT path`);
    }
    const key = f.path.toLowerCase();
    if (key === "cmdline.txt") throw new ImageBuildError("cmdline.txt is edited through editCmdline, not replaced");
    if (seen.has(key)) throw new ImageBuildError(`boot file ${f.path} is given twice`);
    seen.add(key);
  }
  return files;
}

const bytesOf = (f: BootFile) => (typeof f.content === "string" ? Buffer.byteLength(f.content) : f.content.length);
const totalBytes = (files: BootFile[]) => files.reduce((sum, f) => sum + bytesOf(f), 0);

/**
 * Opens `path` for writing (recorded in `made` as soon as it exists),
 * hands `body` a write function that writes each chunk in full, and returns
 * the bytes written. `expected` is what ENOSPC's message says is needed.
 */
async function writeAll(
  path: string,
  mode: number,
  made: Made,
  expected: number | undefined,
  body: (write: (chunk: Buffer) => Promise<void>) => Promise<void>,
): Promise<number> {
  const fd = await open(path, "w", mode);
  made.add(path);
  let written = 0;
  try {
    if ((await fd.stat()).isFile()) await fd.chmod(mode);
    await body(async (chunk) => {
      let at = 0;
      while (at < chunk.length) {
        const { bytesWritten } = await fd.write(chunk, at, chunk.length - at, null);
        at += bytesWritten;
      }
      written += chunk.length;
    });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOSPC" || (err as NodeJS.ErrnoException).code === "EFBIG") {
      (err as NodeJS.ErrnoException & { needed?: number }).needed = expected;
    }
    throw err;
  } finally {
    await fd.close();
  }
  return written;
}

async function writeBootFiles(fat: FatPartition, files: BootFile[], p: Phase, made: Made): Promise<void> {
  const free = await fat.freeBytes();
  const cluster = await fat.clusterBytes();
  const needed = files.reduce((sum, f) => sum + Math.ceil(bytesOf(f) / cluster) * cluster, 0);
  // Staged on the local disk under their own names, because mcopy names what it copies after its source.
  const stage = await mkdtemp(join(tmpdir(), "paylane-boot-"));
  made.add(stage);
  try {
    const byDir = new Map<string, { local: string; bytes: number }[]>();
    for (const f of files) {
      const local = join(stage, ...f.path.split("/"));
      await mkdir(dirname(local), { recursive: true, mode: 0o700 });
      await writeFile(local, f.content, { mode: 0o600 });
      const dir = f.path.split("/").slice(0, -1).join("/");
      byDir.set(dir, [...(byDir.get(dir) ?? []), { local, bytes: bytesOf(f) }]);
    }
    const existing = await fat.directories();
    const wanted = new Set<string>();
    for (const dir of byDir.keys()) {
      const parts = dir ? dir.split("/") : [];
      for (let i = 1; i <= parts.length; i++) wanted.add(parts.slice(0, i).join("/"));
    }
    const missing = [...wanted].filter((d) => !existing.has(d.toLowerCase()));
    missing.sort((a, b) => a.split("/").length - b.split("/").length);
    try {
      await fat.makeDirectories(missing);
      for (const [dir, locals] of byDir) {
        let batch: typeof locals = [];
        let batchBytes = 0;
        const flush = async () => {
          if (batch.length === 0) return;
          await fat.copyInto(
            dir,
            batch.map((b) => b.local),
          );
          p.advance(batchBytes);
          batch = [];
          batchBytes = 0;
        };
        for (const local of locals) {
          batch.push(local);
          batchBytes += local.bytes;
          if (batchBytes >= BATCH_BYTES) await flush();
        }
        await flush();
      }
    } catch (err) {
      if (err instanceof BootPartitionFullError) {
        throw new ImageBuildError(
          `the boot partition has ${mib(free)} MiB free; the kiosk files need ${mib(needed)} MiB ` +
            "(use a base image with a bigger boot partition, or leave out what is not needed)",
        );
      }
      throw err;
    }
  } finally {
    await rm(stage, { recursive: true, force: true });
    made.forget(stage);
  }
}

function describeTable(table: PartitionTable, boot: Partition): Manifest["partitionTable"] {
  return {
    scheme: table.scheme,
    sectorSize: table.sectorSize,
    boot: boot.number,
    partitions: table.partitions.map(({ number, type, start, bytes }) => ({ number, type, start, bytes })),
  };
}

/** Deletes a file this build made; a device (say /dev/full) is never deleted. */
async function removeRegularFile(path: string): Promise<void> {
  const info = await stat(path).catch(() => undefined);
  if (info?.isFile()) await unlink(path).catch(() => {});
}

/** One line for what the installer can fix: a full disk, a file size limit; a known error passes as it is. */
function explain(err: unknown, at: { out: string; rawBytes: number }): unknown {
  if (err instanceof ImageBuildError || err instanceof DiskImageError) return err;
  const e = err as NodeJS.ErrnoException & { needed?: number };
  const folder = dirname(resolve(at.out));
  const needs = mib(e.needed ?? at.rawBytes);
  if (e.code === "ENOSPC")
    return new ImageBuildError(`no space left on ${folder} writing the image: needs ${needs} MiB`);
  if (e.code === "EFBIG") {
    return new ImageBuildError(
      `the file size limit (ulimit -f) stopped writing the image to ${folder}: it needs ${needs} MiB`,
    );
  }
  if (e.code === "EACCES" || e.code === "EPERM") {
    return new ImageBuildError(`cannot write ${e.path ?? at.out}: permission denied`);
  }
  return err;
}
