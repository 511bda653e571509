/**
 * The kiosk's update bundle (docs/kiosk-updates.md): one `.tar.gz` holding a
 * release (the files of the kiosk bundle, kiosk-image/bundle.ts) and its
 * manifest, `paylane-release.json`, which names the platform and architecture
 * and every file's size and SHA-256. The release's id is its version and the
 * first 12 hex of the hash of that file list, so two builds of the same
 * sources have the same id and a changed byte gives a new one.
 *
 * Reading a bundle first copies it, through one open file descriptor, into a
 * private temporary folder (the SHA-256 the operator gave is checked on those
 * bytes), then lists and extracts that copy — so the bytes checked are the
 * bytes extracted, whoever can write where the bundle was downloaded. The
 * extraction applies the listing's filter again (only regular files and
 * folders, no link, no absolute path, no `..`, only what the manifest lists),
 * masks modes (files 0644 or 0755, folders 0755: no setuid, setgid or
 * world-writable bit from the archive) and checks every listed file's size
 * and hash. A bundle that fails any check never becomes a release.
 */
import { createHash, type KeyObject, sign, verify } from "node:crypto";
import { createReadStream } from "node:fs";
import { chmod, mkdir, mkdtemp, open, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, relative, sep } from "node:path";
import * as tar from "tar";
import { z } from "zod";
import type { BootFile } from "../kiosk-image/contents.ts";

export const RELEASE_FORMAT = "paylane-kiosk-release/1";
export const MANIFEST_NAME = "paylane-release.json";
/** Ed25519 signature of paylane-release.json's exact bytes (base64), when the bundle was built with a key. */
export const SIGNATURE_NAME = "paylane-release.sig";

/** A release id is also a folder name: no slashes, no dots first. */
const RELEASE_ID = /^[0-9A-Za-z][0-9A-Za-z.+_-]{0,80}$/;
const SAFE_PATH = /^(?!\/)(?!.*(^|\/)\.\.?(\/|$))[A-Za-z0-9._@+/-]+$/;

const FileEntry = z.object({
  path: z.string().regex(SAFE_PATH, "a relative path without . or .. parts"),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  bytes: z.number().int().nonnegative(),
});

export const ReleaseManifest = z.object({
  format: z.literal(RELEASE_FORMAT),
  id: z.string().regex(RELEASE_ID),
  version: z.string().min(1),
  platform: z.string().min(1),
  arch: z.string().min(1),
  builtAt: z.string(),
  files: z.array(FileEntry).min(1),
});
export type ReleaseManifest = z.infer<typeof ReleaseManifest>;

/** Why a bundle was refused; nothing on the kiosk changed. */
export class BundleRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BundleRefused";
  }
}

