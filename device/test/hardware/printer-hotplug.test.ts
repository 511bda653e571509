/**
 * Printer hot-plug through the daemon's Peripherals (what telemetry and
 * /healthz read): a serial printer whose pty vanishes and comes back at the
 * same path (a USB-serial adapter pulled and put back), and a USB printer's
 * device file doing the same (usblp's /dev/usb/lp0, played by a pty: a
 * character device read and written through one fd, O_NONBLOCK like usblp,
 * that can disappear). Each survives unplug → replug twice with no restart,
 * and every change reaches Peripherals.health() within 2 s (issue 17).
 *
 * Real timers: the 2 s is the requirement itself, measured on the wall clock
 * while waiting on health-change events (the limit only ever fails the test).
 */
import { rmSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { within } from "../../../test/support/within.ts";
import type { CheckInReceipt } from "../../src/hardware/printer/receipt.ts";
import { PrinterSimulator } from "../../src/hardware/printer/simulator.ts";
import { peripheralsFor } from "./peripherals-rig.ts";
import { PtyPair, PtyPeer } from "./printer-harness.ts";

const test = suite("printer hot-plug");
const dir = await mkdtemp(join(tmpdir(), "paylane-hotplug-"));
process.once("exit", () => rmSync(dir, { recursive: true, force: true }));

const checkin: CheckInReceipt = {
  kind: "checkin",
  venue: "Riverside Pool",
  kiosk: "k-03",
  at: new Date("2024-05-01T09:05:00Z"),
  timeZone: "Europe/Berlin",
  memberName: "Ana Silva",
  transactionId: "ci_0001",
};

for (const type of ["serial", "device-file"] as const) {
  test(`${type} printer: unplug → replug twice, no restart, health follows each change within 2 s, prints after`, async () => {
    const pair = new PtyPair(dir, type);
    await pair.start();
    const peer = new PtyPeer(pair.b);
    await peer.open();
    const sim = new PrinterSimulator();
    sim.attach(peer);
    const rig = peripheralsFor(dir, {
      reader: { type: "pn532", path: join(dir, "no-reader") },
      printer: type === "serial" ? { type, path: pair.a, baudRate: 115_200 } : { type, path: pair.a },
    });
    const { peripherals } = rig;
    /** Resolves with the ms it took once health shows the printer in `state`; fails past 2 s. */
    const reaches = (state: string, what: string): Promise<number> =>
      rig.healthWithin((h) => h.printer?.state === state, `${what}: printer ${state}`);
    try {
      await peripherals.start({
        onCard: async () => ({}) as never,
        onCallStaff: () => {},
        onChange: rig.signal.notify,
        onPaper: rig.signal.notify,
      });
      await reaches("ok", "start");
      for (const round of [1, 2]) {
        // Pulled while idle: nothing is printing, the node goes.
        await peer.close();
        const gone = reaches("disconnected", `unplug ${round}`);
        await pair.stop();
        await gone;
        assert.is(peripherals.health().printer?.paper, "unknown");

        const back = reaches("ok", `replug ${round}`);
        await pair.start();
        await peer.open();
        await back;
        assert.is(peripherals.health().printer?.paper, "ok");
        const printed = sim.nextReceipt();
        assert.equal(await within(peripherals.printer!.print(checkin), 3000, "print after replug"), { printed: true });
        assert.equal((await within(printed, 3000, "the receipt at the printer")).qr, ["ci_0001"]);
      }
    } finally {
      await peripherals.stop();
      await peer.close();
      await pair.stop();
    }
  });
}

test.run();
