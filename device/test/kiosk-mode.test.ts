/**
 * The operating mode on a whole (offline) kiosk daemon: `set-mode` to
 * maintenance reaches the screen feed with the configured text, a walk-up
 * card or code is refused politely and nothing is journaled, a payment
 * cannot start; back in service, taps check in again. The mode survives a
 * restart of the daemon. Telemetry carries the new board facts.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PROTOCOL_VERSION, TelemetrySchema } from "@paylane/protocol";
import { type LiveMessage, LiveMessageSchema } from "@paylane/protocol/kiosk-api";
import pino from "pino";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import WebSocket from "ws";
import { kioskPost } from "../../test/support/kiosk-api.ts";
import { Signal } from "../../test/support/signal.ts";
import { readBoardHealth } from "../src/board-health.ts";
import { parseDeviceConfig } from "../src/config.ts";
import { KioskDaemon } from "../src/daemon.ts";
import { readLocalApiToken } from "../src/local-api-token.ts";
import { Replica } from "../src/replica.ts";
import { kioskTelemetry } from "../src/telemetry.ts";
import { DEVICE_VERSION } from "../src/version.ts";

const ADA = { id: "m-ada", name: "Ada Lovelace", cardUid: "04A2B3C4", code: "ADA1", status: "active" as const };

interface Ctx {
  root: string;
  dataDir: string;
  daemon: KioskDaemon;
}

const test = suite<Ctx>("kiosk mode");

/** An offline kiosk (nobody listens on port 9) whose replica knows Ada. */
function daemonIn(dataDir: string): KioskDaemon {
  return new KioskDaemon({
    config: parseDeviceConfig({
      site: "s1",
      device: "k1",
      secret: "kiosk-mode-secret-0123456",
      mqttUrl: "mqtt://127.0.0.1:9",
      cloudUrl: "http://127.0.0.1:9",
      dataDir,
      http: { host: "127.0.0.1", port: 0 },
      reader: { type: "pn532-simulator", pollIntervalMs: 5 },
    }),
    logger: pino({ level: "silent" }),
  });
}

test.before.each(async (ctx) => {
  ctx.root = await mkdtemp(join(tmpdir(), "paylane-kiosk-mode-"));
  ctx.dataDir = join(ctx.root, "k1");
  await mkdir(ctx.dataDir, { recursive: true });
  const replica = await Replica.open(join(ctx.dataDir, "replica.db"));
  await replica.replace({ site: "s1", version: 1, timezone: "UTC", siteName: "Venue", members: [ADA] }, new Date());
  await replica.close();
  ctx.daemon = daemonIn(ctx.dataDir);
  await ctx.daemon.start();
});

test.after.each(async (ctx) => {
  await ctx.daemon.stop();
  await rm(ctx.root, { recursive: true, force: true });
});

const command = (id: string, args: Record<string, unknown>) => Buffer.from(JSON.stringify({ id, args }));

/** The screen's live feed, as the kiosk's page gets it. */
async function feed(ctx: Ctx): Promise<{ messages: LiveMessage[]; signal: Signal; close: () => void }> {
  const token = await readLocalApiToken(ctx.dataDir);
  const socket = new WebSocket(`ws://127.0.0.1:${ctx.daemon.port}/api/live`, {
    headers: { authorization: `Bearer ${token}` },
  });
  const messages: LiveMessage[] = [];
  const signal = new Signal();
  socket.on("message", (data) => {
    messages.push(LiveMessageSchema.parse(JSON.parse(String(data))));
    signal.notify();
  });
  await new Promise((resolve, reject) => socket.once("open", resolve).once("error", reject));
  return { messages, signal, close: () => socket.close() };
}

