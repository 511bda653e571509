/**
 * The first-boot scripts run for real against a fake root: every path under
 * ROOT=, and stub commands on PATH (systemctl, raspi-config, useradd, apt-get,
 * npm, node…) that log their arguments. The tests check what a Pi would end
 * up with: files, their modes, and the commands run.
 */
import { spawnSync } from "node:child_process";
import { existsSync, lstatSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { link, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { KioskImageOptions } from "../src/kiosk-image/contents.ts";
import { ASSETS, kioskImageContents, wpaPsk } from "../src/kiosk-image/index.ts";
import { NATIVE_PACKAGES } from "../src/update/system.ts";

const STOCK_CMDLINE =
  "console=serial0,115200 console=tty1 root=PARTUUID=6c586e13-02 rootfstype=ext4 fsck.repair=yes rootwait\n";
const CLAIM = "12345-67890-12345-67890";
const FULL: KioskImageOptions = {
  site: "demo",
  cloudUrl: "https://cloud.example",
  mqttUrl: "mqtts://mqtt.example:8883",
  claim: CLAIM,
  cloudCa: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
  hostname: "kiosk-lobby",
  timezone: "Europe/Berlin",
  locale: "de_DE.UTF-8",
  keyboardLayout: "de",
  wifi: { ssid: "Lobby", password: "correct horse battery", country: "DE" },
  sshAuthorizedKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGxq installer@laptop",
  updateSigningKey: "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n",
  user: "admin",
};

const STUBS = [
  "systemctl",
  "raspi-config",
  "useradd",
  "usermod",
  "groupmod",
  "chpasswd",
  "chown",
  "hostnamectl",
  "timedatectl",
  "localectl",
  "apt-get",
  "npm",
  "findmnt",
];

interface Run {
  root: string;
  boot: string;
  status: number | null;
  output: string;
  calls: string[];
}

const dirs: string[] = [];

/** A fake root shaped like Raspberry Pi OS's, with a stub for every command that would change the machine. */
async function fakeRoot(): Promise<{ root: string; bin: string; log: string }> {
  const root = await mkdtemp(join(tmpdir(), "paylane-firstboot-"));
  dirs.push(root);
  const files: Record<string, string> = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/bash\npi:x:1000:1000:,,,:/home/pi:/bin/bash\n",
    "etc/group":
      "root:x:0:\nadm:x:4:pi\nlp:x:7:\ndialout:x:20:pi\nsudo:x:27:pi\nvideo:x:44:pi\ninput:x:105:pi\nrender:x:106:pi\ngpio:x:997:pi\npi:x:1000:\n",
    "etc/hosts": "127.0.0.1\tlocalhost\n127.0.1.1\traspberrypi\n",
    "etc/hostname": "raspberrypi\n",
    "etc/fstab": "proc /proc proc defaults 0 0\n",
    "etc/default/keyboard": 'XKBMODEL="pc105"\nXKBLAYOUT="gb"\n',
    "usr/share/zoneinfo/Europe/Berlin": "TZif",
    "var/lib/systemd/rfkill/platform-3f300000.mmcnr:wlan": "1\n",
  };
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), content);
  }
  const bin = join(root, "..", `${root.split("/").pop()}-bin`);
  dirs.push(bin);
  await mkdir(bin);
  const log = join(bin, "calls.log");
  return { root, bin, log };
}

async function stub(bin: string, name: string, body = ""): Promise<void> {
  await writeFile(join(bin, name), `#!/bin/sh\necho "${name} $*" >>"$STUB_LOG"\n${body}\n`, { mode: 0o755 });
}

/** The boot partition as `image build` leaves it: cmdline.txt with the hook, and the image's files. */
async function flash(options: KioskImageOptions, boot: string): Promise<void> {
  const contents = await kioskImageContents(options);
  await mkdir(boot, { recursive: true });
  await writeFile(join(boot, "cmdline.txt"), contents.editCmdline(STOCK_CMDLINE));
  for (const f of contents.files) {
    await mkdir(dirname(join(boot, f.path)), { recursive: true });
    // FAT mounted with Raspberry Pi OS's masks: every file reads as executable.
    await writeFile(join(boot, f.path), f.content, { mode: 0o755 });
  }
}

