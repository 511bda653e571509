/**
 * A disk image on disk, raw or xz-compressed (Raspberry Pi OS ships `.img.xz`),
 * told apart by its magic bytes rather than its name. Decompression and
 * compression run Debian's `xz` as a child process: it is multi-threaded,
 * streams, and is what the Raspberry Pi OS images are made with.
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { createReadStream } from "node:fs";
import { open, stat } from "node:fs/promises";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { DiskImageError } from "./partition-table.ts";

const XZ_MAGIC = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);
const CHUNK = 4 * 1024 * 1024;

export interface ImageSource {
  path: string;
  compressed: boolean;
  /** Its size on disk. */
  fileBytes: number;
  /** The size of the disk image it holds (for xz, from the index at its end). */
  rawBytes: number;
}

export async function openImageSource(path: string, what: string): Promise<ImageSource> {
  let info: import("node:fs").Stats;
  try {
    info = await stat(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new DiskImageError(`${what} ${path} not found`);
    throw new DiskImageError(`${what} ${path} cannot be read: ${code ?? String(err)}`);
  }
  if (!info.isFile()) throw new DiskImageError(`${what} ${path} is not a file`);
  const fileBytes = info.size;
  const magic = Buffer.alloc(XZ_MAGIC.length);
  const fd = await open(path, "r");
  try {
    await fd.read(magic, 0, magic.length, 0);
  } finally {
    await fd.close();
  }
  if (!magic.equals(XZ_MAGIC)) return { path, compressed: false, fileBytes, rawBytes: fileBytes };
  return { path, compressed: true, fileBytes, rawBytes: await xzUncompressedBytes(path, what) };
}

/** `xz --robot --list`: the uncompressed size from the index, which also proves the file is a whole xz file. */
async function xzUncompressedBytes(path: string, what: string): Promise<number> {
  const { code, stdout, stderr } = await run("xz", ["--robot", "--list", path]);
  const totals = stdout.split("\n").find((l) => l.startsWith("totals\t"));
  const bytes = Number(totals?.split("\t")[4]);
  if (code !== 0 || !Number.isSafeInteger(bytes)) {
    throw new DiskImageError(`${what} ${path} is a corrupt xz file: ${xzReason(stderr)} (download it again)`);
  }
  return bytes;
}

const xzReason = (stderr: string) =>
  stderr
    .trim()
    .split("\n")
    .at(-1)
    ?.replace(/^xz: (\(stdin\)|[^:]*): /, "") || "xz failed";

function run(command: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    child.on("error", (err) => reject(missingTool(command, err)));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

export function missingTool(command: string, err: Error): Error {
  if ((err as NodeJS.ErrnoException).code === "ENOENT") {
    const pkg = command === "xz" ? "xz-utils" : "mtools";
    return new Error(`${command} is not installed (Debian/Ubuntu: apt-get install ${pkg})`);
  }
  return err;
}

/** A pass-through that shows each chunk to `see` (hashing, counting). */
const tap = (see: (chunk: Buffer) => void) =>
  new Transform({
    highWaterMark: CHUNK,
    transform(chunk: Buffer, _enc, done) {
      see(chunk);
      done(null, chunk);
    },
  });

export interface PumpOptions {
  /** Each chunk of the file as stored (the .xz bytes for a compressed image), e.g. to hash it. */
  onFileChunk?: (chunk: Buffer) => void;
  /** Stop after this many raw bytes (reading the head of an image). */
  limit?: number;
}

/**
 * Streams the disk image's raw bytes, in order, to `sink`; waits for each
 * sink call (back-pressure). A compressed image goes through `xz -dc`.
 */
export async function pumpRaw(
  source: ImageSource,
  sink: (chunk: Buffer) => Promise<void> | void,
  o: PumpOptions = {},
): Promise<void> {
  const seeFile = o.onFileChunk ?? (() => {});
  const limit = o.limit ?? Number.POSITIVE_INFINITY;
  let sent = 0;
  const give = async (chunk: Buffer) => {
    const part = sent + chunk.length > limit ? chunk.subarray(0, limit - sent) : chunk;
    sent += part.length;
    if (part.length > 0) await sink(part);
    return sent >= limit;
  };
  if (!source.compressed) {
    if (source.fileBytes === 0 || limit === 0) return;
    const end = Number.isFinite(limit) ? Math.min(limit, source.fileBytes) - 1 : undefined;
    for await (const chunk of createReadStream(source.path, { highWaterMark: CHUNK, end })) {
      seeFile(chunk as Buffer);
      if (await give(chunk as Buffer)) break;
    }
    return;
  }
  const { child, exited, stderr } = startXz(["-dc"]);
  let stopped = false;
  // xz stops reading when we stop early or it finds corruption: the feed's EPIPE then means nothing.
  const feeding = pipeline(createReadStream(source.path, { highWaterMark: CHUNK }), tap(seeFile), child.stdin).catch(
    (err: NodeJS.ErrnoException) => {
      if (!stopped && err.code !== "EPIPE") throw err;
    },
  );
  try {
    for await (const chunk of child.stdout) {
      if (await give(chunk as Buffer)) {
        stopped = true;
        break;
      }
    }
  } catch (err) {
    stopped = true;
    throw err;
  } finally {
    if (stopped) child.kill();
    await feeding.catch(() => {});
  }
  const code = await exited;
  if (!stopped && code !== 0) {
    throw new DiskImageError(`${source.path} is a corrupt xz file: ${xzReason(stderr())} (download it again)`);
  }
  await feeding;
}

/** `xz` with `args` as a child: its exit code (a missing xz rejects, naming the package) and what it said on stderr. */
function startXz(args: string[]): {
  child: ChildProcessWithoutNullStreams;
  exited: Promise<number | null>;
  stderr: () => string;
} {
  const child = spawn("xz", args, { stdio: ["pipe", "pipe", "pipe"] }) as ChildProcessWithoutNullStreams;
  let stderr = "";
  child.stderr.on("data", (d) => {
    stderr += d;
  });
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on("error", (err) => reject(missingTool("xz", err)));
    child.on("close", (code) => resolve(code));
  });
  exited.catch(() => {}); // awaited by the caller unless its sink failed first
  return { child, exited, stderr: () => stderr };
}

/** The first `bytes` of the disk image (fewer if it is shorter). */
export async function readRawHead(source: ImageSource, bytes: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  await pumpRaw(source, (chunk) => void parts.push(Buffer.from(chunk)), { limit: bytes });
  return Buffer.concat(parts);
}

/**
 * Compresses the file at `rawPath` with `xz -T0` (all cores), handing each raw
 * chunk to `onRaw` and each compressed chunk to `sink` (which writes it).
 */
export async function compressXz(
  rawPath: string,
  onRaw: (chunk: Buffer) => void,
  sink: (chunk: Buffer) => Promise<void>,
): Promise<void> {
  const { child, exited, stderr } = startXz(["-T0", "-c"]);
  let failed = false;
  const feeding = pipeline(createReadStream(rawPath, { highWaterMark: CHUNK }), tap(onRaw), child.stdin).catch(
    (err: NodeJS.ErrnoException) => {
      if (!failed) throw err;
    },
  );
  try {
    for await (const chunk of child.stdout) await sink(chunk as Buffer);
  } catch (err) {
    failed = true;
    child.kill();
    await feeding;
    throw err;
  }
  await feeding;
  const code = await exited;
  if (code !== 0) throw new Error(`xz could not compress the image: ${xzReason(stderr())}`);
}
