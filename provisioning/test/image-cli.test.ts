/**
 * paylane-provision image build and flash as an installer runs them: a child
 * process on a synthetic Raspberry Pi OS image with the real kiosk contents.
 * The printed SHA-256 is the file's and the manifest's; no secret reaches
 * the terminal or the manifest; bad flags are one line and exit 2; a
 * refused build is one line and exit 1.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatClaimCode, newClaimCode } from "@paylane/protocol";
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { Manifest } from "../src/image/manifest.ts";
import { makeBaseImage, readBootFile, sfdiskJson } from "./support/base-image.ts";

const dir = mkdtempSync(join(tmpdir(), "paylane-image-cli-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));
const MAIN = join(import.meta.dirname, "../src/main.ts");
const base = makeBaseImage({ dir });

function cli(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return cliWithInput(undefined, ...args);
}

/** The CLI with `input` on its standard input (none: /dev/null). */
function cliWithInput(
  input: string | undefined,
  ...args: string[]
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", MAIN, ...args], {
      env: { ...process.env, PAYLANE_CLOUD_URL: "" },
      stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    child.stdin?.end(input);
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (d) => {
      stdout += d;
    });
    child.stderr?.on("data", (d) => {
      stderr += d;
    });
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

const sha256 = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");
const COMMON = ["--cloud-url", "https://cloud.example.com", "--mqtt-url", "mqtts://mqtt.example.com"];

test("--help of image build (flash's: flash.test.ts)", async () => {
  const build = await cli("image", "build", "--help");
  assert.is(build.code, 0);
  for (const flag of ["--base", "--site", "--out", "--claim", "--wifi-password-file", "--ssh-key", "--manifest"]) {
    assert.match(build.stdout, flag);
  }
  assert.match(build.stdout, "Examples:");
});

test("image build: the hash printed, in the manifest and of the file agree; every file on the boot partition; no secret shown", async () => {
  const claim = formatClaimCode(newClaimCode().replace(/-/g, ""));
  const passphrase = "venue wifi passphrase";
  writeFileSync(join(dir, "wifi.txt"), `${passphrase}\n`);
  const out = join(dir, "kiosk.img");
  // The claim code on standard input (--claim -), as the docs advise: never in ps or the shell's history.
  const r = await cliWithInput(
    `${claim}\n`,
    "image",
    "build",
    "--base",
    base.path,
    "--site",
    "demo",
    "--out",
    out,
    ...COMMON,
    "--claim",
    "-",
    "--wifi-ssid",
    "Venue",
    "--wifi-password-file",
    join(dir, "wifi.txt"),
    "--wifi-country",
    "gb",
    "--hostname",
    "kiosk-demo-1",
  );
  assert.is(r.code, 0, r.stderr);
  const printed = /^sha256 ([0-9a-f]{64}) {2}(.+)$/m.exec(r.stdout);
  assert.ok(printed, r.stdout);
  assert.is(printed![2], out);
  assert.is(printed![1], sha256(out));
  const manifest = JSON.parse(readFileSync(`${out}.manifest.json`, "utf8")) as Manifest;
  assert.is(manifest.output.sha256, printed![1]);
  assert.match(r.stdout, "the image holds a claim code and Wi-Fi credentials: it is readable by you only (0600)");
  assert.is(statSync(out).mode & 0o777, 0o600);
  assert.is(manifest.options.claim, true);
  const kiosk = JSON.parse(readBootFile(out, "paylane/config/kiosk.json").toString("utf8")) as { claim: string };
  assert.is(kiosk.claim, claim, "the code read from standard input is the one baked in");
  assert.equal(manifest.options.wifi, { ssid: "Venue", country: "GB", password: true });

  for (const text of [r.stdout, r.stderr, readFileSync(`${out}.manifest.json`, "utf8")]) {
    assert.not.match(text, claim);
    assert.not.match(text, claim.replace(/-/g, ""));
    assert.not.match(text, passphrase);
  }
  // Every file the manifest lists is on the boot partition, byte for byte.
  for (const f of manifest.files) {
    const back = readBootFile(out, f.path);
    assert.is(back.length, f.bytes, f.path);
    if (f.sha256) assert.is(createHash("sha256").update(back).digest("hex"), f.sha256, f.path);
  }
  assert.match(readBootFile(out, "cmdline.txt").toString(), "systemd.run=/boot/firmware/firstrun.sh");
  assert.ok(readBootFile(out, "firstrun.sh").length > 0);
  assert.equal(sfdiskJson(out), sfdiskJson(base.path));
});

test("a bad flag is one line naming it, exit 2; a refused build one line, exit 1; nothing left behind", async () => {
  const junk = join(dir, "junk.img");
  writeFileSync(junk, Buffer.alloc(4096, 7));
  const typo = "15686-60679-17142-72376";
  const [flag, refused, mistyped] = await Promise.all([
    cli("image", "build", "--base", base.path, "--out", join(dir, "never.img"), "--site", "Demo!"),
    cli("image", "build", "--base", junk, "--site", "demo", "--out", join(dir, "junk-out.img"), ...COMMON),
    cli(
      "image",
      "build",
      "--base",
      base.path,
      "--site",
      "demo",
      "--out",
      join(dir, "never2.img"),
      ...COMMON,
      "--claim",
      typo,
    ),
  ]);
  // A code with a wrong check digit is 19 right digits: the refusal must not print them back.
  assert.is(mistyped.code, 2);
  assert.match(mistyped.stderr, /^paylane-provision: --claim: this claim code has a typo/);
  assert.not.ok(mistyped.stderr.includes(typo.slice(0, 11)), mistyped.stderr);
  assert.is(flag.code, 2, flag.stderr);
  assert.match(
    flag.stderr,
    /^paylane-provision: option '--site <id>' argument 'Demo!' is invalid\. expected a site id.* \(see paylane-provision --help\)\n$/,
  );
  assert.is(refused.code, 1);
  assert.is(
    refused.stderr,
    `paylane-provision: base image ${junk} is not a disk image: it has no partition table (no MBR signature 0x55AA)\n`,
  );
  assert.not.ok(readdirSync(dir).some((f) => f.startsWith("junk-out") || f.startsWith("never")));
});

test.run();
