/**
 * The kiosk's systemd units pass `systemd-analyze verify` (systemd's own
 * parser, against a temporary root holding the commands they run and the
 * host's stock units), say what a kiosk needs, and the storage check refuses
 * a journal on volatile storage.
 */
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, readFileSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { ASSETS } from "../src/kiosk-image/index.ts";

const UNITS = join(ASSETS, "systemd");
const unit = (name: string): string => readFileSync(join(UNITS, name), "utf8");
const STOCK_UNITS = "/usr/lib/systemd/system";

let root: string;
test.before(async () => {
  root = await mkdtemp(join(tmpdir(), "paylane-units-"));
  // What the units name, as on an installed kiosk: the bundle's tools, node, and the stock units they order against.
  await mkdir(join(root, "etc/systemd/system"), { recursive: true });
  await mkdir(join(root, "opt/paylane/bin"), { recursive: true });
  await mkdir(join(root, "opt/paylane/current/app"), { recursive: true });
  await mkdir(join(root, "usr/bin"), { recursive: true });
  for (const name of await readdir(join(ASSETS, "bin"))) {
    await copyFile(join(ASSETS, "bin", name), join(root, "opt/paylane/bin", name));
  }
  await writeFile(join(root, "usr/bin/node"), "#!/bin/sh\n", { mode: 0o755 });
  await writeFile(join(root, "opt/paylane/current/app/paylane-device.mjs"), "");
  cpSync(STOCK_UNITS, join(root, "usr/lib/systemd/system"), { recursive: true, verbatimSymlinks: true });
});
test.after(async () => {
  await rm(root, { recursive: true, force: true });
});

function verify(names: string[]): { status: number | null; output: string } {
  const r = spawnSync(
    "systemd-analyze",
    ["verify", `--root=${root}`, ...names.map((n) => join(root, "etc/systemd/system", n))],
    {
      encoding: "utf8",
    },
  );
  return { status: r.status, output: (r.stdout + r.stderr).trim() };
}

test("every unit passes systemd-analyze verify with nothing to say", async () => {
  assert.ok(existsSync(STOCK_UNITS), "systemd's stock units (Debian package systemd) are needed to verify against");
  const names = (await readdir(UNITS)).filter((n) => n.endsWith(".service"));
  assert.equal(names.sort(), [
    "paylane-device.service",
    "paylane-install.service",
    "paylane-kiosk-ui.service",
    "paylane-storage-check.service",
    "paylane-update-check.service",
  ]);
  for (const name of names) await copyFile(join(UNITS, name), join(root, "etc/systemd/system", name));
  const result = verify(names);
  assert.is(result.output, "");
  assert.is(result.status, 0);
});

test("the verifier is not silent by default: a misspelt key and a missing command are reported", async () => {
  await writeFile(
    join(root, "etc/systemd/system/broken.service"),
    unit("paylane-device.service")
      .replace("WatchdogSec=30", "WatchDogSec=30")
      .replace("/usr/bin/node", "/usr/bin/nodejs"),
  );
  const result = verify(["broken.service"]);
  assert.match(result.output, /Unknown key( name)? 'WatchDogSec'/);
  assert.match(result.output, /\/usr\/bin\/nodejs is not executable/);
});

test("the daemon: notify with a 30 s watchdog, restarted always, as paylane with the hardware groups", () => {
  const daemon = unit("paylane-device.service");
  for (const line of [
    "Type=notify",
    "NotifyAccess=all",
    "WatchdogSec=30",
    "Restart=always",
    "User=paylane",
    "SupplementaryGroups=dialout lp gpio",
    "StateDirectory=paylane",
    "ReadWritePaths=/var/lib/paylane",
    "ExecStart=/usr/bin/node /opt/paylane/current/app/paylane-device.mjs --config /var/lib/paylane/kiosk.json",
    "Requires=paylane-install.service paylane-storage-check.service",
    "ProtectSystem=strict",
  ]) {
    assert.ok(daemon.split("\n").includes(line), `paylane-device.service lacks ${line}`);
  }
  // Hardening that would cut the kiosk off its hardware.
  for (const key of ["PrivateDevices=yes", "ProtectKernelTunables=yes", "MemoryDenyWriteExecute=yes"]) {
    assert.not.ok(daemon.split("\n").includes(key), key);
  }
  assert.match(unit("paylane-storage-check.service"), /^RequiredBy=paylane-device\.service$/m);
  assert.match(unit("paylane-storage-check.service"), /^Before=paylane-device\.service$/m);
});