async function runScript(script: string, env: Record<string, string>, bin: string, log: string) {
  const result = spawnSync("bash", [script], {
    env: { PATH: `${bin}:/usr/bin:/bin`, STUB_LOG: log, ...env },
    encoding: "utf8",
    timeout: 30_000,
  });
  const calls = existsSync(log) ? readFileSync(log, "utf8").trim().split("\n") : [];
  return { status: result.status, output: result.stdout + result.stderr, calls };
}

async function firstBoot(
  options: KioskImageOptions,
  failing: Record<string, string> = {},
  prepare?: (root: string) => Promise<void>,
  prepareBoot?: (boot: string, root: string) => Promise<void>,
): Promise<Run> {
  const { root, bin, log } = await fakeRoot();
  await prepare?.(root);
  for (const name of STUBS) await stub(bin, name, failing[name] ?? "");
  const boot = join(root, "boot/firmware");
  await flash(options, boot);
  await prepareBoot?.(boot, root);
  const run = await runScript(join(boot, "firstrun.sh"), { ROOT: root }, bin, log);
  return { root, boot, ...run };
}

const mode = (path: string): string => (statSync(path).mode & 0o777).toString(8);
const read = (path: string): string => readFileSync(path, "utf8");

let full: Run;
test.before(async () => {
  full = await firstBoot(FULL);
});
test.after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

test("firstrun.sh installs the bundle, the units and the PAM service, with their modes", () => {
  assert.is(full.status, 0, full.output);
  const app = join(full.root, "opt/paylane");
  // The bundle is a release, /opt/paylane/current points at it; bin/ and the updater stay outside (kiosk-updates.md).
  const release = readlinkSync(join(app, "current"));
  assert.match(release, /^releases\/\d+\.\d+\.\d+-[0-9a-f]{12}$/);
  assert.is(mode(join(app, "current/app/paylane-device.mjs")), "644");
  assert.is(mode(join(app, "current/package-lock.json")), "644");
  assert.ok(existsSync(join(app, "current/paylane-release.json")));
  assert.is(mode(join(app, "updater/paylane-update.mjs")), "644");
  assert.not.ok(existsSync(join(app, "app")), "nothing of the release outside releases/");
  for (const tool of ["paylane-install", "paylane-storage-check", "paylane-kiosk-ui", "paylane-update"]) {
    assert.is(mode(join(app, "bin", tool)), "755", tool);
  }
  for (const unit of [
    "paylane-device",
    "paylane-kiosk-ui",
    "paylane-storage-check",
    "paylane-install",
    "paylane-update-check",
  ]) {
    const path = join(full.root, "etc/systemd/system", `${unit}.service`);
    assert.is(mode(path), "644", unit);
    assert.is(read(path), read(join(ASSETS, "systemd", `${unit}.service`)));
  }
  assert.is(mode(join(full.root, "etc/pam.d/paylane-kiosk-ui")), "644");
  assert.ok(full.calls.includes(`chown -R root:root ${app}`));
  assert.ok(
    full.calls.includes(
      "systemctl enable paylane-install.service paylane-storage-check.service paylane-device.service paylane-kiosk-ui.service paylane-update-check.service",
    ),
  );
});

