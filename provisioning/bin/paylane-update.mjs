#!/usr/bin/env node
// paylane-update from the repository (tests, the docs' demo). On a kiosk it is the bundled
// /opt/paylane/updater/paylane-update.mjs, started by /opt/paylane/bin/paylane-update.
import { register } from "tsx/esm/api";

register();
await import("../src/update/main.ts");