test("the touch UI: Chromium in kiosk mode under cage on tty1, at the daemon's local address", () => {
  const ui = unit("paylane-kiosk-ui.service");
  assert.match(ui, /^ExecStart=\/opt\/paylane\/bin\/paylane-kiosk-ui http:\/\/127\.0\.0\.1:8081\/$/m);
  assert.match(ui, /^TTYPath=\/dev\/tty1$/m);
  assert.match(ui, /^Conflicts=getty@tty1\.service$/m);
  const launcher = readFileSync(join(ASSETS, "bin/paylane-kiosk-ui"), "utf8");
  for (const flag of [
    "--kiosk",
    "--noerrdialogs",
    "--disable-translate",
    "--no-first-run",
    "--disable-pinch",
    "--overscroll-history-navigation=0",
    "--check-for-update-interval=31536000",
    "--window-size=800,480",
  ]) {
    assert.ok(launcher.includes(` ${flag} `), `the browser lacks ${flag}`);
  }
  assert.match(launcher, /exec cage /);
});

test("the UI launcher finds Chromium by either Raspberry Pi OS name and runs it under cage", async () => {
  for (const browser of ["chromium", "chromium-browser"]) {
    const bin = join(root, `ui-bin-${browser}`);
    await mkdir(bin, { recursive: true });
    await writeFile(join(bin, "cage"), `#!/bin/sh\necho "$@"\n`, { mode: 0o755 });
    await writeFile(join(bin, browser), "#!/bin/sh\n", { mode: 0o755 });
    // Only the stubs on PATH: this machine may have a Chromium of its own.
    const r = spawnSync(join(ASSETS, "bin/paylane-kiosk-ui"), ["http://127.0.0.1:8081/"], {
      env: { PATH: bin },
      encoding: "utf8",
    });
    assert.is(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^-d -s -- ${bin}/${browser} --kiosk .* http://127\\.0\\.0\\.1:8081/$`, "m"));
  }
  const none = spawnSync(join(ASSETS, "bin/paylane-kiosk-ui"), [], { env: { PATH: "/nonexistent" }, encoding: "utf8" });
  assert.is(none.status, 1);
  assert.match(none.stderr, /no chromium or chromium-browser installed; paylane-install\.service installs it/);
});

async function storageCheck(fstype: string, dir = "/var/lib/paylane/not-yet") {
  const bin = join(root, "stub-bin");
  await mkdir(bin, { recursive: true });
  await writeFile(join(bin, "findmnt"), `#!/bin/sh\necho "$*" >"${bin}/args"\necho ${fstype}\n`, { mode: 0o755 });
  const r = spawnSync(join(ASSETS, "bin/paylane-storage-check"), [dir], {
    env: { PATH: `${bin}:/usr/bin:/bin` },
    encoding: "utf8",
  });
  return { status: r.status, output: r.stdout + r.stderr, args: readFileSync(join(bin, "args"), "utf8").trim() };
}

test("the storage check refuses a journal on an overlay or a tmpfs, in one line saying what to do", async () => {
  for (const fstype of ["overlay", "tmpfs"]) {
    const r = await storageCheck(fstype);
    assert.is(r.status, 1, fstype);
    assert.match(
      r.output,
      new RegExp(`^paylane-storage-check: /var/lib/paylane/not-yet is on ${fstype}, which a power-off wipes`),
    );
    assert.match(r.output, /paylane-data/);
    assert.is(r.output.trim().split("\n").length, 1);
  }
});

test("the storage check lets a persistent file system through, judging a folder not made yet by its parent", async () => {
  const r = await storageCheck("ext4");
  assert.is(r.status, 0, r.output);
  assert.match(r.output, /is on ext4 \(persistent\)/);
  let probe = "/var/lib/paylane/not-yet";
  while (!existsSync(probe)) probe = dirname(probe);
  assert.is(r.args, `--noheadings --output FSTYPE --target ${probe}`);
});

test.run();
