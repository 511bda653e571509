#!/usr/bin/env node
// The CLI is TypeScript run by tsx. `node --import tsx` in a shebang resolves tsx from the current folder, so the
// command failed anywhere outside the repository; registering tsx from here resolves it from this package instead.
import { register } from "tsx/esm/api";

register();
await import("../src/dr/main.ts");
