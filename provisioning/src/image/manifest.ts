/**
 * The manifest written beside a kiosk image: what went in (base image,
 * partition table, every file added, versions, options) and the hashes of
 * what came out, so an image can be checked and traced later. It may be
 * shared, so it holds no secret, and no hash of a file that holds one (a
 * hash of a file with a Wi-Fi password in a known template is a dictionary
 * attack waiting to happen).
 */
import { createHash } from "node:crypto";
import type { BootFile } from "../kiosk-image/contents.ts";

export interface ManifestFile {
  path: string;
  bytes: number;
  /** Absent when the file holds a secret (then `secret` is true). */
  sha256?: string;
  secret?: true;
}

export interface Manifest {
  manifestVersion: 1;
  tool: string;
  created: string;
  base: { path: string; sha256: string; bytes: number; compressed: boolean; rawBytes: number };
  partitionTable: {
    scheme: "mbr" | "gpt";
    sectorSize: number;
    /** The number of the FAT partition the files went to. */
    boot: number;
    partitions: { number: number; type: string; start: number; bytes: number }[];
  };
  cmdline: { before: string; after: string };
  files: ManifestFile[];
  versions: Record<string, string>;
  options: Record<string, unknown>;
  output: {
    path: string;
    bytes: number;
    sha256: string;
    compressed: boolean;
    raw: { bytes: number; sha256: string };
  };
}

export function manifestFile(f: BootFile, secrets: string[]): ManifestFile {
  const content = typeof f.content === "string" ? Buffer.from(f.content) : f.content;
  const holdsSecret = secrets.some((s) => s.length > 0 && content.includes(s));
  if (holdsSecret) return { path: f.path, bytes: content.length, secret: true };
  return { path: f.path, bytes: content.length, sha256: createHash("sha256").update(content).digest("hex") };
}
