/**
 * `npm start` as a new user runs it: the whole site on embedded defaults
 * (aedes, PGlite, in-process presence, two kiosks) as separate processes,
 * driven with `npm run tap`, then stopped with Ctrl-C. And the clear error
 * when a port is taken (on this machine Mosquitto already holds 1883).
 *
 * Then the runner as a supervisor (issue 13): a kiosk killed with SIGKILL is
 * reported and back within 5 s; the cloud stopped alone leaves the kiosks
 * working offline until `kill -USR2` brings it back; Ctrl-C lets every kiosk
 * say its clean goodbye before the broker stops; a bad SITE_ID or an old bad
 * registry is one line naming it.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { parseClaimCode, serviceUsername, topics } from "@paylane/protocol";
import mqtt from "mqtt";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { ensureIdentities, writeOpsCredentials } from "../../scripts/site/identities.ts";
import { kioskPost } from "../support/kiosk-api.ts";
import { freePortRun } from "../support/private-mosquitto.ts";
import { type SiteProcess, startSiteProcess } from "../support/site-process.ts";
import { within } from "../support/within.ts";

const root = join(import.meta.dirname, "..", "..");
const run = promisify(execFile);
const it = suite("npm start");

/** Resolves when `text` appears in the output, or rejects when the process exits first. */
function waitForOutput(site: SiteProcess, text: string, timeoutMs = 90_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no "${text}" within ${timeoutMs} ms:\n${site.output()}`)),
      timeoutMs,
    );
    const check = () => {
      if (site.output().includes(text)) {
        clearTimeout(timer);
        resolve();
      }
    };
    site.child.stdout?.on("data", check);
    site.exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`site exited before "${text}":\n${site.output()}`));
    });
    check();
  });
}

/**
 * From a kiosk's SIGKILL to the same kiosk answering /healthz again: the 0.5 s
 * backoff and a kiosk's cold start (≤ 1.5 s on an idle machine). The runner's
 * decision (the "died … restarting" line) is held to 5 s always; the recovery
 * bound can be widened on a machine shared by many test runs.
 */
const RECOVERY_MS = Number(process.env.TEST_SITE_RECOVERY_MS ?? 5000);

/** Resolves with the first match of `pattern` in the output after `from`, or rejects when the site exits first. */
async function outputMatch(
  site: SiteProcess,
  pattern: RegExp,
  from: number,
  timeoutMs: number,
): Promise<RegExpMatchArray> {
  const seen = () => site.output().slice(from).match(pattern);
  return within(
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const check = () => {
        const m = seen();
        if (m) resolve(m);
      };
      site.child.stdout?.on("data", check);
      site.child.stderr?.on("data", check);
      site.exited.then(() => reject(new Error(`site exited before ${pattern}:\n${site.output()}`)));
      check();
    }),
    timeoutMs,
    `${pattern} in the output:\n${site.output().slice(from)}`,
  );
}

/** `url` answering 200, polled until `deadline` (a wall-clock bound on a process starting). */
async function answers(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await fetch(url, { signal: AbortSignal.timeout(1000) }).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${url} did not answer within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

it("a taken MQTT port is named, with the variable that moves it and the MQTT_URL alternative", async () => {
  const blocker: Server = createServer();
  await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", () => r()));
  const port = (blocker.address() as { port: number }).port;
  const dir = await mkdtemp(join(tmpdir(), "paylane-start-"));
  try {
    const site = startSiteProcess({ MQTT_PORT: String(port), PAYLANE_DATA: dir });
    assert.is(await site.exited, 1);
    assert.match(site.output(), new RegExp(`port ${port} on|port ${port} is already in use`));
    assert.match(site.output(), /MQTT_PORT/);
    assert.match(site.output(), /MQTT_URL=mqtt:\/\/127\.0\.0\.1:1883/);
  } finally {
    blocker.close();
    await rm(dir, { recursive: true, force: true });
  }
});

it("runs a whole site on embedded defaults; a tap from the terminal reaches the cloud; Ctrl-C stops it", async () => {
  const dir = await mkdtemp(join(tmpdir(), "paylane-start-"));
  // One run of five ports below the ephemeral range: MQTT, gateway HTTP, cloud, kiosks k1 and k2.
  const base = await freePortRun(5);
  const ports = { MQTT_PORT: base, GATEWAY_HTTP_PORT: base + 1, CLOUD_PORT: base + 2 };
  const kioskBase = base + 3;
  const env = Object.fromEntries(Object.entries(ports).map(([k, v]) => [k, String(v)]));
  // Drop any external services from the environment: this is the embedded site.
  const site = startSiteProcess({
    ...env,
    KIOSK_PORT_BASE: String(kioskBase),
    PAYLANE_DATA: dir,
    MQTT_URL: "",
    DATABASE_URL: "",
    REDIS_URL: "",
  });
  try {
    await waitForOutput(site, "PayLane site is running");
    assert.match(site.output(), /04A2B3C4\s+Ada Lovelace/, "prints the demo members' card UIDs");
    assert.match(site.output(), new RegExp(`Kiosk k1\\s+http://127\\.0\\.0\\.1:${kioskBase}/`));
    // The dashboard's URL, as printed, serves the ops console.
    const dashboardUrl = new RegExp(`Dashboard\\s+(http://127\\.0\\.0\\.1:${ports.CLOUD_PORT}/dashboard/)`).exec(
      site.output(),
    )?.[1];
    assert.ok(dashboardUrl, "prints the dashboard's URL");
    const dashboard = await fetch(dashboardUrl ?? "");
    assert.is(dashboard.status, 200);
    assert.match(await dashboard.text(), /<title>PayLane ops<\/title>/);

    const tap = await run(
      process.execPath,
      ["--import", "tsx", "scripts/tap.ts", "--kiosk", "k1", "--uid", "04A2B3C4"],
      {
        cwd: root,
        env: { ...process.env, PAYLANE_DATA: dir },
      },
    );
    assert.match(tap.stdout, /k1: Welcome, Ada Lovelace/);

    const cloud = `http://127.0.0.1:${ports.CLOUD_PORT}`;
    // operator reads need the token npm start wrote (never printed), /metrics its own
    const token = (await readFile(join(dir, "operator-token"), "utf8")).trim();
    const asOperator = { headers: { authorization: `Bearer ${token}` } };
    const metricsToken = (await readFile(join(dir, "metrics-token"), "utf8")).trim();
    // Across processes the only thing to watch is the API; poll it briefly.
    let items: Array<{ memberName: string; device: string }> = [];
    for (let i = 0; i < 100 && items.length === 0; i++) {
      items = ((await (await fetch(`${cloud}/api/v1/checkins`, asOperator)).json()) as { items: typeof items }).items;
      if (items.length === 0) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(
      items.map((c) => [c.memberName, c.device]),
      [["Ada Lovelace", "k1"]],
    );
    const devices = (await (await fetch(`${cloud}/api/v1/devices`, asOperator)).json()) as {
      items: Array<{ device: string; state: string }>;
    };
    assert.equal(
      devices.items.map((d) => [d.device, d.state]),
      [
        ["k1", "online"],
        ["k2", "online"],
      ],
    );
    const health = await fetch(`${cloud}/healthz`);
    assert.is(health.status, 200);
    assert.is((await fetch(`${cloud}/api/v1/checkins`)).status, 401, "no operator reads without a token");
    assert.match(
      await (await fetch(`${cloud}/metrics`, { headers: { authorization: `Bearer ${metricsToken}` } })).text(),
      /paylane_bridge_entries_total\{outcome="applied"\} 1/,
    );

    // a coffee from Ada's wallet on the embedded site (PGlite), and the ledger row through the operator API
    // as a tool on the kiosk: with the local API token k1 wrote to its data folder
    const post = (path: string, body: unknown) =>
      kioskPost(kioskBase, join(dir, "kiosks", "k1"), path, body).then(
        (r) => r.json() as Promise<Record<string, unknown>>,
      );
    const session = await post("/api/payments", { itemId: "coffee" });
    assert.is(session.state, "awaiting-card", JSON.stringify(session));
    const paid = await post("/api/sim/tap", { uid: "04A2B3C4" });
    assert.equal([paid.outcome, paid.authorization, paid.balance], ["approved", "online", 2250]);
    const ledger = (await (await fetch(`${cloud}/api/v1/payments?site=demo`, asOperator)).json()) as {
      items: Array<{ memberId: string; amount: number }>;
    };
    assert.equal(
      ledger.items.map((e) => [e.memberId, e.amount]),
      [["m-ada", -250]],
    );
    assert.not.ok(site.output().includes(token.split(".")[2]!), "the operator token is never printed");

    // The ops logins: a file only the user reads, exactly the two demo operators; the printed
    // mosquitto_sub line (run as printed, real binary) reads a kiosk's retained status with them.
    const opsPath = join(dir, "ops-credentials.json");
    assert.is((await stat(opsPath)).mode & 0o777, 0o600);
    const ops = JSON.parse(await readFile(opsPath, "utf8")) as Record<string, { username: string; password: string }>;
    assert.equal(Object.keys(ops), ["viewer", "operator"]);
    assert.equal(
      Object.values(ops).map((o) => [o.username, Object.keys(o), o.password.length >= 24]),
      [
        ["ops:viewer", ["username", "password"], true],
        ["ops:operator", ["username", "password"], true],
      ],
    );
    assert.ok(site.output().includes(opsPath), "prints where the credentials are");
    for (const o of Object.values(ops)) assert.not.ok(site.output().includes(o.password), "a password is printed");

    // The console's first admin: a file only the user reads, whose login works on the cloud's API.
    const adminPath = join(dir, "admin-credentials.json");
    assert.is((await stat(adminPath)).mode & 0o777, 0o600);
    const admin = JSON.parse(await readFile(adminPath, "utf8")) as { username: string; password: string };
    assert.equal(Object.keys(admin), ["username", "password"]);
    assert.is(admin.username, "admin");
    assert.ok(site.output().includes(adminPath), "prints where the admin's login is");
    assert.not.ok(site.output().includes(admin.password), "the admin's password is never printed");
    const login = await fetch(`${cloud}/api/v1/auth/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(admin),
    });
    assert.is(login.status, 200);
    const adminSession = (await login.json()) as { accessToken: string; operator: { role: string } };
    assert.is(adminSession.operator.role, "admin");
    const me = await fetch(`${cloud}/api/v1/auth/me`, {
      headers: { authorization: `Bearer ${adminSession.accessToken}` },
    });
    assert.is(me.status, 200);
    const subLine = site.output().match(/^\s*(mosquitto_sub .*)$/m)?.[1];
    assert.ok(subLine, `a mosquitto_sub line is printed:\n${site.output()}`);
    assert.ok(subLine.includes(`-p ${ports.MQTT_PORT} `), subLine);
    const sub = await run("bash", ["-c", `${subLine} -C 1 -W 20`], { cwd: root });
    const [topic, payload] = sub.stdout.trim().split(" ", 2);
    assert.match(topic!, /^paylane\/v1\/demo\/k[12]\/status$/);
    assert.is(JSON.parse(payload!).state, "online");

    // The installers' line, run as printed (without the QR files): a claim code from this site's cloud.
    const claimLine = site.output().match(/^\s*Installers\s+(PAYLANE_DATA=.*)$/m)?.[1];
    assert.ok(claimLine, `an installers' claim line is printed:\n${site.output()}`);
    const claimed = await run("bash", ["-c", `${claimLine} --no-qr --json`], { cwd: root });
    const { claims } = JSON.parse(claimed.stdout) as { claims: Array<{ code: string }> };
    assert.ok(parseClaimCode(claims[0]!.code).ok, claimed.stdout);
  } finally {
    site.child.kill("SIGINT");
    const code = await site.exited;
    await rm(dir, { recursive: true, force: true });
    assert.is(code, 0, `site exited cleanly on Ctrl-C:\n${site.output()}`);
  }
});

