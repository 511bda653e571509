/**
 * A fleet must not come back in lockstep: 20 kiosk uplinks lose their broker
 * at the same instant, and their first reconnect delays (exponential backoff
 * with full jitter, cockatiel) are spread over the backoff window. Then the
 * broker returns on the same port and every kiosk reconnects as the fake
 * clock reaches its own delay.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Gateway } from "@paylane/gateway";
import { type DeviceAddress, hashSecret, Registry, type RegistryFile, type Timers } from "@paylane/protocol";
import { pino } from "pino";
import { Registry as MetricsRegistry } from "prom-client";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { FakeTimers } from "../../test/support/fake-timers.ts";
import { Signal } from "../../test/support/signal.ts";
import { Journal } from "../src/journal.ts";
import { Uplink } from "../src/uplink.ts";

const FLEET = 20;
const RECONNECT_MIN_MS = 500;
const quiet = pino({ level: "silent" });

test("20 kiosks losing the broker at once reconnect at spread-out times, then all come back", async () => {
  const root = await mkdtemp(join(tmpdir(), "paylane-spread-"));
  const devices: DeviceAddress[] = Array.from({ length: FLEET }, (_, i) => ({ site: "s1", device: `k${i + 1}` }));
  const secret = "spread-test-secret-0123";
  const file: RegistryFile = {
    version: 1,
    devices: await Promise.all(devices.map(async (d) => ({ ...d, secretHash: await hashSecret(secret) }))),
    services: [],
  };
  const gatewayAt = (port: number) =>
    new Gateway({ registry: new Registry(file), port, logger: quiet, metrics: new MetricsRegistry() });
  let gateway = gatewayAt(0);
  await gateway.start();
  const port = gateway.port;

  const clock = new FakeTimers();
  const signal = new Signal();
  const firstDelay = new Map<string, number>();
  let recording = false;
  const uplinks: Uplink[] = [];
  const journals: Journal[] = [];
  try {
    for (const d of devices) {
      // Each kiosk's timers: the shared fake clock, noting the first delay it asks for once the broker is gone.
      const timers: Timers = {
        setTimeout: (fn, ms) => {
          if (recording && !firstDelay.has(d.device)) {
            firstDelay.set(d.device, ms);
            signal.notify();
          }
          return clock.setTimeout(fn, ms);
        },
        clearTimeout: (h) => clock.clearTimeout(h),
      };
      const journal = await Journal.open(join(root, `${d.device}.db`));
      journals.push(journal);
      const uplink = new Uplink({
        address: d,
        secret,
        url: `mqtt://127.0.0.1:${port}`,
        journal,
        version: "test",
        bootedAt: clock.now(),
        logger: quiet,
        timers,
        now: clock.now,
        reconnectMinMs: RECONNECT_MIN_MS,
        reconnectMaxMs: 30_000,
        onChange: signal.notify,
      });
      uplinks.push(uplink);
      await uplink.start();
    }
    await signal.until(() => uplinks.every((u) => u.brokerConnected), "the fleet connected", 10_000);

    recording = true;
    await gateway.stop();
    await signal.until(() => firstDelay.size === FLEET, "every kiosk scheduled its reconnect", 10_000);
    const delays = [...firstDelay.values()].sort((a, b) => a - b);
    const spread = delays.at(-1)! - delays[0]!;
    console.log(
      `${FLEET} kiosks, broker gone at once: first reconnect after ${delays[0]}..${delays.at(-1)} ms ` +
        `(spread ${spread} ms over a ${RECONNECT_MIN_MS} ms window, ${new Set(delays).size} distinct delays)`,
    );
    assert.ok(
      delays.every((d) => d >= 0 && d <= RECONNECT_MIN_MS),
      "full jitter: each delay in [0, initial delay]",
    );
    // 20 draws from 501 whole ms share one now and then (3 or more shared in about 1 run in 150, as CI once
    // saw); lockstep is 1 distinct delay, or a handful from a coarse jitter. Half the fleet is neither.
    assert.ok(new Set(delays).size >= FLEET / 2, "not in lockstep: most kiosks have a delay of their own");
    assert.ok(spread >= RECONNECT_MIN_MS / 2, `spread over at least half the window, got ${spread} ms`);

    gateway = gatewayAt(port);
    await gateway.start();
    clock.advance(RECONNECT_MIN_MS);
    await signal.until(() => uplinks.every((u) => u.brokerConnected), "the whole fleet is back", 10_000);
  } finally {
    for (const u of uplinks) await u.stop().catch(() => {});
    for (const j of journals) await j.close().catch(() => {});
    await gateway.stop().catch(() => {});
    await rm(root, { recursive: true, force: true });
  }
});

test.run();