test("the daemon's user gets the hardware groups, the browser's the display's, and kiosk.json is the daemon's, 0600", () => {
  assert.ok(
    full.calls.includes(
      "useradd --system --user-group --home-dir /var/lib/paylane --no-create-home --shell /usr/sbin/nologin --groups dialout,lp,gpio paylane",
    ),
    full.calls.join("\n"),
  );
  assert.ok(
    full.calls.includes(
      "useradd --system --user-group --home-dir /var/cache/paylane-kiosk-ui --no-create-home --shell /usr/sbin/nologin --groups video,render,input paylane-ui",
    ),
    full.calls.join("\n"),
  );
  const data = join(full.root, "var/lib/paylane");
  assert.is(mode(data), "750");
  assert.is(mode(join(data, "kiosk.json")), "600");
  const config = JSON.parse(read(join(data, "kiosk.json")));
  assert.is(config.claim, CLAIM);
  assert.is(config.secret, undefined);
  assert.is(config.cloudCa, "/var/lib/paylane/cloud-ca.pem");
  assert.is(read(join(data, "cloud-ca.pem")), FULL.cloudCa);
  // …and the daemon's own HTTPS/MQTTS clients trust it through its unit's EnvironmentFile.
  assert.is(read(join(data, "daemon.env")), "NODE_EXTRA_CA_CERTS=/var/lib/paylane/cloud-ca.pem\n");
  // paylane-update's signing key (kiosk-updates.md), readable by all: it is public.
  assert.is(read(join(full.root, "etc/paylane/update-signing.pub")), FULL.updateSigningKey);
  assert.is(mode(join(full.root, "etc/paylane/update-signing.pub")), "644");
  assert.match(read(join(ASSETS, "systemd/paylane-device.service")), "EnvironmentFile=-/var/lib/paylane/daemon.env");
  assert.ok(full.calls.includes(`chown -R paylane:paylane ${data}`));
});

test("the files holding the claim code and the Wi-Fi key are overwritten, not only unlinked", async () => {
  // A second hard link sees the same data blocks: after a plain rm it would still read the claim code.
  const run = await firstBoot(FULL, {}, undefined, async (boot, root) => {
    await link(join(boot, "paylane/config/kiosk.json"), join(root, "kiosk-json-blocks"));
    await link(join(boot, "paylane/config/wifi.nmconnection"), join(root, "wifi-blocks"));
  });
  assert.is(run.status, 0, run.output);
  const kiosk = readFileSync(join(run.root, "kiosk-json-blocks"));
  // shred zeroes, then truncates: what is left is zeros or nothing, never the file.
  assert.ok(
    kiosk.every((b) => b === 0),
    "kiosk.json's blocks are zeroed",
  );
  assert.not.ok(kiosk.toString("latin1").includes(CLAIM.slice(0, 5)));
  assert.ok(
    readFileSync(join(run.root, "wifi-blocks")).every((b) => b === 0),
    "the Wi-Fi key's blocks are zeroed",
  );
});

test("the claim code, the Wi-Fi key and firstrun.sh leave the boot partition, and cmdline.txt is stock again", async () => {
  assert.is(read(join(full.boot, "cmdline.txt")), STOCK_CMDLINE);
  assert.not.ok(existsSync(join(full.boot, "firstrun.sh")));
  assert.not.ok(existsSync(join(full.boot, "paylane")));
  for (const name of await readdir(full.boot)) {
    const text = read(join(full.boot, name));
    assert.not.ok(text.includes(CLAIM), `the claim code is still in ${name}`);
    assert.not.ok(text.includes(wpaPsk("Lobby", "correct horse battery")), `the Wi-Fi key is still in ${name}`);
  }
  assert.match(read(join(full.boot, "paylane-firstrun.log")), /paylane-firstrun: done/);
});

test("hostname, time zone, locale, keyboard and Wi-Fi are set the Raspberry Pi OS way", () => {
  const root = full.root;
  assert.is(read(join(root, "etc/hostname")), "kiosk-lobby\n");
  assert.match(read(join(root, "etc/hosts")), /^127\.0\.1\.1\tkiosk-lobby$/m);
  assert.is(readlinkSync(join(root, "etc/localtime")), "/usr/share/zoneinfo/Europe/Berlin");
  assert.is(read(join(root, "etc/timezone")), "Europe/Berlin\n");
  assert.ok(full.calls.includes("raspi-config nonint do_change_locale de_DE.UTF-8"));
  assert.match(read(join(root, "etc/default/keyboard")), /^XKBLAYOUT="de"$/m);
  const keyfile = join(root, "etc/NetworkManager/system-connections/paylane-wifi.nmconnection");
  assert.is(mode(keyfile), "600");
  assert.match(read(keyfile), new RegExp(`^psk=${wpaPsk("Lobby", "correct horse battery")}$`, "m"));
  assert.ok(full.calls.includes("raspi-config nonint do_wifi_country DE"));
  assert.is(read(join(root, "var/lib/systemd/rfkill/platform-3f300000.mmcnr:wlan")), "0\n");
});

