/**
 * Security review of issue 14 at the kiosk's config desk (real ConfigDesk,
 * OperatingMode, OfflineCaps and SQLite settings store): what an operator's
 * tool can put on a kiosk's retained `config` directly, bypassing the cloud
 * API's checks (the gateway forwards any JSON object from an operator of
 * the site). A config must never create money (offline caps only lower the
 * site's limits) and a bad one keeps the last good settings.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { OfflineLimits, ReportedState } from "@paylane/protocol";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { ConfigDesk } from "../../device/src/kiosk/config-desk.ts";
import { OperatingMode } from "../../device/src/kiosk/kiosk-mode.ts";
import { OfflineCaps } from "../../device/src/kiosk/offline-caps.ts";
import { SettingsStore } from "../../device/src/settings-store.ts";
import { Sqlite } from "../../device/src/sqlite.ts";
import { testKit } from "../../device/test/kiosk-kit.ts";

interface Ctx {
  dir: string;
  db: Sqlite;
  desk: ConfigDesk;
  mode: OperatingMode;
  caps: OfflineCaps;
  states: ReportedState[];
}

const test = suite<Ctx>("ops config at the kiosk");
const SITE_LIMITS: OfflineLimits = { perPayment: 2000, perCardDaily: 5000, kioskExposure: 20_000 };

test.before.each(async (ctx) => {
  ctx.dir = await mkdtemp(join(tmpdir(), "paylane-ops-config-"));
  const kit = testKit(ctx.dir);
  ctx.db = await Sqlite.open(join(ctx.dir, "journal.db"));
  const store = await SettingsStore.open(ctx.db);
  ctx.mode = await OperatingMode.open(kit, store);
  ctx.caps = new OfflineCaps();
  ctx.states = [];
  ctx.desk = new ConfigDesk(kit, {
    store,
    mode: ctx.mode,
    offlineCaps: ctx.caps,
    telemetry: { setIntervalMs: () => {} },
    uplink: { publishState: (s) => ctx.states.push(s), setCloudLivenessMs: () => {} },
  });
  await ctx.desk.start();
});

test.after.each(async (ctx) => {
  await ctx.db.close();
  await rm(ctx.dir, { recursive: true, force: true });
});

const raw = (json: string) => Buffer.from(json);
const desired = (version: number, settings: Record<string, unknown>) =>
  raw(JSON.stringify({ version, settings, by: "operator" }));

test("offline caps far above the site's limits create no money: the kiosk's offline limits stay the site's", async (ctx) => {
  const state = await ctx.desk.receive(
    desired(1, { offlineCaps: { perCardMinor: Number.MAX_SAFE_INTEGER, perKioskMinor: 10 ** 15 } }),
  );
  assert.equal(state?.rejected, []);
  assert.equal(ctx.caps.lower(SITE_LIMITS), SITE_LIMITS);
  // A lower cap is in force, then values JSON can carry that are not amounts are refused and the cap stays.
  await ctx.desk.receive(desired(2, { offlineCaps: { perCardMinor: 1000 } }));
  for (const [version, json] of [
    [3, '{"perCardMinor":1e400}'], // Infinity after JSON.parse
    [4, '{"perCardMinor":-5}'],
    [5, '{"perCardMinor":10.5}'],
    [6, '{"perCardMinor":"99999999"}'],
    [7, '{"perCardMinor":null}'],
    [8, '{"perCardMinor":1000,"perPaymentMinor":999999}'],
  ] as const) {
    const s = await ctx.desk.receive(raw(`{"version":${version},"settings":{"offlineCaps":${json}}}`));
    assert.equal(
      s?.rejected.map((r) => r.field),
      ["offlineCaps"],
      `offlineCaps ${json} refused`,
    );
    assert.equal(
      ctx.caps.lower(SITE_LIMITS),
      { ...SITE_LIMITS, perCardDaily: 1000 },
      `the last good cap stays (${json})`,
    );
  }
});

test("oversized or hostile values are refused field by field; the last good ones stay in force", async (ctx) => {
  await ctx.desk.receive(desired(1, { screenTexts: { welcome: "Hello" }, idleTimeoutSeconds: 30 }));
  const state = await ctx.desk.receive(
    desired(2, {
      screenTexts: { welcome: "x".repeat(100_000) },
      idleTimeoutSeconds: 1e9,
      telemetryIntervalSeconds: 0,
      cloudLivenessSeconds: 1,
      logLevel: "silent",
      mode: "MAINTENANCE",
    }),
  );
  assert.equal(state?.rejected.map((r) => r.field).sort(), [
    "cloudLivenessSeconds",
    "idleTimeoutSeconds",
    "logLevel",
    "mode",
    "screenTexts",
    "telemetryIntervalSeconds",
  ]);
  assert.is(ctx.mode.screen.texts?.welcome, "Hello");
  assert.is(ctx.mode.screen.idleTimeoutSeconds, 30);
  assert.is(ctx.mode.mode, "in-service");
});

test("a version at the top of the range, then garbage versions, never wedge the desk into an error", async (ctx) => {
  await ctx.desk.receive(desired(3, { idleTimeoutSeconds: 30 }));
  for (const v of ["-1", "0", "1.5", "9007199254740992", '"4"', "null"]) {
    const s = await ctx.desk.receive(raw(`{"version":${v},"settings":{"idleTimeoutSeconds":60}}`));
    assert.is(s?.version, 3, `version ${v}`);
    assert.ok(s?.error, `version ${v} is reported as an error`);
  }
  assert.is(ctx.mode.screen.idleTimeoutSeconds, 30);
});

test.run();
