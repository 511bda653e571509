/**
 * Issue 12, process hygiene: shutdown stops users before what they use.
 * Ctrl-C on `npm start` logged `SQLITE_MISUSE: Database handle is closed`:
 * the terminal's SIGINT reached every process of the group and the runner's
 * SIGTERM followed, so a kiosk ran stop() twice and its journal closed under
 * the first stop. A clean Ctrl-C now exits 0 and prints no error line — as the
 * whole site, and for a single daemon stopped in-process while it works.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { promisify } from "node:util";
import pino from "pino";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { Journal } from "../../device/src/journal.ts";
import { readLocalApiToken } from "../../device/src/local-api-token.ts";
import { freePortRun } from "../support/private-mosquitto.ts";
import { TestSite } from "../support/site.ts";

const root = join(import.meta.dirname, "..", "..");
const exec = promisify(execFile);
const it = suite("Ctrl-C");

/** A line that reads as an error to a person or a log pipeline. */
function errorLines(output: string): string[] {
  return output.split("\n").filter((line) => {
    // the runner's own complaints start with "npm start:"; a service's are pino lines or "<name>: failed to start"
    if (/SQLITE_MISUSE|Error|stop failed|failed to start|^npm start: /.test(line)) return true;
    const level = /^\{"level":(\d+)/.exec(line);
    return level !== null && Number(level[1]) >= 50;
  });
}

function waitFor(child: ChildProcess, output: () => string, text: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "${text}" within ${timeoutMs} ms:\n${output()}`)), timeoutMs);
    const check = () => {
      if (!output().includes(text)) return;
      clearTimeout(timer);
      child.stdout?.off("data", check);
      resolve();
    };
    child.stdout?.on("data", check);
    child.once("exit", () => {
      clearTimeout(timer);
      reject(new Error(`exited before "${text}":\n${output()}`));
    });
    check();
  });
}

it("npm start: Ctrl-C to the terminal's process group after taps and payments exits 0 with no error line", async () => {
  const dir = await mkdtemp(join(tmpdir(), "paylane-ctrl-c-"));
  const base = await freePortRun(5);
  const kioskBase = base + 3;
  // Its own process group, like a shell's foreground job: the Ctrl-C goes to every process in it.
  const site = spawn(process.execPath, ["--import", "tsx", join(root, "scripts/site.ts")], {
    cwd: root,
    env: {
      ...process.env,
      LOG_LEVEL: "warn",
      PAYLANE_DATA: dir,
      MQTT_PORT: String(base),
      GATEWAY_HTTP_PORT: String(base + 1),
      CLOUD_PORT: String(base + 2),
      KIOSK_PORT_BASE: String(kioskBase),
      MQTT_URL: "",
      DATABASE_URL: "",
      REDIS_URL: "",
    },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let out = "";
  site.stdout.on("data", (d) => {
    out += d;
  });
  site.stderr.on("data", (d) => {
    out += d;
  });
  const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
    site.once("exit", (code, signal) => resolve([code, signal])),
  );
  try {
    await waitFor(site, () => out, "PayLane site is running", 120_000);
    const tap = (kiosk: string, uid: string) =>
      exec(process.execPath, ["--import", "tsx", "scripts/tap.ts", "--kiosk", kiosk, "--uid", uid], {
        cwd: root,
        env: { ...process.env, PAYLANE_DATA: dir },
      });
    assert.match((await tap("k1", "04A2B3C4")).stdout, /k1: Welcome, Ada Lovelace/);
    assert.match((await tap("k2", "04C0FFEE")).stdout, /k2: Welcome, Alan Turing/);
    // a payment on k1 left waiting for a card: its idle timer is running when the site stops
    const token = await readLocalApiToken(join(dir, "kiosks", "k1"));
    const started = await fetch(`http://127.0.0.1:${kioskBase}/api/payments`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ itemId: "coffee" }),
    });
    assert.ok(started.ok, `${started.status} ${await started.clone().text()}`);
    // and a tap on k2 still on its way while the Ctrl-C arrives (it may or may not make it)
    const late = tap("k2", "04A2B3C4").catch(() => undefined);
    const before = out.length;
    const t0 = Date.now();
    process.kill(-site.pid!, "SIGINT");
    const [code, signal] = await Promise.race([
      exited,
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error(`still running 30 s after Ctrl-C:\n${out}`)), 30_000),
      ),
    ]);
    await late;
    console.log(`  the site stopped ${Date.now() - t0} ms after Ctrl-C (code ${code}); it printed then:`);
    console.log(
      out
        .slice(before)
        .split("\n")
        .filter(Boolean)
        .map((l) => `    ${l.slice(0, 200)}`)
        .join("\n") || "    (nothing)",
    );
    assert.equal([code, signal], [0, null], `exit code 0 on Ctrl-C:\n${out}`);
    assert.equal(errorLines(out), [], `no error line:\n${out}`);
  } finally {
    if (site.exitCode === null && site.signalCode === null) process.kill(-site.pid!, "SIGKILL");
    await rm(dir, { recursive: true, force: true });
  }
});