test("the first user becomes the admin, password locked, SSH on with only its key", () => {
  const calls = full.calls;
  assert.ok(calls.includes("usermod --login admin --move-home --home /home/admin pi"), calls.join("\n"));
  assert.ok(calls.includes("groupmod --new-name admin pi"));
  assert.ok(calls.includes("usermod --lock admin"));
  assert.ok(calls.includes("systemctl disable userconfig.service"));
  const ssh = join(full.root, "home/admin/.ssh");
  assert.is(mode(ssh), "700");
  assert.is(mode(join(ssh, "authorized_keys")), "600");
  assert.is(read(join(ssh, "authorized_keys")), `${FULL.sshAuthorizedKey}\n`);
  assert.match(read(join(full.root, "etc/ssh/sshd_config.d/paylane.conf")), /^PasswordAuthentication no$/m);
  assert.ok(calls.includes("systemctl enable ssh.service"));
});

test("without a key SSH stays off; a read-only root waits for the install and keeps the journal off the overlay", async () => {
  const run = await firstBoot(
    {
      site: "demo",
      cloudUrl: "https://cloud.example",
      mqttUrl: "mqtts://mqtt.example",
      readOnlyRoot: true,
      // An image whose Wi-Fi radio has no saved rfkill state yet.
      wifi: { ssid: "Lobby", password: "correct horse battery", country: "GB" },
    },
    {},
    (root) => rm(join(root, "var/lib/systemd/rfkill"), { recursive: true }),
  );
  assert.is(run.status, 0, run.output);
  assert.ok(run.calls.includes("systemctl disable ssh.service"));
  assert.not.ok(run.calls.some((c) => c.startsWith("usermod --lock")));
  assert.ok(existsSync(join(run.root, "etc/NetworkManager/system-connections/paylane-wifi.nmconnection")));
  assert.is(read(join(run.root, "etc/hostname")), "raspberrypi\n");
  // Not now: the install after the reboot must land on the real root.
  assert.not.ok(run.calls.some((c) => c.includes("overlayfs")));
  assert.ok(existsSync(join(run.root, "opt/paylane/read-only-root")));
  assert.match(read(join(run.root, "etc/fstab")), /^LABEL=paylane-data \/var\/lib\/paylane ext4 /m);
  const config = JSON.parse(read(join(run.root, "var/lib/paylane/kiosk.json")));
  assert.is(config.claim, undefined, "no claim: the kiosk asks for one on screen");
});

test("a failing step stops the script with its line, takes the hook out and keeps the files for a retry", async () => {
  const run = await firstBoot(FULL, { useradd: "exit 9" });
  assert.is.not(run.status, 0);
  assert.match(run.output, /paylane-firstrun: failed at line \d+/);
  assert.is(read(join(run.boot, "cmdline.txt")), STOCK_CMDLINE, "no boot loop");
  assert.ok(existsSync(join(run.boot, "paylane/config/kiosk.json")));
  assert.not.ok(run.output.includes(CLAIM), "the claim code is never printed");
});

async function installRun(nodeVersion: string, readOnly = false) {
  const { root, bin, log } = await fakeRoot();
  for (const name of STUBS) await stub(bin, name);
  await stub(
    bin,
    "node",
    `case "$1" in -p) echo ${nodeVersion} ;; -e) case ${nodeVersion} in 18.*|20.1[0-6].*) exit 1 ;; esac ;; esac`,
  );
  const app = join(root, "opt/paylane");
  // As firstrun.sh leaves it: the bundle is the first release, current points at it (kiosk-updates.md).
  await mkdir(join(app, "releases/1.0.0-0123456789ab"), { recursive: true });
  await symlink("releases/1.0.0-0123456789ab", join(app, "current"));
  // Two of the native packages (one nested), one that only looks like one, and no pcsclite.
  const lock = {
    packages: {
      "": {},
      "node_modules/sqlite3": {},
      "node_modules/onoff/node_modules/epoll": {},
      "node_modules/sqlite3-lookalike": {},
      "node_modules/@serialport/bindings-cpp": {},
    },
  };
  await writeFile(join(app, "releases/1.0.0-0123456789ab/package-lock.json"), JSON.stringify(lock, null, 2));
  if (readOnly) await writeFile(join(app, "read-only-root"), "");
  const run = await runScript(join(ASSETS, "bin/paylane-install"), { ROOT: root }, bin, log);
  return { app, ...run };
}

