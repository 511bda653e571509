/**
 * What goes into a kiosk image: the bundle runs on its own (only its native
 * modules beside it, as npm ci makes them on the Pi), kiosk.json carries no
 * secret, the Wi-Fi passphrase never reaches the card, and the cmdline.txt
 * hook is added once.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { FakeSystemd } from "../../device/test/fake-systemd.ts";
import { buildKioskBundle, REPO_ROOT } from "../src/kiosk-image/bundle.ts";
import { editCmdline, type KioskImageContents, kioskImageContents, wpaPsk } from "../src/kiosk-image/index.ts";

const OPTIONS = {
  site: "demo",
  cloudUrl: "https://cloud.example",
  mqttUrl: "mqtts://mqtt.example:8883",
  claim: "12345-67890-12345-67890",
  cloudCa: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
  hostname: "kiosk-lobby",
  timezone: "Europe/Berlin",
  locale: "de_DE.UTF-8",
  keyboardLayout: "de",
  wifi: { ssid: "Lobby Wi-Fi", password: "correct horse battery", country: "DE" },
  sshAuthorizedKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGxq installer@laptop",
  user: "admin",
};

let contents: KioskImageContents;

async function rejects(promise: Promise<unknown>, expected: RegExp): Promise<void> {
  const err = await promise.then(
    () => undefined,
    (e: Error) => e,
  );
  assert.ok(err, `expected a refusal matching ${expected}`);
  assert.match(err.message, expected);
}
const text = (path: string): string => {
  const file = contents.files.find((f) => f.path === path);
  if (!file) throw new Error(`${path} is not in the image`);
  return file.content.toString();
};

test.before(async () => {
  contents = await kioskImageContents(OPTIONS);
});

test("the boot partition gets firstrun.sh at its root and everything else under paylane/", () => {
  const paths = contents.files.map((f) => f.path);
  for (const path of [
    "firstrun.sh",
    "paylane/opt/package.json",
    "paylane/opt/package-lock.json",
    "paylane/opt/app/paylane-device.mjs",
    "paylane/opt/app/dist/kiosk/index.html",
    "paylane/opt/app/dist/kiosk/app.js",
    "paylane/opt/bin/paylane-install",
    "paylane/opt/bin/paylane-storage-check",
    "paylane/opt/bin/paylane-kiosk-ui",
    "paylane/opt/bin/paylane-update",
    "paylane/opt/updater/paylane-update.mjs",
    "paylane/opt/paylane-release.json",
    "paylane/systemd/paylane-update-check.service",
    "paylane/systemd/paylane-device.service",
    "paylane/systemd/paylane-kiosk-ui.service",
    "paylane/systemd/paylane-storage-check.service",
    "paylane/systemd/paylane-install.service",
    "paylane/pam/paylane-kiosk-ui",
    "paylane/config/kiosk.json",
    "paylane/config/firstboot.env",
    "paylane/config/wifi.nmconnection",
    "paylane/config/authorized_keys",
    "paylane/config/cloud-ca.pem",
  ]) {
    assert.ok(paths.includes(path), `${path} missing`);
  }
  assert.equal(new Set(paths).size, paths.length, "a path twice");
  const bytes = contents.files.reduce((sum, f) => sum + Buffer.byteLength(f.content), 0);
  assert.ok(bytes < 32 * 1024 * 1024, `the files take ${bytes} bytes of a 512 MiB boot partition`);
});

test("kiosk.json has no secret: the kiosk enrols with the claim code and trusts the CA copied beside it", () => {
  const config = JSON.parse(text("paylane/config/kiosk.json"));
  assert.equal(config, {
    site: "demo",
    cloudUrl: "https://cloud.example",
    mqttUrl: "mqtts://mqtt.example:8883",
    claim: "12345-67890-12345-67890",
    cloudCa: "/var/lib/paylane/cloud-ca.pem",
    dataDir: "/var/lib/paylane",
    http: { host: "127.0.0.1", port: 8081 },
    reader: { type: "pn532", path: "/dev/serial0" },
  });
});

test("the Wi-Fi keyfile holds the derived WPA key, never the passphrase", () => {
  // IEEE 802.11i-2004 annex H.4 test vector.
  assert.is(wpaPsk("IEEE", "password"), "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e");
  const keyfile = text("paylane/config/wifi.nmconnection");
  assert.ok(keyfile.includes(`psk=${wpaPsk("Lobby Wi-Fi", "correct horse battery")}\n`));
  assert.not.ok(contents.files.some((f) => f.content.toString().includes("correct horse battery")));
  assert.ok(keyfile.includes(`ssid=${[...Buffer.from("Lobby Wi-Fi")].join(";")};\n`));
});

test("firstboot.env quotes every value, and a value that could run code is refused", async () => {
  const env = text("paylane/config/firstboot.env");
  assert.ok(env.includes("KIOSK_HOSTNAME='kiosk-lobby'\n"));
  assert.ok(env.includes("ADMIN_USER='admin'\n"));
  await rejects(kioskImageContents({ ...OPTIONS, hostname: "a$(reboot)" }), /hostname: expected/);
  await rejects(kioskImageContents({ ...OPTIONS, timezone: "Europe/Berlin'; rm -rf /" }), /timezone: expected/);
  await rejects(
    kioskImageContents({ ...OPTIONS, wifi: { ssid: "x", password: "short", country: "DE" } }),
    /wifi password: expected 8 to 63/,
  );
  await rejects(
    kioskImageContents({ ...OPTIONS, hardware: { raeder: {} } }),
    /hardware.raeder: not a hardware section/,
  );
});

test("cmdline.txt gets the first-boot hook once, however often it is edited", () => {
  const stock =
    "console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 fsck.repair=yes rootwait\n";
  const once = contents.editCmdline(stock);
  assert.is(
    once,
    "console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 fsck.repair=yes rootwait " +
      "systemd.run=/boot/firmware/firstrun.sh systemd.run_success_action=reboot systemd.unit=kernel-command-line.target\n",
  );
  assert.is(editCmdline(once), once);
  // An Imager hook already on the card is replaced by ours, not run too.
  assert.is(editCmdline(stock.replace("\n", " systemd.run=/boot/firstrun.sh\n")), once);
  assert.throws(() => editCmdline("a\nb\n"), /one line/);
});

test("the lockfile fragment lists exactly the native modules, at the root lockfile's versions", async () => {
  const pkg = JSON.parse(text("paylane/opt/package.json"));
  const lock = JSON.parse(text("paylane/opt/package-lock.json"));
  const root = JSON.parse(
    await import("node:fs").then((fs) => fs.readFileSync(join(REPO_ROOT, "package-lock.json"), "utf8")),
  );
  assert.equal(Object.keys(pkg.dependencies).sort(), [
    "@pokusew/pcsclite",
    "@serialport/bindings-cpp",
    "epoll",
    "sqlite3",
  ]);
  for (const [name, version] of Object.entries(pkg.dependencies)) {
    assert.is(root.packages[`node_modules/${name}`].version, version);
    assert.is(lock.packages[`node_modules/${name}`].integrity, root.packages[`node_modules/${name}`].integrity);
    assert.is(contents.versions[name], version);
  }
  assert.equal(lock.packages[""].dependencies, pkg.dependencies);
  // npm 11 would skip their builds otherwise.
  assert.equal(pkg.allowScripts, {
    "@pokusew/pcsclite": true,
    "@serialport/bindings-cpp": true,
    epoll: true,
    sqlite3: true,
  });
  assert.is(pkg.version, contents.versions["@paylane/device"]);
});

test("the bundle is the same bytes from any working directory, and names no folder of the building machine", async () => {
  const here = process.cwd();
  process.chdir(tmpdir());
  try {
    const again = await buildKioskBundle();
    const first = contents.files.find((f) => f.path === "paylane/opt/app/paylane-device.mjs")?.content;
    const second = again.files.find((f) => f.path === "app/paylane-device.mjs")?.content;
    assert.ok(first && second && Buffer.compare(Buffer.from(first), Buffer.from(second)) === 0, "two builds differ");
    assert.not.ok(String(first).includes(REPO_ROOT), `the bundle names ${REPO_ROOT}`);
  } finally {
    process.chdir(here);
  }
});

/** What npm ci makes on the Pi, from the host's own install: only the packages in the fragment. */
async function installNatives(dir: string): Promise<void> {
  const lock = JSON.parse(text("paylane/opt/package-lock.json")) as { packages: Record<string, unknown> };
  for (const path of Object.keys(lock.packages)) {
    if (!path || path.slice("node_modules/".length).includes("/node_modules/")) continue; // nested: inside its parent
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await symlink(join(REPO_ROOT, path), join(dir, path));
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.on("error", reject);
  });
}

