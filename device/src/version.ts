import { createRequire } from "node:module";

/** The device package's version, as published (birth messages, `--version`). */
export const DEVICE_VERSION: string = createRequire(import.meta.url)("../package.json").version;
