/**
 * Desired configuration at the kiosk: each setting applied live and
 * reported on `state`; a bad field refused with its reason while the rest
 * applies and its last good value stays; an unreadable config changes
 * nothing and says why; an older version is ignored; and the last good
 * settings come back after a restart, before any broker is reached.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { OfflineLimits, ReportedState } from "@paylane/protocol";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { Journal } from "../src/journal.ts";
import { ConfigDesk } from "../src/kiosk/config-desk.ts";
import { OperatingMode } from "../src/kiosk/kiosk-mode.ts";
import type { KioskKit } from "../src/kiosk/kit.ts";
import { OfflineCaps } from "../src/kiosk/offline-caps.ts";
import { PaymentIntents } from "../src/payments/intents.ts";
import { PaymentDesk } from "../src/payments/payment-desk.ts";
import { WalletReplica } from "../src/payments/wallet-replica.ts";
import { Replica } from "../src/replica.ts";
import { SettingsStore } from "../src/settings-store.ts";
import { Sqlite } from "../src/sqlite.ts";
import { testKit } from "./kiosk-kit.ts";

interface Ctx {
  dir: string;
  db: Sqlite;
  kit: KioskKit;
  desk: ConfigDesk;
  mode: OperatingMode;
  caps: OfflineCaps;
  /** What the desk set on the parts it drives. */
  telemetryMs: number[];
  livenessMs: number[];
  states: ReportedState[];
}

const test = suite<Ctx>("config desk");

async function openDesk(ctx: Ctx): Promise<void> {
  ctx.db = await Sqlite.open(join(ctx.dir, "journal.db"));
  const store = await SettingsStore.open(ctx.db);
  ctx.mode = await OperatingMode.open(ctx.kit, store);
  ctx.caps = new OfflineCaps();
  ctx.desk = new ConfigDesk(ctx.kit, {
    store,
    mode: ctx.mode,
    offlineCaps: ctx.caps,
    telemetry: { setIntervalMs: (ms) => ctx.telemetryMs.push(ms) },
    uplink: {
      publishState: (s) => ctx.states.push(s),
      setCloudLivenessMs: (ms) => ctx.livenessMs.push(ms),
    },
  });
  await ctx.desk.start();
}

test.before.each(async (ctx) => {
  ctx.dir = await mkdtemp(join(tmpdir(), "paylane-config-"));
  ctx.kit = testKit(ctx.dir);
  ctx.telemetryMs = [];
  ctx.livenessMs = [];
  ctx.states = [];
  await openDesk(ctx);
});

test.after.each(async (ctx) => {
  await ctx.db.close();
  await rm(ctx.dir, { recursive: true, force: true });
});

const desired = (version: number, settings: Record<string, unknown>) =>
  Buffer.from(JSON.stringify({ version, settings, by: "ops:ada" }));

const SITE_LIMITS: OfflineLimits = { perPayment: 2000, perCardDaily: 5000, kioskExposure: 20_000 };

const ALL = {
  idleTimeoutSeconds: 45,
  telemetryIntervalSeconds: 15,
  cloudLivenessSeconds: 20,
  offlineCaps: { perCardMinor: 1500, perKioskMinor: 50_000 },
  screenTexts: { welcome: "Hello!", maintenance: "Back at noon" },
  mode: "maintenance",
  logLevel: "debug",
};

test("every setting applies live and the state reports the version and what is in force", async (ctx) => {
  const state = await ctx.desk.receive(desired(3, ALL));
  assert.ok(state);
  assert.is(state?.version, 3);
  assert.equal(state?.rejected, []);
  assert.equal(state?.applied, ALL);
  assert.equal(ctx.states, [state], "published on `state`");
  assert.equal(ctx.telemetryMs, [15_000]);
  assert.equal(ctx.livenessMs, [20_000]);
  assert.is(ctx.kit.log.level, "debug");
  assert.is(ctx.mode.mode, "maintenance");
  assert.equal(ctx.mode.screen, {
    mode: "maintenance",
    texts: { welcome: "Hello!", maintenance: "Back at noon" },
    idleTimeoutSeconds: 45,
  });
  assert.is(ctx.mode.refusal().message, "Back at noon");
  // Caps lower the site's limits, never raise them: 50 000 is above the site's 20 000.
  assert.equal(ctx.caps.lower(SITE_LIMITS), { perPayment: 2000, perCardDaily: 1500, kioskExposure: 20_000 });
  assert.is(ctx.desk.version, 3);
});

test("a bad field is refused with its reason; the others apply and its last good value stays", async (ctx) => {
  await ctx.desk.receive(desired(1, { idleTimeoutSeconds: 30, telemetryIntervalSeconds: 10 }));
  const state = await ctx.desk.receive(
    desired(2, { idleTimeoutSeconds: 2, telemetryIntervalSeconds: 20, mode: "party", volume: 11 }),
  );
  assert.is(state?.version, 2);
  const rejected = Object.fromEntries((state?.rejected ?? []).map((r) => [r.field, r.reason]));
  assert.equal(Object.keys(rejected).sort(), ["idleTimeoutSeconds", "mode", "volume"]);
  assert.match(rejected.idleTimeoutSeconds ?? "", />=\s*5|at least 5|too small/i);
  assert.match(rejected.volume ?? "", /unknown setting; known: idleTimeoutSeconds/);
  assert.equal(state?.applied, { idleTimeoutSeconds: 30, telemetryIntervalSeconds: 20, mode: "in-service" });
  assert.equal(ctx.telemetryMs, [10_000, 20_000]);
  assert.is(ctx.mode.screen.idleTimeoutSeconds, 30, "the screen keeps the last good idle timeout");
  assert.is(ctx.mode.mode, "in-service");
});

