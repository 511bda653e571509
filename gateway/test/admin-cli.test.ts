/**
 * `paylane-gateway operator add|remove` and `mosquitto-config` as a person
 * runs them (real child processes): the password is printed once and only
 * its hash is stored; mistakes are one line and exit 2; the Mosquitto
 * configuration made from the registry runs on the real `mosquitto` and lets
 * in exactly the identities whose secrets it was given.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { deviceIdentity, hashSecret, Registry, serviceUsername } from "@paylane/protocol";
import { connectAsync } from "mqtt";
import { test } from "uvu";
import * as assert from "uvu/assert";

const MAIN = fileURLToPath(new URL("../src/main.ts", import.meta.url));
const REPO = fileURLToPath(new URL("../../", import.meta.url));
const exec = promisify(execFile);

const kiosk = { site: "venue-1", device: "k1" };
const SECRETS = { kiosk: "secret-of-k1", cloud: "secret-of-cloud" };
let dir: string;
let registryPath: string;

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), "paylane-admin-cli-"));
  registryPath = join(dir, "registry.json");
  await Registry.save(registryPath, {
    version: 1,
    devices: [{ ...kiosk, secretHash: await hashSecret(SECRETS.kiosk) }],
    services: [{ id: "cloud", role: "bridge", secretHash: await hashSecret(SECRETS.cloud) }],
  });
});

test.after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Runs `paylane-gateway ...args`; resolves with its exit code and output, whatever the code. */
async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, ["--import", "tsx", MAIN, ...args], {
      cwd: REPO,
      env: { PATH: process.env.PATH },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

test("--help on each sub-command says what it does, with examples", async () => {
  const root = await cli("--help");
  assert.match(root.stdout, /operator\s+add or remove an operator/);
  assert.match(root.stdout, /mosquitto-config\s+\[options\]\s+write a Mosquitto 2 configuration/);
  const cases = [
    [["operator", "add", "--help"], "--role <role>"],
    [["operator", "remove", "--help"], "--id <id>"],
    [["mosquitto-config", "--help"], "--secrets <file>"],
  ] as const;
  // Independent child processes: run at once.
  const helps = await Promise.all(cases.map(([args]) => cli(...args)));
  cases.forEach(([args, text], i) => {
    const help = helps[i]!;
    assert.is(help.code, 0);
    assert.ok(help.stdout.includes(text), `${args.join(" ")}:\n${help.stdout}`);
    assert.ok(help.stdout.includes("Examples:"), `${args.join(" ")} has examples`);
  });
});

test("operator add prints the password once and stores only its scrypt hash; mistakes are one line, exit 2", async () => {
  const added = await cli(
    "operator",
    "add",
    "--registry",
    registryPath,
    "--id",
    "alice",
    "--role",
    "operator",
    "--site",
    "venue-1",
    "--json",
  );
  assert.is(added.code, 0, added.stderr);
  const login = JSON.parse(added.stdout) as { username: string; password: string };
  assert.is(login.username, "ops:alice");
  const text = await readFile(registryPath, "utf8");
  assert.not.ok(text.includes(login.password), "the password is in the registry");
  assert.is((await stat(registryPath)).mode & 0o777, 0o600);
  const registry = await Registry.load(registryPath);
  assert.equal(registry.operators, [{ id: "alice", role: "operator", sites: ["venue-1"] }]);
  assert.equal(await registry.authenticate("ops:alice", login.password), {
    kind: "operator",
    id: "alice",
    role: "operator",
    sites: ["venue-1"],
  });

  const mistakes: [string[], RegExp][] = [
    [["--id", "alice", "--role", "viewer", "--site", "venue-1"], /operator alice is already in .*remove it first/],
    [["--id", "bob", "--role", "viewer"], /a viewer needs at least one --site/],
    [
      ["--id", "bob", "--role", "boss", "--site", "x"],
      /argument 'boss' is invalid\. expected one of viewer, operator, admin/,
    ],
    [["--id", "Bob!", "--role", "admin"], /--id Bob!: expected lower-case letters/],
  ];
  const answers = await Promise.all(
    mistakes.map(([args]) => cli("operator", "add", "--registry", registryPath, ...args)),
  );
  mistakes.forEach(([args, message], i) => {
    const r = answers[i]!;
    assert.is(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.is(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.match(r.stderr, /^paylane-gateway operator add: /);
    assert.match(r.stderr, message);
  });

  const removed = await cli("operator", "remove", "--registry", registryPath, "--id", "alice");
  assert.is(removed.code, 0, removed.stderr);
  assert.equal((await Registry.load(registryPath)).operators, []);
  const again = await cli("operator", "remove", "--registry", registryPath, "--id", "alice");
  assert.is(again.code, 2);
  assert.match(again.stderr, /operator alice is not in .* \(operators there: none\)/);
});

test("mosquitto-config makes a configuration the real mosquitto runs: given secrets get in, others do not", async () => {
  const added = await cli(
    "operator",
    "add",
    "--registry",
    registryPath,
    "--id",
    "noc",
    "--role",
    "viewer",
    "--site",
    "venue-1",
    "--json",
  );
  const noc = JSON.parse(added.stdout) as { username: string; password: string };
  const secretsPath = join(dir, "secrets.json");
  const out = join(dir, "mosquitto");
  const { writeFile } = await import("node:fs/promises");
  // The cloud's secret is left out on purpose: it is named, and it cannot connect.
  await writeFile(
    secretsPath,
    JSON.stringify({ [deviceIdentity.username(kiosk)]: SECRETS.kiosk, [noc.username]: noc.password }),
  );
  const { freePortRun } = await import("../../test/support/private-mosquitto.ts");
  const port = await freePortRun(1);
  const made = await cli(
    "mosquitto-config",
    "--registry",
    registryPath,
    "--secrets",
    secretsPath,
    "--out",
    out,
    "--port",
    String(port),
  );
  assert.is(made.code, 0, made.stderr);
  assert.match(made.stdout, /\(1 devices, 0 services, 1 operators\)/);
  assert.match(made.stderr, /1 identities have no secret .*: svc:cloud/);
  assert.is((await stat(join(out, "dynamic-security.json"))).mode & 0o777, 0o600);
  assert.not.ok((await readFile(join(out, "dynamic-security.json"), "utf8")).includes(noc.password));

  // A stale secret is refused before anything is written.
  await writeFile(secretsPath, JSON.stringify({ [deviceIdentity.username(kiosk)]: "an-old-secret" }));
  const stale = await cli(
    "mosquitto-config",
    "--registry",
    registryPath,
    "--secrets",
    secretsPath,
    "--out",
    join(dir, "x"),
  );
  assert.is(stale.code, 2);
  assert.match(stale.stderr, /the secret of venue-1\/k1 does not match the registry's hash/);

  const broker = await runMosquitto(join(out, "mosquitto.conf"), port);
  try {
    const url = `mqtt://127.0.0.1:${port}`;
    const base = { reconnectPeriod: 0, protocolVersion: 4 as const, connectTimeout: 5000 };
    const viewer = await connectAsync(url, { ...base, username: noc.username, password: noc.password }, false);
    await viewer.endAsync(true);
    const device = await connectAsync(
      url,
      {
        ...base,
        clientId: deviceIdentity.clientId(kiosk),
        username: deviceIdentity.username(kiosk),
        password: SECRETS.kiosk,
      },
      false,
    );
    await device.endAsync(true);
    const refused = await connectAsync(
      url,
      { ...base, username: serviceUsername("cloud"), password: SECRETS.cloud },
      false,
    ).then(
      async (c) => {
        await c.endAsync(true);
        return false;
      },
      () => true,
    );
    assert.ok(refused, "an identity left out of --secrets connected");
  } finally {
    broker.kill("SIGKILL");
  }
});

/** The real mosquitto on the generated config (as root, told to stay root: the temp folder is 0700). */
async function runMosquitto(conf: string, port: number): Promise<ChildProcess> {
  const { appendFile } = await import("node:fs/promises");
  if (process.getuid?.() === 0) await appendFile(conf, "user root\n");
  const child = spawn("mosquitto", ["-c", conf], { stdio: ["ignore", "ignore", "pipe"] });
  process.once("exit", () => child.kill("SIGKILL"));
  let stderr = "";
  child.stderr?.on("data", (d) => {
    stderr += d;
  });
  const { createConnection } = await import("node:net");
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`mosquitto exited: ${stderr}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = createConnection({ port, host: "127.0.0.1" });
      s.once("connect", () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", () => resolve(false));
    });
    if (ok) return child;
    if (Date.now() > deadline) throw new Error(`mosquitto did not listen on ${port}: ${stderr}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test.run();
