/**
 * Issue 13, "npm start supervises its site": the supervisor under `npm start`
 * (scripts/site/supervisor.ts) with small real child processes, each a tiny
 * HTTP server, and the backoff on a fake clock. A child killed with SIGKILL is
 * reported in one line and restarted, or stops the site by its policy; a
 * child that keeps crashing stops the site; a child stopped on purpose stays
 * stopped until asked back; stop() ends children newest first.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EXIT_RESTART } from "@paylane/protocol/service";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { httpReady } from "../../scripts/site/http-ready.ts";
import { type ChildSpec, Supervisor } from "../../scripts/site/supervisor.ts";
import { FakeTimers } from "../support/fake-timers.ts";
import { Signal } from "../support/signal.ts";

const it = suite("site supervisor");

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  const { port } = srv.address() as { port: number };
  await new Promise((r) => srv.close(r));
  return port;
}

/**
 * A child that answers HTTP on `port` and, on SIGTERM, appends its name to
 * `log` before it exits 0 (so a test sees in which order children stopped).
 */
function child(name: string, port: number, log: string, policy: ChildSpec["policy"]): ChildSpec {
  const script = `
    const fs = require("node:fs");
    const srv = require("node:http").createServer((q, s) => s.end("ok")).listen(${port}, "127.0.0.1");
    process.on("SIGTERM", () => { fs.appendFileSync(${JSON.stringify(log)}, ${JSON.stringify(`${name}\n`)}); srv.close(); process.exit(0); });
    // As a kiosk does on cmd/reboot: exit asking to be started again.
    process.on("SIGUSR1", () => { srv.close(); process.exit(${EXIT_RESTART}); });
  `;
  return {
    name,
    command: process.execPath,
    args: ["-e", script],
    env: { PATH: process.env.PATH },
    policy,
    ready: (signal) => httpReady(name, `http://127.0.0.1:${port}/`, signal, 20_000),
  };
}

interface Harness {
  supervisor: Supervisor;
  timers: FakeTimers;
  lines: string[];
  /** Resolves with the first report line matching `pattern` (seen or still to come). */
  line(pattern: RegExp, what?: string): Promise<string>;
  /** Resolves once `n` report lines match `pattern`. */
  linesMatching(pattern: RegExp, n: number): Promise<unknown>;
  fatal: () => boolean;
}

function harness(o: { maxRestarts?: number } = {}): Harness {
  const timers = new FakeTimers();
  const lines: string[] = [];
  const changed = new Signal();
  let fatal = false;
  const supervisor = new Supervisor({
    report: (l) => {
      lines.push(l);
      changed.notify();
    },
    onFatal: () => {
      fatal = true;
      changed.notify();
    },
    timers,
    now: () => timers.now().getTime(),
    backoffMs: 500,
    maxRestarts: o.maxRestarts ?? 5,
    restartWindowMs: 60_000,
  });
  return {
    supervisor,
    timers,
    lines,
    line: (pattern, what = String(pattern)) => changed.until(() => lines.find((l) => pattern.test(l)), what, 20_000),
    linesMatching: (pattern, n) =>
      changed.until(() => lines.filter((l) => pattern.test(l)).length >= n, `${n} lines ${pattern}`, 20_000),
    fatal: () => fatal,
  };
}

let dir = "";
it.before.each(async () => {
  dir = await mkdtemp(join(tmpdir(), "paylane-supervisor-"));
});
it.after.each(async () => {
  await rm(dir, { recursive: true, force: true });
});

it("a kiosk killed with SIGKILL is reported in one line and restarted after the backoff, answering again", async () => {
  const h = harness();
  const port = await freePort();
  await h.supervisor.start(child("kiosk k1", port, join(dir, "stopped"), "restart"));
  const first = h.supervisor.pids()["kiosk k1"]!;
  try {
    process.kill(first, "SIGKILL");
    assert.match(
      await h.line(/^kiosk k1 died/),
      "kiosk k1 died (signal SIGKILL); restarting in 0.5 s (restart 1 of 5 allowed within 60 s)",
    );
    assert.is(h.timers.pending, 1, "the restart waits for its backoff");
    h.timers.advance(500);
    const back = await h.line(/^kiosk k1 is back/);
    const second = h.supervisor.pids()["kiosk k1"]!;
    assert.is(back, `kiosk k1 is back (pid ${second})`);
    assert.is.not(second, first);
    assert.is((await fetch(`http://127.0.0.1:${port}/`)).status, 200);
    assert.not.ok(h.fatal());
    assert.is(h.lines.length, 2, h.lines.join("\n"));
  } finally {
    await h.supervisor.stop();
  }
});

