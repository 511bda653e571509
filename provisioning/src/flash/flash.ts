/**
 * Writes a disk image (raw or xz) to an SD card or a file, then proves it:
 * the written length is read back and its SHA-256 compared with the one
 * computed while writing. Per-MiB hashes taken on both passes locate the
 * first difference, so a bad card is reported with the byte where it lies.
 *
 * A disk is opened with O_EXCL (the kernel refuses it while anything has it
 * mounted or claimed: EBUSY) and synced as it goes, so the bar shows what
 * reached the card rather than the page cache. The read-back reopens it:
 * closing the last handle of a block device drops its page cache, so the
 * verification reads the card, not memory.
 */

import { createHash, type Hash } from "node:crypto";
import { constants } from "node:fs";
import { type FileHandle, open, readFile, stat } from "node:fs/promises";
import { readPartitionTable, TABLE_HEAD_BYTES } from "../image/partition-table.ts";
import { type ImageSource, openImageSource, pumpRaw, readRawHead } from "../image/source.ts";
import { MiB, type Phase, type Progress, silentProgress } from "../progress.ts";
import { type SystemView, thisMachine } from "./system.ts";
import { checkTarget, FlashError, type Target } from "./target.ts";

export interface FlashOptions {
  image: string;
  /** A whole disk (/dev/sdb, /dev/mmcblk0) or a file. */
  device: string;
  /** Allow a disk the kernel does not call removable (never the system disk or a mounted one). */
  force?: boolean;
  system?: SystemView;
  progress?: Progress;
  /** Test hook: runs once the image is written and synced, before it is read back. */
  afterWrite?: (target: Target) => Promise<void> | void;
}

export interface FlashResult {
  target: Target;
  bytes: number;
  /** SHA-256 of the raw image, as written and as read back. */
  sha256: string;
  /** The manifest beside the image (`<image>.manifest.json`) the image matched; null when there is none. */
  manifest: string | null;
}

const LOCATE_CHUNK = MiB;
const SYNC_EVERY = 32 * MiB;

/** A whole-stream SHA-256 plus a hash per MiB, to say where two streams first differ. */
class ChunkedHash {
  readonly whole = createHash("sha256");
  readonly chunks: string[] = [];
  private current: Hash = createHash("sha1");
  private filled = 0;

  update(data: Buffer) {
    this.whole.update(data);
    let at = 0;
    while (at < data.length) {
      const take = Math.min(LOCATE_CHUNK - this.filled, data.length - at);
      this.current.update(data.subarray(at, at + take));
      this.filled += take;
      at += take;
      if (this.filled === LOCATE_CHUNK) this.close();
    }
  }

  private close() {
    this.chunks.push(this.current.digest("hex"));
    this.current = createHash("sha1");
    this.filled = 0;
  }

  end(): { sha256: string; chunks: string[] } {
    if (this.filled > 0) this.close();
    return { sha256: this.whole.digest("hex"), chunks: this.chunks };
  }
}

export async function flashImage(o: FlashOptions): Promise<FlashResult> {
  const view = o.system ?? thisMachine;
  const progress = o.progress ?? silentProgress;
  const source = await openImageSource(o.image, "image");
  // Refuse what is not a disk image (a manifest, a half download) before touching the target.
  readPartitionTable(await readRawHead(source, TABLE_HEAD_BYTES), source.rawBytes, `image ${o.image}`);
  await refuseSameFile(o.image, o.device);
  const target = await checkTarget(o.device, source.rawBytes, view, o.force ?? false);

  let phase: Phase | undefined;
  try {
    const written = new ChunkedHash();
    const fileHash = createHash("sha256");
    let bytes = 0;
    const fd = await openTarget(target, "write");
    try {
      phase = progress.phase("writing", source.rawBytes);
      let sinceSync = 0;
      await pumpRaw(
        source,
        async (chunk) => {
          await writeFully(fd, chunk);
          written.update(chunk);
          bytes += chunk.length;
          sinceSync += chunk.length;
          if (target.kind === "disk" && sinceSync >= SYNC_EVERY) {
            await fd.datasync();
            sinceSync = 0;
          }
          phase!.advance(chunk.length);
        },
        { onFileChunk: (chunk) => fileHash.update(chunk) },
      );
      await fd.sync();
      phase.finish();
      phase = undefined;
    } finally {
      await fd.close();
    }
    const wrote = written.end();
    const manifest = await checkManifest(o.image, fileHash.digest("hex"));
    await o.afterWrite?.(target);

    const readBack = new ChunkedHash();
    phase = progress.phase("verifying", bytes);
    const got = await readTarget(target, bytes, (chunk) => {
      readBack.update(chunk);
      phase!.advance(chunk.length);
    });
    const read = readBack.end();
    if (got < bytes) {
      throw new FlashError(
        `verification failed: ${o.device} gave back ${got} of the ${bytes} bytes written (a card smaller than it claims?)`,
      );
    }
    if (read.sha256 !== wrote.sha256) {
      const offset = await firstDifference(source, target, wrote.chunks, read.chunks);
      throw new FlashError(
        `verification failed: ${o.device} differs from the image at byte ${offset} ` +
          `(sha256 written ${wrote.sha256.slice(0, 12)}…, read back ${read.sha256.slice(0, 12)}…): the card may be faulty or fake, try another`,
      );
    }
    phase.finish();
    phase = undefined;
    return { target, bytes, sha256: wrote.sha256, manifest };
  } catch (err) {
    phase?.abort();
    throw describeIoError(err, o.device);
  }
}

