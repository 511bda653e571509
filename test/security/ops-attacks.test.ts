/**
 * Attacks on the kiosk's config desk through a desired configuration (found
 * by the security review of issue 14): a setting named like an
 * Object.prototype member, and a config built so the kiosk's report of it
 * would not fit in a packet.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encode, type ReportedState, ReportedStateSchema } from "@paylane/protocol";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { ConfigDesk } from "../../device/src/kiosk/config-desk.ts";
import { OperatingMode } from "../../device/src/kiosk/kiosk-mode.ts";
import { OfflineCaps } from "../../device/src/kiosk/offline-caps.ts";
import { SettingsStore } from "../../device/src/settings-store.ts";
import { Sqlite } from "../../device/src/sqlite.ts";
import { testKit } from "../../device/test/kiosk-kit.ts";
import { MAX_OPERATOR_PAYLOAD_BYTES } from "../../gateway/src/gateway.ts";
import { DEFAULT_LIMITS } from "../../gateway/src/limits.ts";

// ATTACK: a setting named like an Object.prototype member ("constructor",
// "toString", "__proto__", "hasOwnProperty") makes checkSettings throw
// (CONFIG_SETTINGS[field] is a plain object's inherited member, not a zod
// schema): the kiosk reports nothing (no state, no error), the fields next
// to it are not applied, and the cloud's PUT answers 500 instead of 400.
test("a setting named like an Object.prototype member is refused with its reason; the rest applies", async () => {
  const dir = await mkdtemp(join(tmpdir(), "paylane-ops-attack-"));
  const db = await Sqlite.open(join(dir, "journal.db"));
  try {
    const kit = testKit(dir);
    const store = await SettingsStore.open(db);
    const mode = await OperatingMode.open(kit, store);
    const states: ReportedState[] = [];
    const desk = new ConfigDesk(kit, {
      store,
      mode,
      offlineCaps: new OfflineCaps(),
      telemetry: { setIntervalMs: () => {} },
      uplink: { publishState: (s) => states.push(s), setCloudLivenessMs: () => {} },
    });
    await desk.start();
    const outcome = await desk
      .receive(Buffer.from('{"version":2,"settings":{"constructor":1,"__proto__":{"x":1},"mode":"maintenance"}}'))
      .then(
        (state) => ({ threw: null, rejected: state?.rejected.map((r) => r.field).sort() ?? null }),
        (err: Error) => ({ threw: err.message, rejected: null }),
      );
    assert.equal(
      { ...outcome, published: states.length, mode: mode.mode },
      // `__proto__` never reaches the check: decoding the settings record drops it (no prototype is set).
      { threw: null, rejected: ["constructor"], published: 1, mode: "maintenance" },
    );
    assert.is(({} as Record<string, unknown>).x, undefined, "no prototype was polluted");
  } finally {
    await db.close();
    await rm(dir, { recursive: true, force: true });
  }
});

// Amplification. A desired config that fits in one MQTT packet
// (~209 KB: 20 000 unknown settings) makes the kiosk report a `state` of
// ~3.2 MB (each rejected field carries "unknown setting; known: …"), far
// above the gateway's 256 KiB maximum packet: the gateway closes the
// kiosk's connection instead of taking its state.
test("the state a kiosk reports for any config that fits in a packet fits in a packet too", async () => {
  // As many unknown settings as the gateway lets an operator publish (MAX_OPERATOR_PAYLOAD_BYTES).
  const settings: Record<string, number> = {};
  for (
    let i = 0;
    JSON.stringify({ version: 1, settings, by: "operator" }).length < MAX_OPERATOR_PAYLOAD_BYTES - 16;
    i++
  )
    settings[`x${i.toString(36)}`] = 1;
  const config = Buffer.from(JSON.stringify({ version: 1, settings, by: "operator" }));
  assert.ok(config.length <= MAX_OPERATOR_PAYLOAD_BYTES, "the config is one the gateway forwards");
  const dir = await mkdtemp(join(tmpdir(), "paylane-ops-attack-"));
  const db = await Sqlite.open(join(dir, "journal.db"));
  try {
    const kit = testKit(dir);
    const store = await SettingsStore.open(db);
    const states: ReportedState[] = [];
    const desk = new ConfigDesk(kit, {
      store,
      mode: await OperatingMode.open(kit, store),
      offlineCaps: new OfflineCaps(),
      telemetry: { setIntervalMs: () => {} },
      uplink: { publishState: (s) => states.push(s), setCloudLivenessMs: () => {} },
    });
    await desk.start();
    await desk.receive(config);
    const stateBytes = encode(ReportedStateSchema, states[0]!).length;
    assert.ok(
      stateBytes < DEFAULT_LIMITS.maxPacketBytes,
      `a ${config.length}-byte config is answered by a ${stateBytes}-byte state (gateway max ${DEFAULT_LIMITS.maxPacketBytes})`,
    );
  } finally {
    await db.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test.run();
