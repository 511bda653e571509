/**
 * The kiosk's update bundle (docs/kiosk-updates.md): one `.tar.gz` holding a
 * release (the files of the kiosk bundle, kiosk-image/bundle.ts) and its
 * manifest, `paylane-release.json`, which names the platform and architecture
 * and every file's size and SHA-256. The release's id is its version and the
 * first 12 hex of the hash of that file list, so two builds of the same
 * sources have the same id and a changed byte gives a new one.
 *
 * Reading a bundle extracts it into a staging folder and checks it there:
 * only regular files and folders, no path outside the folder, nothing the
 * manifest does not list, every listed file present with its size and hash.
 * A bundle that fails any check never becomes a release.
 */
import { createHash, type KeyObject, sign, verify } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
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

/**
 * Extracts `bundle` into `into` (made here) and checks it against its manifest
 * and the machine. Throws BundleRefused naming the first problem; the caller
 * deletes `into` then.
 */
export async function extractRelease(bundle: string, into: string, target: ExpectedTarget): Promise<ReleaseManifest> {
  const info = await stat(bundle).catch(() => undefined);
  if (!info?.isFile()) throw new BundleRefused(`${bundle}: no such file`);
  // A first pass reads the whole archive and writes nothing: a truncated or corrupt one, or one holding
  // links, devices or paths outside the folder, is refused before a single file lands.
  const odd: string[] = [];
  try {
    await tar.t({
      file: bundle,
      strict: true,
      onReadEntry: (entry) => {
        const clean = entry.path.replace(/^\.\//, "").replace(/\/$/, "");
        if ((entry.type !== "File" && entry.type !== "Directory") || !SAFE_PATH.test(clean)) {
          odd.push(`${entry.path} (${entry.type})`);
        }
        entry.resume();
      },
    });
  } catch (err) {
    throw new BundleRefused(`${bundle}: not a readable .tar.gz (${(err as Error).message}); download it again`);
  }
  if (odd.length > 0) throw new BundleRefused(`${bundle}: holds ${odd[0]}: only plain files are allowed`);
  await mkdir(into, { recursive: true });
  await tar.x({ file: bundle, cwd: into, strict: true, preserveOwner: false });

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