test("maintenance: the screen feed says so with its text, a tap is refused politely and nothing is journaled", async (ctx) => {
  const { daemon } = ctx;
  const live = await feed(ctx);
  await live.signal.until(() => live.messages.some((m) => m.type === "state"), "the first state");
  await daemon.configDesk.receive(
    Buffer.from(JSON.stringify({ version: 1, settings: { screenTexts: { maintenance: "Back at noon, sorry!" } } })),
  );
  const before = await daemon.journal.stats();
  const r = await daemon.commands.handle("set-mode", command("m1", { mode: "maintenance" }));
  assert.is(r?.status, "done");

  const shown = await live.signal.until(
    () =>
      live.messages.find(
        (m): m is Extract<LiveMessage, { type: "state" }> =>
          m.type === "state" && m.state.screen?.mode === "maintenance",
      ),
    "a state in maintenance on the feed",
  );
  assert.is(shown.state.screen?.texts?.maintenance, "Back at noon, sorry!");
  assert.is((await daemon.state()).screen?.mode, "maintenance");
  const page = await (await fetch(`http://127.0.0.1:${daemon.port}/status`)).text();
  assert.match(page, /maintenance: taps are refused/, "the technician's status page says so too");

  const tap = await daemon.tap(ADA.cardUid);
  assert.is(tap.outcome, "refused");
  assert.is(tap.message, "Back at noon, sorry!");
  const code = await kioskPost(daemon.port, ctx.dataDir, "/api/code", { code: ADA.code });
  assert.is(code.status, 200);
  assert.is(((await code.json()) as { outcome: string }).outcome, "refused");
  await live.signal.until(
    () => live.messages.some((m) => m.type === "result" && m.result.message === "Back at noon, sorry!"),
    "the refusal shown on the screen",
  );
  assert.equal(await daemon.journal.stats(), before, "nothing journaled");

  const pay = await kioskPost(daemon.port, ctx.dataDir, "/api/payments", { amount: 100 });
  assert.is(pay.status, 409, "no payment starts in maintenance");

  await daemon.commands.handle("set-mode", command("m2", { mode: "in-service" }));
  const welcome = await daemon.tap(ADA.cardUid);
  assert.is(welcome.outcome, "welcome");
  assert.is((await daemon.journal.stats()).lastSeq, before.lastSeq + 1);
  live.close();
});

test("out of service survives a restart of the daemon", async (ctx) => {
  await ctx.daemon.commands.handle("set-mode", command("m1", { mode: "out-of-service" }));
  await ctx.daemon.stop();
  ctx.daemon = daemonIn(ctx.dataDir);
  await ctx.daemon.start();
  assert.is((await ctx.daemon.state()).screen?.mode, "out-of-service");
  const tap = await ctx.daemon.tap(ADA.cardUid);
  assert.is(tap.outcome, "refused");
  assert.match(tap.message, /out of service/);
  // The same command id after the restart: answered from the log, not run again.
  const again = await ctx.daemon.commands.handle("set-mode", command("m1", { mode: "out-of-service" }));
  assert.is(again?.status, "done");
});

test("telemetry carries memory, disk, CPU temperature, versions, mode and config version", async (ctx) => {
  const zone = join(ctx.root, "temp");
  await writeFile(zone, "48312\n");
  const board = await readBoardHealth(ctx.dataDir, zone);
  assert.is(board.cpuTemperatureC, 48.3);
  assert.ok(board.memory.rssBytes > 0 && board.memory.totalBytes >= board.memory.freeBytes);
  assert.ok(board.disk && board.disk.totalBytes > 0 && board.disk.freeBytes > 0);
  assert.is((await readBoardHealth(ctx.dataDir, join(ctx.root, "no-such-zone"))).cpuTemperatureC, null);

  const { daemon } = ctx;
  const telemetry = kioskTelemetry({
    now: new Date(),
    bootedAt: new Date(),
    journal: await daemon.journal.stats(),
    replica: { version: 1, members: 1, syncedAt: null, siteName: "Venue", timezone: "UTC" } as never,
    peripherals: daemon.peripherals.health(),
    storage: "ok",
    payments: undefined,
    board,
    mode: "maintenance",
    configVersion: 3,
    deviceVersion: DEVICE_VERSION,
  });
  const parsed = TelemetrySchema.parse(telemetry);
  assert.is(parsed.mode, "maintenance");
  assert.is(parsed.configVersion, 3);
  assert.is(parsed.cpuTemperatureC, 48.3);
  assert.equal(parsed.versions, { device: DEVICE_VERSION, node: process.versions.node, protocol: PROTOCOL_VERSION });
  assert.ok(parsed.memory && parsed.disk);
});

test.run();