it("npm start: Ctrl-C while the first kiosk is still starting exits 0, with no error line and nothing left running", async () => {
  const dir = await mkdtemp(join(tmpdir(), "paylane-ctrl-c-"));
  const base = await freePortRun(5);
  const site = spawn(process.execPath, ["--import", "tsx", join(root, "scripts/site.ts")], {
    cwd: root,
    env: {
      ...process.env,
      LOG_LEVEL: "info",
      PAYLANE_DATA: dir,
      MQTT_PORT: String(base),
      GATEWAY_HTTP_PORT: String(base + 1),
      CLOUD_PORT: String(base + 2),
      KIOSK_PORT_BASE: String(base + 3),
      MQTT_URL: "",
      DATABASE_URL: "",
      REDIS_URL: "",
    },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let out = "";
  site.stdout.on("data", (d) => {
    out += d;
  });
  site.stderr.on("data", (d) => {
    out += d;
  });
  const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
    site.once("exit", (code, signal) => resolve([code, signal])),
  );
  try {
    // the first kiosk process has logged: it is starting, and the runner is waiting for it
    await waitFor(site, () => out, '"name":"paylane-device"', 120_000);
    process.kill(-site.pid!, "SIGINT");
    const [code, signal] = await Promise.race([
      exited,
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error(`still running 30 s after Ctrl-C:\n${out}`)), 30_000),
      ),
    ]);
    assert.equal([code, signal], [0, null], `exit code 0 on Ctrl-C:\n${out}`);
    assert.equal(errorLines(out), [], `no error line:\n${out}`);
    // every part is gone: its port is free again
    for (let port = base; port < base + 5; port++) {
      const probe = createServer();
      await new Promise<void>((resolve, reject) => {
        probe.once("error", (err) =>
          reject(new Error(`port ${port} still held after the site stopped: ${err.message}`)),
        );
        probe.listen(port, "127.0.0.1", () => resolve());
      });
      await new Promise((r) => probe.close(r));
    }
  } finally {
    if (site.exitCode === null && site.signalCode === null) process.kill(-site.pid!, "SIGKILL");
    await rm(dir, { recursive: true, force: true });
  }
});

it("a daemon stopped twice at once (SIGINT, then SIGTERM) while it works: no error, work in progress lands", async () => {
  const logs: Array<{ level: number; msg: string; err?: string }> = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split("\n").filter(Boolean)) logs.push(JSON.parse(line));
      done();
    },
  });
  const unhandled: unknown[] = [];
  const onUnhandled = (err: unknown) => unhandled.push(err);
  process.on("unhandledRejection", onUnhandled);
  const site = new TestSite({
    db: "pg",
    presence: "memory",
    broker: "aedes",
    kiosks: ["k1"],
    logger: pino({ level: "info" }, sink),
  });
  await site.start();
  try {
    const k1 = site.kiosk("k1");
    const members = await site.db.query<{ card_uid: string }>(
      "SELECT card_uid FROM members WHERE site_id = $1 AND status = 'active' ORDER BY id LIMIT 1",
      [site.site],
    );
    assert.is((await k1.tap(members.rows[0]!.card_uid)).outcome, "welcome");
    const lastSeq = (await k1.journal.stats()).lastSeq;
    const journalPath = join(site.dir, "k1", "journal.db");

    // work in progress when the signals arrive: staff calls being journaled, telemetry being read
    const calls = Array.from({ length: 10 }, () => k1.callStaff("screen"));
    const telemetry = k1.sendTelemetryNow();
    const stops = await Promise.allSettled([k1.stop(), k1.stop()]);
    assert.equal(
      stops.map((s) => (s.status === "rejected" ? String((s.reason as Error).message) : "stopped")),
      ["stopped", "stopped"],
    );
    assert.equal(
      (await Promise.allSettled([...calls, telemetry])).filter((r) => r.status === "rejected"),
      [],
      "work that had started before the stop finished",
    );
    site.kiosks.delete("k1");

    const journal = await Journal.open(journalPath);
    try {
      const entries = await journal.entriesAfter(lastSeq, 100);
      assert.is(entries.filter((e) => e.kind === "staff-call").length, 10, "every staff call is in the journal");
    } finally {
      await journal.close();
    }
    await new Promise((r) => setImmediate(r));
    assert.equal(unhandled, []);
    assert.equal(
      logs.filter((l) => l.level >= 50).map((l) => `${l.msg}: ${l.err ?? ""}`),
      [],
      "no error logged",
    );
  } finally {
    process.off("unhandledRejection", onUnhandled);
    await site.stop();
  }
});

it.run();