it("supervises: a kiosk killed -9 is back within 5 s; the cloud stopped alone leaves the kiosks working offline; Ctrl-C sends every kiosk's clean offline status", async () => {
  const dir = await mkdtemp(join(tmpdir(), "paylane-start-"));
  const base = await freePortRun(5);
  const kioskBase = base + 3;
  const cloud = `http://127.0.0.1:${base + 2}`;
  const site = startSiteProcess({
    MQTT_PORT: String(base),
    GATEWAY_HTTP_PORT: String(base + 1),
    CLOUD_PORT: String(base + 2),
    KIOSK_PORT_BASE: String(kioskBase),
    PAYLANE_DATA: dir,
    MQTT_URL: "",
    DATABASE_URL: "",
    REDIS_URL: "",
  });
  let watcher: mqtt.MqttClient | undefined;
  try {
    await waitForOutput(site, "PayLane site is running");
    const pidOf = (pattern: RegExp) => Number(site.output().match(pattern)![1]);
    const k2Pid = pidOf(/Kiosk k2\s+\S+\s+\(pid (\d+)\)/);
    const cloudPid = pidOf(/Cloud API\s+\S+\s+\(pid (\d+)\)/);

    // What the broker sees of the kiosks' statuses, as the cloud would (its credentials, another client id).
    const secrets = JSON.parse(await readFile(join(dir, "secrets.json"), "utf8")) as { cloud: string };
    const statuses: Array<{ device: string; status: { state: string; at?: string } }> = [];
    watcher = await mqtt.connectAsync(`mqtt://127.0.0.1:${base}`, {
      clientId: "npm-start-test-watcher",
      username: serviceUsername("cloud"),
      password: secrets.cloud,
      reconnectPeriod: 0,
    });
    watcher.on("message", (topic, payload) => {
      statuses.push({ device: topic.split("/")[3]!, status: JSON.parse(payload.toString()) });
    });
    await watcher.subscribeAsync(topics.fleet("status", "demo"), { qos: 1 });

    // kill -9 a kiosk: one line naming it and its signal, and the kiosk back on its port within 5 s
    let from = site.output().length;
    process.kill(k2Pid, "SIGKILL");
    const killedAt = Date.now();
    await outputMatch(site, /npm start: kiosk k2 died \(signal SIGKILL\); restarting in 0\.5 s/, from, 5000);
    await outputMatch(site, /npm start: kiosk k2 is back \(pid \d+\)/, from, RECOVERY_MS - (Date.now() - killedAt));
    await answers(`http://127.0.0.1:${kioskBase + 1}/healthz`, RECOVERY_MS - (Date.now() - killedAt));
    console.log(`  kiosk k2 back on /healthz ${Date.now() - killedAt} ms after its SIGKILL`);

    // the README's "stop the cloud and keep tapping": the cloud alone stops, the kiosks answer offline
    from = site.output().length;
    process.kill(cloudPid, "SIGTERM");
    await outputMatch(site, /npm start: cloud stopped \(exit code 0\); the site goes on without it/, from, 30_000);
    const tap = await run(
      process.execPath,
      ["--import", "tsx", "scripts/tap.ts", "--kiosk", "k1", "--uid", "04A2B3C4"],
      { cwd: root, env: { ...process.env, PAYLANE_DATA: dir } },
    );
    assert.match(tap.stdout, /k1: Welcome, Ada Lovelace/, "the kiosk decides offline");
    assert.is((await fetch(`http://127.0.0.1:${kioskBase}/healthz`)).status, 200);
    // and back: `kill -USR2 <runner>` starts it; k1's journal catches up
    site.child.kill("SIGUSR2");
    await outputMatch(site, /npm start: cloud is back \(pid \d+\)/, from, 90_000);
    const token = (await readFile(join(dir, "operator-token"), "utf8")).trim();
    let items: Array<{ memberName: string; device: string }> = [];
    for (let i = 0; i < 300 && items.length === 0; i++) {
      const res = await fetch(`${cloud}/api/v1/checkins`, { headers: { authorization: `Bearer ${token}` } });
      items = ((await res.json()) as { items: typeof items }).items;
      if (items.length === 0) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(
      items.map((c) => [c.memberName, c.device]),
      [["Ada Lovelace", "k1"]],
    );

    // Ctrl-C: the kiosks stop before the broker, so the broker hears each one's clean goodbye
    // (`{state:"offline", at}`; the Will it would publish for a vanished kiosk has no `at`).
    statuses.length = 0;
    site.child.kill("SIGINT");
    assert.is(await site.exited, 0, site.output());
    for (const device of ["k1", "k2"]) {
      const last = statuses.filter((s) => s.device === device).at(-1);
      assert.is(last?.status.state, "offline", `${device}: ${JSON.stringify(statuses)}`);
      assert.type(last?.status.at, "string", `${device}'s goodbye is the clean one, not its Will`);
    }
  } finally {
    watcher?.end(true);
    // A failed assertion still stops the site cleanly: SIGKILL on the runner would orphan its parts.
    if (site.child.exitCode === null && site.child.signalCode === null) site.child.kill("SIGINT");
    await site.exited;
    await rm(dir, { recursive: true, force: true });
  }
});

it("a cloud that cannot connect to MQTT at start is one line and a non-zero exit, not a site that waits", async () => {
  // A "broker" that takes the connection and never answers: the cloud gives up after 10 s.
  const silent: Server = createServer(() => {});
  await new Promise<void>((r) => silent.listen(0, "127.0.0.1", () => r()));
  const mqttPort = (silent.address() as { port: number }).port;
  const dir = await mkdtemp(join(tmpdir(), "paylane-start-"));
  const base = await freePortRun(3);
  try {
    const site = startSiteProcess({
      MQTT_URL: `mqtt://127.0.0.1:${mqttPort}`,
      CLOUD_PORT: String(base),
      KIOSK_PORT_BASE: String(base + 1),
      PAYLANE_DATA: dir,
      DATABASE_URL: "",
      REDIS_URL: "",
    });
    assert.is(await within(site.exited, 120_000, "the site to stop"), 1);
    assert.equal(site.output().trim().split("\n"), [
      `paylane-cloud: failed to start: cannot connect to MQTT_URL mqtt://127.0.0.1:${mqttPort}: no answer within 10 s`,
    ]);
  } finally {
    silent.close();
    await rm(dir, { recursive: true, force: true });
  }
});

it("--help lists the environment and examples; an unknown flag or a bad time zone is one line, exit 2", async () => {
  const dir = await mkdtemp(join(tmpdir(), "paylane-start-"));
  try {
    const help = startSiteProcess({ PAYLANE_DATA: dir }, ["--help"]);
    assert.is(await help.exited, 0);
    for (const text of ["Usage: npm start", "SITE_ID", "KIOSK_PORT_BASE", "kill -USR2", "Examples:"]) {
      assert.ok(help.output().includes(text), `--help mentions ${text}:\n${help.output()}`);
    }
    const bogus = startSiteProcess({ PAYLANE_DATA: dir }, ["--bogus"]);
    assert.is(await bogus.exited, 2);
    assert.is(bogus.output().trim(), "npm start: unknown option '--bogus' (see npm start -- --help)");
    const mars = startSiteProcess({ PAYLANE_DATA: dir, SITE_TIMEZONE: "Mars/Olympus" });
    assert.is(await mars.exited, 2);
    assert.is(
      mars.output().trim(),
      "npm start: SITE_TIMEZONE: unknown time zone 'Mars/Olympus' (use an IANA name such as Europe/Berlin)",
    );
    assert.not.ok(existsSync(join(dir, "registry.json")), "nothing written");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

it("a bad SITE_ID is one line naming it and its form; nothing is written", async () => {
  const dir = await mkdtemp(join(tmpdir(), "paylane-start-"));
  try {
    const site = startSiteProcess({ SITE_ID: "Bad Site", PAYLANE_DATA: dir });
    assert.is(await site.exited, 2);
    assert.is(
      site.output().trim(),
      `npm start: SITE_ID: 'Bad Site' is not a site id: expected lower-case letters, digits, "-" or "_", starting with a letter or digit, at most 63 (e.g. demo, venue-12)`,
    );
    assert.not.ok(existsSync(join(dir, "registry.json")), "no registry.json written");
    assert.not.ok(existsSync(join(dir, "secrets.json")), "no secrets.json written");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

it("a bad registry.json left by an old version is one line naming the file and what to do", async () => {
  const dir = await mkdtemp(join(tmpdir(), "paylane-start-"));
  try {
    await writeFile(join(dir, "secrets.json"), JSON.stringify({ cloud: "c", devices: { k1: "a", k2: "b" } }));
    const registry = { version: 1, devices: [{ site: "Bad Site", device: "k1", secretHash: "x" }], services: [] };
    await writeFile(join(dir, "registry.json"), JSON.stringify(registry));
    const site = startSiteProcess({ PAYLANE_DATA: dir });
    assert.is(await site.exited, 2);
    const lines = site.output().trim().split("\n");
    assert.is(lines.length, 1, site.output());
    assert.ok(lines[0]!.startsWith(`npm start: ${join(dir, "registry.json")}: devices[0].site: `), lines[0]);
    assert.match(lines[0]!, /delete it and secrets\.json beside it/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

it("a data folder made before operators existed gets the demo operators on its next start", async () => {
  const dir = await mkdtemp(join(tmpdir(), "paylane-start-"));
  try {
    const first = await ensureIdentities(dir, "demo", ["k1", "k2"]);
    // As an older version left it: no operators in the registry, none in secrets.json.
    const registryPath = join(dir, "registry.json");
    const registry = JSON.parse(await readFile(registryPath, "utf8"));
    delete registry.operators;
    await writeFile(registryPath, JSON.stringify(registry));
    const secrets = JSON.parse(await readFile(join(dir, "secrets.json"), "utf8"));
    delete secrets.operators;
    await writeFile(join(dir, "secrets.json"), JSON.stringify(secrets));

    const next = await ensureIdentities(dir, "demo", ["k1", "k2"]);
    assert.is(next.secrets.devices.k1, first.secrets.devices.k1, "the kiosks keep their secrets");
    const { Registry } = await import("@paylane/protocol");
    const loaded = await Registry.load(registryPath);
    assert.equal(loaded.operators, [
      { id: "viewer", role: "viewer", sites: ["demo"] },
      { id: "operator", role: "operator", sites: ["demo"] },
    ]);
    const path = await writeOpsCredentials(dir, next.secrets.operators);
    const ops = JSON.parse(await readFile(path, "utf8"));
    assert.ok(
      await loaded.authenticate(ops.viewer.username, ops.viewer.password),
      "the viewer's login opens the registry",
    );
    assert.ok(await loaded.authenticate(ops.operator.username, ops.operator.password));
    // A third start changes nothing.
    const again = await ensureIdentities(dir, "demo", ["k1", "k2"]);
    assert.equal(again.secrets.operators, next.secrets.operators);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

it.run();