async function poll<T>(what: string, probe: () => Promise<T | undefined>, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** /opt/paylane as the Pi has it after its first boot, in a temporary folder. */
async function installBundle(dir: string): Promise<string> {
  const app = join(dir, "opt");
  for (const f of contents.files.filter((f) => f.path.startsWith("paylane/opt/"))) {
    const path = join(app, f.path.slice("paylane/opt/".length));
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, f.content);
  }
  await installNatives(app);
  return join(app, "app/paylane-device.mjs");
}

test("the bundle runs outside the source tree: --help, then a kiosk that serves its health and its UI, ready for systemd", async () => {
  const dir = await mkdtemp(join(tmpdir(), "paylane-kiosk-bundle-"));
  let child: ChildProcess | undefined;
  let systemd: FakeSystemd | undefined;
  try {
    const bundle = await installBundle(dir);

    const help = spawnSync(process.execPath, [bundle, "--help"], { cwd: dir, encoding: "utf8" });
    assert.is(help.status, 0, help.stderr);
    assert.match(help.stdout, /Usage: paylane-device/);
    const version = spawnSync(process.execPath, [bundle, "--version"], { cwd: dir, encoding: "utf8" });
    assert.is(version.stdout.trim(), contents.versions["@paylane/device"]);

    const port = await freePort();
    const config = join(dir, "kiosk.json");
    await writeFile(
      config,
      JSON.stringify({
        site: "s1",
        device: "k1",
        secret: "bundle-secret-0123456789",
        mqttUrl: "mqtt://127.0.0.1:9",
        cloudUrl: "http://127.0.0.1:9",
        dataDir: join(dir, "data"),
        http: { host: "127.0.0.1", port },
        reader: { type: "pn532-simulator" },
        printer: { type: "simulator" },
      }),
    );
    // As under systemd (Type=notify): the daemon must say READY=1, or systemd kills it after its start timeout.
    systemd = await FakeSystemd.start(join(dir, "notify"));
    let output = "";
    child = spawn(process.execPath, [bundle, "--config", config], {
      cwd: dir,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, NOTIFY_SOCKET: join(dir, "notify") },
    });
    child.stdout?.on("data", (b: Buffer) => (output += b));
    child.stderr?.on("data", (b: Buffer) => (output += b));
    const exited = new Promise<number | null>((resolve) => child?.on("exit", (code) => resolve(code)));

    const health = await poll(
      "the bundled kiosk's /healthz",
      async () => {
        if (child?.exitCode !== null) throw new Error(`the bundle exited: ${output}`);
        const res = await fetch(`http://127.0.0.1:${port}/healthz`);
        return (await res.json()) as { peripherals: { reader: { state: string }; printer: { state: string } } };
      },
      20_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${output}`);
    });
    assert.is(health.peripherals.reader.state, "ok", "the simulated PN532 answered the bundled driver");
    assert.is(health.peripherals.printer.state, "ok");
    const page = await fetch(`http://127.0.0.1:${port}/`);
    assert.is(page.status, 200, "the UI is found beside the bundle");
    assert.match(await page.text(), /<html/);
    const script = await fetch(`http://127.0.0.1:${port}/app.js`);
    assert.is(script.status, 200);

    await systemd.received("READY=1");
    assert.not.ok(
      systemd.messages.some((m) => m.includes("STOPPING=1")),
      "not stopping yet",
    );
    child.kill("SIGTERM");
    assert.is(await exited, 0, output);
    await systemd.received("STOPPING=1");
    assert.not.match(output, /Cannot find (module|package)/);
  } finally {
    if (child?.exitCode === null) child.kill("SIGKILL");
    systemd?.stop();
    await rm(dir, { recursive: true, force: true });
  }
});