it("a kiosk that exits asking for a restart (cmd/reboot) is started again at once, not counted as a crash", async () => {
  const h = harness({ maxRestarts: 1 });
  const port = await freePort();
  await h.supervisor.start(child("kiosk k1", port, join(dir, "stopped"), "restart"));
  try {
    for (let round = 1; round <= 3; round++) {
      const before = h.supervisor.pids()["kiosk k1"]!;
      process.kill(before, "SIGUSR1");
      await h.linesMatching(/^kiosk k1 restarts as it asked/, round);
      h.timers.advance(0);
      await h.linesMatching(/^kiosk k1 is back/, round);
      assert.is.not(h.supervisor.pids()["kiosk k1"], before);
    }
    assert.is((await fetch(`http://127.0.0.1:${port}/`)).status, 200);
    assert.not.ok(h.fatal(), "three asked restarts spend none of a budget of one crash");
    assert.not.ok(
      h.lines.some((l) => l.includes("died")),
      h.lines.join("\n"),
    );
  } finally {
    await h.supervisor.stop();
  }
});

it("a child whose death the site cannot outlive (the broker) stops the site, named with its exit", async () => {
  const h = harness();
  await h.supervisor.start(child("gateway", await freePort(), join(dir, "stopped"), "stop-site"));
  try {
    process.kill(h.supervisor.pids().gateway!, "SIGKILL");
    assert.is(await h.line(/^gateway/), "gateway died (signal SIGKILL); stopping the site");
    assert.ok(h.fatal());
    assert.is(h.timers.pending, 0, "nothing restarts it");
  } finally {
    await h.supervisor.stop();
  }
});

it("a child that keeps crashing is restarted with doubling backoff, then stops the site", async () => {
  const h = harness({ maxRestarts: 2 });
  await h.supervisor.start(child("cloud", await freePort(), join(dir, "stopped"), "restart"));
  try {
    process.kill(h.supervisor.pids().cloud!, "SIGKILL");
    await h.line(/restarting in 0.5 s \(restart 1 of 2/);
    h.timers.advance(500);
    await h.line(/^cloud is back/);
    process.kill(h.supervisor.pids().cloud!, "SIGKILL");
    await h.line(/restarting in 1 s \(restart 2 of 2/);
    h.timers.advance(1000);
    await h.linesMatching(/^cloud is back/, 2);
    process.kill(h.supervisor.pids().cloud!, "SIGKILL");
    assert.is(
      await h.line(/stopping the site/),
      "cloud died (signal SIGKILL) after 2 restarts within 60 s; stopping the site",
    );
    assert.ok(h.fatal());
  } finally {
    await h.supervisor.stop();
  }
});

it("a part stopped on purpose (kill <pid>) stays stopped while the others run, and SIGUSR2's startStopped brings it back", async () => {
  const h = harness();
  const cloudPort = await freePort();
  const kioskPort = await freePort();
  await h.supervisor.start(child("cloud", cloudPort, join(dir, "stopped"), "restart"));
  await h.supervisor.start(child("kiosk k1", kioskPort, join(dir, "stopped"), "restart"));
  try {
    process.kill(h.supervisor.pids().cloud!, "SIGTERM");
    assert.match(
      await h.line(/^cloud stopped/),
      /^cloud stopped \(exit code 0\); the site goes on without it \(kill -USR2 \d+ starts it again\)$/,
    );
    assert.is(h.timers.pending, 0, "not restarted");
    assert.not.ok(h.fatal());
    assert.is((await fetch(`http://127.0.0.1:${kioskPort}/`)).status, 200, "the kiosk runs on");
    await h.supervisor.startStopped();
    assert.match(h.lines.at(-1)!, /^cloud is back \(pid \d+\)$/);
    assert.is((await fetch(`http://127.0.0.1:${cloudPort}/`)).status, 200);
  } finally {
    await h.supervisor.stop();
  }
});

it("stop() ends the children newest first, each waited for (the kiosks before the broker)", async () => {
  const h = harness();
  const log = join(dir, "stopped");
  for (const name of ["gateway", "cloud", "kiosk k1", "kiosk k2"]) {
    await h.supervisor.start(child(name, await freePort(), log, name === "gateway" ? "stop-site" : "restart"));
  }
  await h.supervisor.stop();
  assert.equal((await readFile(log, "utf8")).trim().split("\n"), ["kiosk k2", "kiosk k1", "cloud", "gateway"]);
  assert.equal(h.lines, [], "a stop is not reported as deaths");
  assert.not.ok(h.fatal());
});

it("a child that dies while starting fails its start, named with its exit, and is not restarted", async () => {
  const h = harness();
  const spec: ChildSpec = {
    ...child("cloud", await freePort(), join(dir, "stopped"), "restart"),
    args: ["-e", "process.exit(1)"],
  };
  const err = await h.supervisor.start(spec).then(
    () => undefined,
    (e: Error) => e,
  );
  assert.is(err?.message, "cloud exited while starting (exit code 1)");
  assert.is(h.timers.pending, 0);
  assert.not.ok(h.fatal());
});

it.run();
