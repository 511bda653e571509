#!/usr/bin/env node
// The CLI is TypeScript run by tsx, registered from this package so the command works from any folder.
import { register } from "tsx/esm/api";

register();
await import("../src/sim/main.ts");