test("an unreadable config changes nothing and reports the error", async (ctx) => {
  await ctx.desk.receive(desired(4, { telemetryIntervalSeconds: 10, mode: "maintenance" }));
  for (const payload of [Buffer.from("{not json"), Buffer.from(JSON.stringify({ version: "five", settings: {} }))]) {
    const state = await ctx.desk.receive(payload);
    assert.is(state?.version, 4, "the version in force is still answered");
    assert.match(state?.error ?? "", /desired configuration refused, nothing applied: (malformed JSON|version)/);
    assert.equal(state?.applied, { telemetryIntervalSeconds: 10, mode: "maintenance" });
  }
  assert.equal(ctx.telemetryMs, [10_000]);
  assert.is(ctx.mode.mode, "maintenance");
});

test("an older version is ignored; the same version again (a reconnect) only re-reports", async (ctx) => {
  await ctx.desk.receive(desired(5, { telemetryIntervalSeconds: 10 }));
  const older = await ctx.desk.receive(desired(4, { telemetryIntervalSeconds: 60 }));
  assert.is(older?.version, 5);
  const same = await ctx.desk.receive(desired(5, { telemetryIntervalSeconds: 10, mode: "maintenance" }));
  assert.is(same?.version, 5);
  assert.equal(ctx.telemetryMs, [10_000]);
  assert.is(ctx.mode.mode, "in-service");
  // A cleared config (empty retained payload) changes nothing either.
  assert.is(await ctx.desk.receive(Buffer.alloc(0)), undefined);
  assert.is(ctx.desk.version, 5);
});

test("a set-mode after the config is not undone by the retained config's redelivery", async (ctx) => {
  await ctx.desk.receive(desired(1, { mode: "in-service" }));
  await ctx.mode.set("maintenance", "ops:ada");
  const state = await ctx.desk.receive(desired(1, { mode: "in-service" }));
  assert.is(ctx.mode.mode, "maintenance");
  assert.is(state?.applied.mode, "maintenance", "state reports the mode in force");
});

test("the last good settings apply at start, before any broker; the mode keeps its own latest value", async (ctx) => {
  await ctx.desk.receive(desired(7, { ...ALL, mode: "out-of-service" }));
  await ctx.mode.set("in-service", "ops:ada"); // a set-mode after the config: the newest word on the mode
  await ctx.db.close();
  ctx.telemetryMs = [];
  ctx.livenessMs = [];
  ctx.states = [];
  ctx.kit.log.level = "info";
  await openDesk(ctx);
  assert.is(ctx.desk.version, 7);
  assert.equal(ctx.telemetryMs, [15_000]);
  assert.equal(ctx.livenessMs, [20_000]);
  assert.is(ctx.kit.log.level, "debug");
  assert.is(ctx.mode.screen.idleTimeoutSeconds, 45);
  assert.is(ctx.mode.screen.texts?.maintenance, "Back at noon");
  assert.is(ctx.caps.lower(SITE_LIMITS).perCardDaily, 1500);
  assert.is(ctx.mode.mode, "in-service");
  assert.equal(ctx.states, [], "nothing published before the broker is reached");
  assert.equal(ctx.desk.state().applied.offlineCaps, ALL.offlineCaps);
});

test("offline caps lower what the payment desk approves offline, and the exposure cap in telemetry", async (ctx) => {
  const ada = { id: "m-ada", name: "Ada", cardUid: "04A1B2C3", code: null, status: "active" as const };
  const journal = await Journal.open(join(ctx.dir, "till.db"));
  const replica = await Replica.open(join(ctx.dir, "replica.db"));
  const wallets = await WalletReplica.open(join(ctx.dir, "wallets.db"));
  try {
    await replica.replace(
      { site: "s1", version: 1, timezone: "UTC", siteName: "Venue", members: [ada] },
      ctx.kit.now(),
    );
    await wallets.apply(
      {
        ...{ site: "s1", full: true, version: 1, currency: "EUR", limits: SITE_LIMITS, items: [], appliedUpTo: 0 },
        wallets: [{ memberId: ada.id, balance: 1000, offlineBlocked: false }],
      },
      null,
      ctx.kit.now(),
    );
    const desk = new PaymentDesk({
      ...{ journal, intents: await PaymentIntents.open(journal), members: replica, wallets },
      online: {} as never, // offline throughout: never asked
      isOnline: () => false,
      ...{ now: ctx.kit.now, timers: ctx.kit.timers, logger: ctx.kit.log, idleMs: 60_000, topupAmounts: [1000] },
      ...{ onSession: () => {}, onResult: () => {}, onEnded: () => {} },
      lowerOfflineLimits: ctx.caps.lower,
    });
    await ctx.desk.receive(desired(1, { offlineCaps: { perCardMinor: 300, perKioskMinor: 15_000 } }));
    await desk.start({ kind: "purchase", amount: 500 });
    const over = await desk.onCard(ada.cardUid);
    assert.is(over.outcome, "declined", "500 is within the site's 5000 per card, above this kiosk's 300");
    assert.is(over.reason, "offline-limit");
    await desk.start({ kind: "purchase", amount: 250 });
    assert.is((await desk.onCard(ada.cardUid)).outcome, "approved");
    assert.is((await desk.exposure())?.cap, 15_000);
    // A cap above the site's limit changes nothing: the site's 20 000 stays.
    await ctx.desk.receive(desired(2, { offlineCaps: { perKioskMinor: 90_000 } }));
    assert.is((await desk.exposure())?.cap, 20_000);
  } finally {
    await Promise.all([journal.close(), replica.close(), wallets.close()]);
  }
});

test.run();
