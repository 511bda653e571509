/**
 * The daemon's messages to systemd arrive on a real NOTIFY_SOCKET: a unix
 * datagram socket bound by python3 stands in for systemd, and the real
 * systemd-notify binary carries them. Time is the fake clock's.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { startSystemdNotify } from "../src/systemd/index.ts";
import { FakeSystemd } from "./fake-systemd.ts";
import { FakeTimers } from "./fake-timers.ts";

const silent = pino({ level: "silent" });

test("READY=1, WATCHDOG=1 every WATCHDOG_USEC/2 and STOPPING=1 reach the notify socket", async () => {
  const dir = await mkdtemp(join(tmpdir(), "paylane-notify-"));
  const socket = join(dir, "notify");
  const systemd = await FakeSystemd.start(socket);
  const clock = new FakeTimers();
  const notify = startSystemdNotify({
    log: silent,
    timers: clock,
    env: { NOTIFY_SOCKET: socket, WATCHDOG_USEC: "30000000", WATCHDOG_PID: String(process.pid) },
  });
  try {
    notify.ready();
    await systemd.received("READY=1");
    assert.ok(
      systemd.messages.some((m) => m.includes(`MAINPID=${process.pid}`)),
      "the daemon is named the main process",
    );

    clock.advance(14_999);
    clock.advance(1);
    await systemd.received("WATCHDOG=1", 1);
    clock.advance(15_000);
    await systemd.received("WATCHDOG=1", 2);

    notify.stopping();
    await systemd.received("STOPPING=1");
    notify.stop();
    assert.is(clock.pending, 0, "no watchdog timer outlives stop()");
  } finally {
    notify.stop();
    systemd.stop();
    await rm(dir, { recursive: true, force: true });
  }
});

test("without NOTIFY_SOCKET (not under systemd) nothing is sent and no timer is set", () => {
  const clock = new FakeTimers();
  const notify = startSystemdNotify({ log: silent, timers: clock, env: { WATCHDOG_USEC: "30000000" } });
  notify.ready();
  assert.is(clock.pending, 0);
  notify.stopping();
  notify.stop();
});

test("a watchdog meant for another process (WATCHDOG_PID) is not pinged", () => {
  const clock = new FakeTimers();
  const notify = startSystemdNotify({
    log: silent,
    timers: clock,
    env: { NOTIFY_SOCKET: "/nonexistent/notify", WATCHDOG_USEC: "30000000", WATCHDOG_PID: String(process.pid + 1) },
  });
  assert.is(clock.pending, 0);
  notify.stop();
});

test("a missing systemd-notify is one warning, not a crash nor a warning every ping", async () => {
  const warnings: string[] = [];
  const again: string[] = [];
  const log = pino(
    { level: "debug" },
    {
      write(line: string) {
        const { level, msg } = JSON.parse(line) as { level: number; msg: string };
        if (level === 40) warnings.push(msg);
        else if (msg.includes("again")) again.push(msg);
      },
    },
  );
  const clock = new FakeTimers();
  const notify = startSystemdNotify({
    log,
    timers: clock,
    env: { NOTIFY_SOCKET: "/nonexistent/notify", WATCHDOG_USEC: "2000000" },
    command: "/nonexistent/systemd-notify",
  });
  notify.ready();
  const until = async (what: () => boolean) => {
    const deadline = Date.now() + 5000;
    while (!what() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  };
  await until(() => warnings.length > 0);
  clock.advance(1000);
  await until(() => again.length > 0);
  clock.advance(1000);
  await until(() => again.length > 1);
  notify.stop();
  assert.is(warnings.length, 1);
  assert.is(again.length, 2, "later failures are only debug lines");
  assert.match(warnings[0] ?? "", /systemd-notify failed/);
});

test.run();