test("the bundle starts a kiosk.json as the image writes it (no secret) in setup mode, waiting for enrolment", async () => {
  const dir = await mkdtemp(join(tmpdir(), "paylane-kiosk-setup-"));
  let child: ChildProcess | undefined;
  try {
    const bundle = await installBundle(dir);
    const port = await freePort();
    const config = join(dir, "kiosk.json");
    const written = JSON.parse(text("paylane/config/kiosk.json"));
    await writeFile(
      config,
      JSON.stringify({
        ...written,
        // The cloud is away: the kiosk keeps its setup screen up and says so.
        cloudUrl: "http://127.0.0.1:9",
        cloudCa: undefined,
        dataDir: join(dir, "data"),
        http: { host: "127.0.0.1", port },
        reader: { type: "pn532-simulator" },
      }),
    );
    let output = "";
    child = spawn(process.execPath, [bundle, "--config", config], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
    child.stdout?.on("data", (b: Buffer) => (output += b));
    child.stderr?.on("data", (b: Buffer) => (output += b));
    const exited = new Promise<number | null>((resolve) => child?.on("exit", (code) => resolve(code)));
    const setup = await poll(
      "the bundled kiosk's setup state",
      async () => {
        if (child?.exitCode !== null) throw new Error(`the bundle exited: ${output}`);
        const res = await fetch(`http://127.0.0.1:${port}/api/setup`);
        return res.ok ? ((await res.json()) as Record<string, unknown>) : undefined;
      },
      20_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${output}`);
    });
    assert.is(setup.site, "demo", JSON.stringify(setup));
    child.kill("SIGTERM");
    assert.is(await exited, 0, output);
    assert.not.ok(output.includes(OPTIONS.claim), "the claim code is never logged");
  } finally {
    if (child?.exitCode === null) child.kill("SIGKILL");
    await rm(dir, { recursive: true, force: true });
  }
});

test.run();
