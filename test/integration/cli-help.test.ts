/**
 * Every command a person runs explains itself: `--help` prints what it does
 * and how to configure it, on stdout, exits 0, and starts nothing (no
 * configuration is needed for it).
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";

const root = join(import.meta.dirname, "..", "..");
const COMMANDS = [
  { name: "paylane-device", file: "device/src/main.ts", mentions: ["--config", "reader.type"] },
  { name: "paylane-cloud", file: "cloud/src/main.ts", mentions: ["REGISTRY_PATH", "METRICS_TOKEN"] },
  { name: "paylane-gateway", file: "gateway/src/main.ts", mentions: ["MQTT_PORT", "REGISTRY_PATH"] },
];

for (const c of COMMANDS) {
  test(`${c.name} --help prints its usage and exits 0 without any configuration`, () => {
    const env = { ...process.env };
    for (const k of ["REGISTRY_PATH", "DATABASE_URL", "MQTT_URL", "CLOUD_PORT"]) delete env[k];
    const r = spawnSync(process.execPath, ["--import", "tsx", c.file, "--help"], {
      cwd: root,
      env,
      encoding: "utf8",
      timeout: 30_000,
    });
    assert.is(r.status, 0, r.stderr);
    assert.is(r.stderr, "");
    for (const m of c.mentions) assert.match(r.stdout, m);
  });
}

test.run();
