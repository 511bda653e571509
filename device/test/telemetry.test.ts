/**
 * The kiosk's telemetry as ops receive it: the card terminal's state (hot-plug)
 * is there, valid against the protocol's schema, and never its link (a serial
 * path or a host is the installer's business, not every viewer's).
 */
import { TelemetrySchema } from "@paylane/protocol";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { Pn532Counters } from "../src/hardware/pn532/pn532-reader.ts";
import type { PeripheralsHealth } from "../src/peripherals.ts";
import { kioskTelemetry, type TelemetryFacts } from "../src/telemetry.ts";

const test = suite("kiosk telemetry");

const counters: Pn532Counters = {
  discarded: { garbage: 0, lcs: 0, dcs: 0, length: 0, truncated: 0, overflow: 0 },
  nacksSent: 0,
  timeouts: 0,
  errorFrames: 0,
  reinits: 0,
  reconnects: 0,
  reads: 0,
};
const peripherals = {
  reader: { driver: "pn532", simulated: false, state: "ok", counters },
  printer: null,
  gpio: null,
} as unknown as PeripheralsHealth;

function facts(extra: Partial<TelemetryFacts>): TelemetryFacts {
  const now = new Date("2026-12-05T10:00:00Z");
  return {
    now,
    bootedAt: new Date(now.getTime() - 60_000),
    journal: { lastSeq: 3, ackedUpTo: 3, backlog: 0, conflicts: 0, oldestUnackedAt: null },
    replica: { version: 1, timezone: "Europe/Berlin", siteName: "Pool", syncedAt: null, members: 0 } as never,
    peripherals,
    storage: "ok",
    payments: undefined,
    ...extra,
  };
}

test("a terminal that went away is reported disconnected with its relink count, and not where it is", () => {
  const t = kioskTelemetry(
    facts({ terminal: { type: "zvt-serial", state: "disconnected", link: "/dev/ttyUSB0", reconnects: 4 } }),
  );
  assert.equal(t.terminal, { type: "zvt-serial", state: "disconnected", reconnects: 4 });
  assert.ok(!JSON.stringify(t).includes("ttyUSB0"), "the serial path stays on the kiosk");
  assert.ok(TelemetrySchema.safeParse(t).success, "ops' schema takes it");
});

test("a kiosk without a card terminal says so (null), and one whose terminal was not read says nothing", () => {
  assert.is(kioskTelemetry(facts({ terminal: null })).terminal, null);
  assert.not.ok("terminal" in kioskTelemetry(facts({})));
  assert.ok(TelemetrySchema.safeParse(kioskTelemetry(facts({ terminal: null }))).success);
});

test.run();