export function sha256Hex(content: Buffer | string): string {
  return createHash("sha256").update(content).digest("hex");
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

function releaseId(version: string, files: ReleaseManifest["files"]): string {
  const digest = sha256Hex(files.map((f) => `${f.sha256}  ${f.bytes}  ${f.path}\n`).join(""));
  return `${version}-${digest.slice(0, 12)}`;
}

/** The manifest of `files` (paths relative to the release folder). */
export function releaseManifest(
  files: BootFile[],
  meta: { version: string; platform?: string; arch?: string; builtAt?: Date },
): ReleaseManifest {
  const entries = files
    .map((f) => ({ path: f.path, sha256: sha256Hex(f.content), bytes: Buffer.byteLength(f.content) }))
    .sort((a, b) => (a.path < b.path ? -1 : 1));
  for (const e of entries) {
    if (!SAFE_PATH.test(e.path) || e.path === MANIFEST_NAME) throw new Error(`release file ${e.path}: not allowed`);
  }
  return ReleaseManifest.parse({
    format: RELEASE_FORMAT,
    id: releaseId(meta.version, entries),
    version: meta.version,
    platform: meta.platform ?? "linux",
    arch: meta.arch ?? "arm64",
    builtAt: (meta.builtAt ?? new Date()).toISOString(),
    files: entries,
  });
}

/** Writes `files` and their manifest as a gzipped tar at `out`; returns the manifest. */
export async function writeReleaseBundle(
  files: BootFile[],
  meta: Parameters<typeof releaseManifest>[1],
  out: string,
  /** An Ed25519 private key: the manifest (and so every file's hash) is signed with it. */
  signKey?: KeyObject,
): Promise<ReleaseManifest> {
  const manifest = releaseManifest(files, meta);
  const work = await mkdtemp(join(tmpdir(), "paylane-release-"));
  try {
    for (const f of files) {
      await mkdir(dirname(join(work, f.path)), { recursive: true });
      await writeFile(join(work, f.path), f.content);
    }
    const manifestBytes = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`);
    await writeFile(join(work, MANIFEST_NAME), manifestBytes);
    if (signKey) {
      await writeFile(join(work, SIGNATURE_NAME), `${sign(null, manifestBytes, signKey).toString("base64")}\n`);
    }
    await mkdir(dirname(out), { recursive: true });
    // portable: no owner names or uids from the build machine; files are made root's on the kiosk.
    await tar.c({ gzip: true, file: out, cwd: work, portable: true, noMtime: true }, [
      MANIFEST_NAME,
      ...(signKey ? [SIGNATURE_NAME] : []),
      ...manifest.files.map((f) => f.path),
    ]);
    return manifest;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

function jsonOrNull(bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString("utf8"));
  } catch {
    return null;
  }
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(relative(dir, join(e.parentPath, e.name)).split(sep).join("/"));
    else if (!e.isDirectory()) out.push(`${relative(dir, join(e.parentPath, e.name))} (not a regular file)`);
  }
  return out;
}

export interface ExpectedTarget {
  platform: string;
  arch: string;
  /** The Ed25519 public key bundles must be signed with; unset: hashes only. */
  signingKey?: KeyObject;
}

/** What a bundle entry may be: a plain file or folder at a safe relative path. Null when allowed, else why not. */
function oddEntry(entry: { path: string; type: string }): string | null {
  const clean = entry.path.replace(/^\.\//, "").replace(/\/$/, "");
  if ((entry.type !== "File" && entry.type !== "Directory") || !SAFE_PATH.test(clean)) {
    return `${entry.path} (${entry.type})`;
  }
  return null;
}

/**
 * Copies `bundle` into a fresh folder only this user can enter (mkdtemp: 0700, root's when run as root),
 * reading it through one open file descriptor, and hashes the bytes as it copies them. Every later step
 * reads that copy: whoever can write where the bundle was downloaded cannot swap it between the checks
 * and the extraction.
 */
async function privateCopy(bundle: string): Promise<{ dir: string; file: string; sha256: string }> {
  // stat first: open(2) of a FIFO would wait for a writer forever.
  if (!(await stat(bundle).catch(() => undefined))?.isFile()) throw new BundleRefused(`${bundle}: no such file`);
  const source = await open(bundle, "r").catch(() => undefined);
  if (!source) throw new BundleRefused(`${bundle}: no such file`);
  try {
    if (!(await source.stat()).isFile()) throw new BundleRefused(`${bundle}: no such file`);
    const dir = await mkdtemp(join(tmpdir(), "paylane-bundle-"));
    const file = join(dir, "bundle.tar.gz");
    const hash = createHash("sha256");
    try {
      const target = await open(file, "wx", 0o600);
      try {
        for await (const chunk of source.createReadStream({ autoClose: false, start: 0 })) {
          hash.update(chunk as Buffer);
          await target.write(chunk as Buffer);
        }
      } finally {
        await target.close();
      }
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
    return { dir, file, sha256: hash.digest("hex") };
  } finally {
    await source.close();
  }
}

/** Files 0644 (0755 when the bundle made them executable), folders 0755: no setuid, setgid or world-writable bits. */
async function maskModes(dir: string): Promise<void> {
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    const at = join(e.parentPath, e.name);
    if (e.isDirectory()) await chmod(at, 0o755);
    else if (e.isFile()) await chmod(at, (await stat(at)).mode & 0o111 ? 0o755 : 0o644);
  }
  await chmod(dir, 0o755);
}

/**
 * Extracts `bundle` into `into` (made here) and checks it against its manifest
 * and the machine. Throws BundleRefused naming the first problem; the caller
 * deletes `into` then. With `expectSha256`, the bytes extracted are the bytes
 * whose hash was checked.
 */
export async function extractRelease(
  bundle: string,
  into: string,
  target: ExpectedTarget,
  expectSha256?: string,
): Promise<ReleaseManifest> {
  const copy = await privateCopy(bundle);
  try {
    if (expectSha256 && copy.sha256 !== expectSha256.toLowerCase()) {
      throw new BundleRefused(`${bundle}: SHA-256 is ${copy.sha256}, expected ${expectSha256}; download it again`);
    }
    return await extractCopy(bundle, copy.file, into, target);
  } finally {
    await rm(copy.dir, { recursive: true, force: true });
  }
}

async function extractCopy(
  bundle: string,
  file: string,
  into: string,
  target: ExpectedTarget,
): Promise<ReleaseManifest> {
  // A first pass reads the whole archive and writes nothing: a truncated or corrupt one, or one holding
  // links, devices or paths outside the folder, is refused before a single file lands.
  const odd: string[] = [];
  const manifestChunks: Buffer[] = [];
  try {
    await tar.t({
      file,
      strict: true,
      onReadEntry: (entry) => {
        const why = oddEntry(entry);
        if (why) odd.push(why);
        if (!why && entry.path.replace(/^\.\//, "") === MANIFEST_NAME) {
          entry.on("data", (chunk: Buffer) => manifestChunks.push(chunk));
        }
        entry.resume();
      },
    });
  } catch (err) {
    throw new BundleRefused(`${bundle}: not a readable .tar.gz (${(err as Error).message}); download it again`);
  }
  if (odd.length > 0) throw new BundleRefused(`${bundle}: holds ${odd[0]}: only plain files are allowed`);
  // Only what the manifest lists is written (and the folders above it); what it does not list is refused below.
  const listedPaths = new Set([MANIFEST_NAME, SIGNATURE_NAME]);
  const folders = new Set<string>();
  const early = ReleaseManifest.safeParse(jsonOrNull(Buffer.concat(manifestChunks)));
  for (const f of early.success ? early.data.files : []) {
    listedPaths.add(f.path);
    for (let i = f.path.indexOf("/"); i > 0; i = f.path.indexOf("/", i + 1)) folders.add(f.path.slice(0, i));
  }
  // The folder stays 0700 until every mode is masked; the first pass's filter again, on the same bytes.
  await mkdir(into, { recursive: true, mode: 0o700 });
  await chmod(into, 0o700);
  const skipped: string[] = [];
  const unlisted: string[] = [];
  await tar.x({
    file,
    cwd: into,
    strict: true,
    preserveOwner: false,
    filter: (path, entry) => {
      const type = "type" in entry ? entry.type : "File";
      const why = oddEntry({ path, type });
      if (why) {
        skipped.push(why);
        return false;
      }
      const clean = path.replace(/^\.\//, "").replace(/\/$/, "");
      if (type === "Directory" ? folders.has(clean) : listedPaths.has(clean)) return true;
      unlisted.push(clean);
      return false;
    },
  });
  if (skipped.length > 0) throw new BundleRefused(`${bundle}: holds ${skipped[0]}: only plain files are allowed`);
  await maskModes(into);

  let raw: unknown;
  let manifestBytes: Buffer;
  try {
    manifestBytes = await readFile(join(into, MANIFEST_NAME));
    raw = JSON.parse(manifestBytes.toString("utf8"));
  } catch {
    throw new BundleRefused(`${bundle}: has no readable ${MANIFEST_NAME}: not a PayLane kiosk bundle`);
  }
  if (target.signingKey) {
    const signature = await readFile(join(into, SIGNATURE_NAME), "utf8").catch(() => null);
    if (signature === null) {
      throw new BundleRefused(
        `${bundle}: is not signed, and this kiosk accepts only signed bundles (bundle build --sign-key)`,
      );
    }
    if (!verify(null, manifestBytes, target.signingKey, Buffer.from(signature.trim(), "base64"))) {
      throw new BundleRefused(`${bundle}: its signature does not match this kiosk's update signing key`);
    }
  }
  const parsed = ReleaseManifest.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new BundleRefused(`${bundle}: ${MANIFEST_NAME}: ${issue?.path.join(".")}: ${issue?.message}`);
  }
  const manifest = parsed.data;
  if (manifest.platform !== target.platform || manifest.arch !== target.arch) {
    throw new BundleRefused(
      `${bundle}: built for ${manifest.platform}-${manifest.arch}, this kiosk is ${target.platform}-${target.arch}`,
    );
  }
  if (releaseId(manifest.version, manifest.files) !== manifest.id) {
    throw new BundleRefused(`${bundle}: release id ${manifest.id} does not match its file list`);
  }
  if (unlisted.length > 0) throw new BundleRefused(`${bundle}: holds ${unlisted[0]}, which its manifest does not list`);
  const listed = new Map(manifest.files.map((f) => [f.path, f]));
  for (const path of await filesUnder(into)) {
    if (path !== MANIFEST_NAME && path !== SIGNATURE_NAME && !listed.has(path)) {
      throw new BundleRefused(`${bundle}: holds ${path}, which its manifest does not list`);
    }
  }
  for (const f of manifest.files) {
    const at = join(into, f.path);
    const size = await stat(at).then(
      (s) => s.size,
      () => undefined,
    );
    if (size === undefined) throw new BundleRefused(`${bundle}: ${f.path} is missing`);
    if (size !== f.bytes || (await sha256File(at)) !== f.sha256) {
      throw new BundleRefused(`${bundle}: ${f.path} is corrupt (its SHA-256 differs from the manifest's)`);
    }
  }
  return manifest;
}