/**
 * An image built by image build has its manifest beside it: the image file
 * must hash as recorded there, or it changed or was damaged since (a bad copy,
 * a truncated download), and the card holds that damage.
 */
async function checkManifest(image: string, fileSha: string): Promise<string | null> {
  const path = `${image}.manifest.json`;
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch {
    return null;
  }
  let recorded: unknown;
  try {
    recorded = (JSON.parse(text) as { output?: { sha256?: unknown } }).output?.sha256;
  } catch {
    recorded = undefined;
  }
  if (typeof recorded !== "string") return null;
  if (recorded !== fileSha) {
    throw new FlashError(
      `${image} does not match its manifest (sha256 ${fileSha.slice(0, 12)}…, recorded ${recorded.slice(0, 12)}…): ` +
        "it changed or was damaged since it was built; copy or build it again",
    );
  }
  return path;
}

async function refuseSameFile(image: string, device: string) {
  const [a, b] = await Promise.all([stat(image), stat(device).catch(() => undefined)]);
  if (b && a.dev === b.dev && a.ino === b.ino)
    throw new FlashError(`${device} is the image itself: give another target`);
}

async function openTarget(target: Target, mode: "write" | "read"): Promise<FileHandle> {
  if (target.kind === "file") {
    if (mode === "read") return open(target.path, "r");
    // An image may hold a claim code and a Wi-Fi key: a copy in a file is the owner's only, as the image is.
    const file = await open(target.path, "w", 0o600);
    await file.chmod(0o600);
    return file;
  }
  // O_EXCL on a block device (without O_CREAT) claims it: EBUSY while anything has it mounted or claimed.
  const flags = (mode === "write" ? constants.O_WRONLY : constants.O_RDONLY) | constants.O_EXCL;
  return open(target.path, flags);
}

async function writeFully(fd: FileHandle, chunk: Buffer) {
  let at = 0;
  while (at < chunk.length) {
    const { bytesWritten } = await fd.write(chunk, at, chunk.length - at, null);
    at += bytesWritten;
  }
}

/** Reads the first `bytes` of the target, chunk by chunk; returns how many it gave. */
async function readTarget(target: Target, bytes: number, see: (chunk: Buffer) => void, from = 0): Promise<number> {
  const fd = await openTarget(target, "read");
  const buffer = Buffer.allocUnsafe(4 * MiB);
  let done = 0;
  try {
    while (done < bytes) {
      const { bytesRead } = await fd.read(buffer, 0, Math.min(buffer.length, bytes - done), from + done);
      if (bytesRead === 0) break;
      see(buffer.subarray(0, bytesRead));
      done += bytesRead;
    }
  } finally {
    await fd.close();
  }
  return done;
}

/** The first byte where target and image differ, found from the per-MiB hashes and one MiB of each compared. */
async function firstDifference(source: ImageSource, target: Target, wrote: string[], read: string[]): Promise<number> {
  let chunk = 0;
  while (chunk < wrote.length && wrote[chunk] === read[chunk]) chunk++;
  const start = chunk * LOCATE_CHUNK;
  const parts: Buffer[] = [];
  let seen = 0;
  await pumpRaw(
    source,
    (data) => {
      const from = Math.max(start - seen, 0);
      if (from < data.length) parts.push(Buffer.from(data.subarray(from)));
      seen += data.length;
    },
    { limit: start + LOCATE_CHUNK },
  );
  const expected = Buffer.concat(parts);
  const actualParts: Buffer[] = [];
  await readTarget(target, expected.length, (data) => actualParts.push(Buffer.from(data)), start);
  const actual = Buffer.concat(actualParts);
  for (let i = 0; i < expected.length; i++) if (expected[i] !== actual[i]) return start + i;
  return start;
}

/** A failure opening or writing the target, as the one line an installer can act on. */
export function describeIoError(err: unknown, device: string): unknown {
  const e = err as NodeJS.ErrnoException;
  switch (e?.code) {
    case "EBUSY":
      return new FlashError(
        `${device} is in use (mounted, or open in another program): unmount it and close what uses it`,
      );
    case "EACCES":
    case "EPERM":
      return new FlashError(`cannot open ${device}: permission denied (run with sudo, or join the disk group)`);
    case "ENOSPC":
      return new FlashError(`no space left writing ${device}: the image does not fit`);
    case "EROFS":
      return new FlashError(`${device} is read-only: is the card's lock switch on?`);
    case "EIO":
      return new FlashError(`writing ${device} failed with an I/O error: the card or reader may be faulty`);
    case "ENOENT":
      return new FlashError(`${device}: no such disk or folder`);
    default:
      return err;
  }
}