const NPM_CI = "npm ci --omit=dev --ignore-scripts --no-audit --no-fund";

test("paylane-install: apt, then npm ci in /opt/paylane, then the kiosk starts", async () => {
  const run = await installRun("20.19.2");
  assert.is(run.status, 0, run.output);
  assert.ok(run.calls.includes("apt-get update"));
  assert.ok(run.calls.some((c) => /^apt-get install .*nodejs npm build-essential python3 cage/.test(c)));
  // USB NFC readers (pcscd, and the headers the PC/SC binding compiles against) and the chardev GPIO tools.
  assert.ok(
    run.calls.some((c) => /^apt-get install .* pcscd libpcsclite-dev gpiod$/.test(c)),
    run.calls.join("\n"),
  );
  assert.ok(run.calls.some((c) => /^apt-get install .*chromium$/.test(c)));
  // No dependency's install script runs as root; only the native packages the lockfile holds are built.
  assert.ok(run.calls.includes(NPM_CI), run.calls.join("\n"));
  assert.equal(
    run.calls.filter((c) => c.startsWith("npm ")),
    [NPM_CI, "npm rebuild sqlite3 @serialport/bindings-cpp epoll"],
  );
  assert.ok(existsSync(join(run.app, ".installed")));
  assert.ok(existsSync(join(run.app, "releases/1.0.0-0123456789ab/.complete")), "the release is marked whole");
  assert.ok(run.calls.includes("systemctl --no-block start paylane-device.service paylane-kiosk-ui.service"));
});

test("paylane-install refuses Bookworm's Node 18 with the way out, and installs nothing", async () => {
  const run = await installRun("18.19.0");
  assert.is(run.status, 1);
  assert.match(run.output, /Node 18\.19\.0 from apt is older than 20\.17.*Raspberry Pi OS Trixie/);
  assert.not.ok(run.calls.some((c) => c.startsWith("npm")));
  assert.not.ok(existsSync(join(run.app, ".installed")));
});

test("paylane-install turns the read-only root on only after installing, then reboots", async () => {
  const run = await installRun("22.12.0", true);
  assert.is(run.status, 0, run.output);
  const npm = run.calls.indexOf(NPM_CI);
  const overlay = run.calls.indexOf("raspi-config nonint do_overlayfs 0");
  assert.ok(npm >= 0 && overlay > npm, run.calls.join("\n"));
  assert.ok(run.calls.includes("systemctl --no-block reboot"));
  assert.not.ok(existsSync(join(run.app, "read-only-root")));
});

test("paylane-install builds the same native packages paylane-update does", async () => {
  const script = await readFile(join(ASSETS, "bin/paylane-install"), "utf8");
  const listed = /^NATIVE_PACKAGES=\(([^)]*)\)$/m.exec(script)?.[1]?.split(/\s+/);
  assert.equal(listed, [...NATIVE_PACKAGES], "one list in two languages: change both");
});

test("every shell script passes shellcheck", () => {
  const scripts = [
    join(ASSETS, "first-boot/firstrun.sh"),
    ...["paylane-install", "paylane-storage-check", "paylane-kiosk-ui"].map((s) => join(ASSETS, "bin", s)),
  ];
  for (const script of scripts) {
    assert.ok(lstatSync(script).mode & 0o100, `${script} is executable`);
  }
  const result = spawnSync("shellcheck", ["--severity=style", ...scripts], { encoding: "utf8" });
  assert.is(result.status, 0, result.stdout + result.stderr);
});

test.run();
