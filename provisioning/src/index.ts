/** The provisioning library: what paylane-provision is made of, for tests and other tools. */
export { ProvisionError } from "./cli/errors.ts";
export { type FlashOptions, type FlashResult, flashImage } from "./flash/flash.ts";
export { type SystemView, thisMachine } from "./flash/system.ts";
export { FlashError, type Target } from "./flash/target.ts";
export { type BuildImageOptions, type BuildResult, buildImage, ImageBuildError } from "./image/build.ts";
export type { Manifest, ManifestFile } from "./image/manifest.ts";
export { DiskImageError, type PartitionTable, readPartitionTable } from "./image/partition-table.ts";
export { createProgress, type Progress, silentProgress } from "./progress.ts";
