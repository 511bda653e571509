/**
 * Every command a person runs explains itself: `--help` prints what it does,
 * how to configure it and examples, on stdout, exits 0, and starts nothing
 * (no configuration is needed for it). `--version` prints the version of the
 * bin's own package.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";

const root = join(import.meta.dirname, "..", "..");
const COMMANDS = [
  {
    name: "paylane-device",
    file: "device/src/main.ts",
    pkg: "device",
    mentions: ["--config", "reader.type", "LOG_LEVEL"],
  },
  { name: "paylane-cloud", file: "cloud/src/main.ts", pkg: "cloud", mentions: ["REGISTRY_PATH", "METRICS_TOKEN"] },
  { name: "paylane-gateway", file: "gateway/src/main.ts", pkg: "gateway", mentions: ["MQTT_PORT", "REGISTRY_PATH"] },
  // tap drives a kiosk's local API: it carries the kiosk package's version
  { name: "npm run tap", file: "scripts/tap.ts", pkg: "device", mentions: ["--kiosk", "--uid", "PAYLANE_DATA"] },
  {
    name: "paylane-ops",
    file: "ops/src/main.ts",
    pkg: "ops",
    mentions: ["watch", "send", "MQTT_URL", "PAYLANE_OPS_PASSWORD"],
  },
];

function run(file: string, arg: string) {
  const env = { ...process.env };
  for (const k of ["REGISTRY_PATH", "DATABASE_URL", "MQTT_URL", "CLOUD_PORT"]) delete env[k];
  return spawnSync(process.execPath, ["--import", "tsx", file, arg], {
    cwd: root,
    env,
    encoding: "utf8",
    timeout: 30_000,
  });
}

for (const c of COMMANDS) {
  test(`${c.name} --help prints its usage and examples and exits 0 without any configuration`, () => {
    const r = run(c.file, "--help");
    assert.is(r.status, 0, r.stderr);
    assert.is(r.stderr, "");
    for (const m of c.mentions) assert.match(r.stdout, m);
    assert.match(r.stdout, /^Usage: /);
    assert.match(r.stdout, /\nExamples:\n(.*\n)* {2}\$ /);
  });

  test(`${c.name} --version prints ${c.pkg}/package.json's version`, () => {
    const { version } = JSON.parse(readFileSync(join(root, c.pkg, "package.json"), "utf8")) as { version: string };
    const r = run(c.file, "--version");
    assert.is(r.status, 0, r.stderr);
    assert.is(r.stdout, `${version}\n`);
  });
}

test.run();
