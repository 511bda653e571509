/**
 * The kiosk's hardware through real ttys: the daemon opens a PN532 and a
 * receipt printer on pty device paths exactly as on a Pi, while the test
 * drives the simulated peers on the other ends. A card placed by the test is
 * checked in, journaled, committed in Postgres and printed; the reader's
 * port is pulled and put back mid-run and the next card still works.
 */
import {
  openPtyPair,
  openSerialPort,
  Pn532Simulator,
  PrinterSimulator,
  type PtyPair,
  type SerialLink,
} from "@paylane/device/hardware";
import { type Telemetry, topics } from "@paylane/protocol";
import type { ReceiptNotice, TapResult } from "@paylane/protocol/kiosk-api";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { loud } from "../support/hooks.ts";
import { record } from "../support/probe.ts";
import { TestSite } from "../support/site.ts";

const it = suite("hardware through ptys");
let site: TestSite;
let readerPty: PtyPair;
let printerPty: PtyPair;
let reader: Pn532Simulator;
let readerLink: SerialLink;
let printer: PrinterSimulator;
let printerLink: SerialLink;

it.before(
  loud("hardware site setup", async () => {
    readerPty = await openPtyPair();
    printerPty = await openPtyPair();
    reader = new Pn532Simulator();
    readerLink = await openSerialPort(readerPty.peerPath);
    reader.start(readerLink);
    printer = new PrinterSimulator();
    printerLink = await openSerialPort(printerPty.peerPath, { baudRate: 38_400 });
    printer.attach(printerLink);

    site = new TestSite({
      db: "pglite",
      presence: "memory",
      broker: "aedes",
      kiosks: ["k1", "k2"],
      hardware: {
        k1: {
          reader: { type: "pn532", path: readerPty.devicePath, pollIntervalMs: 10 },
          printer: { type: "serial", path: printerPty.devicePath, baudRate: 38_400 },
        },
        // k2: the npm start kiosk: PN532 simulator hosted by the daemon, printer simulator, simulated GPIO
        k2: {
          reader: { type: "pn532-simulator", pollIntervalMs: 5 },
          printer: { type: "simulator" },
          gpio: {
            backend: "simulated",
            button: { line: { bcm: 27 }, debounceMs: 20 },
            led: { line: { bcm: 18 } },
            buzzer: { line: { bcm: 22 } },
            relay: { line: { bcm: 17 }, pulseMs: 500 },
          },
        },
      },
    });
    await site.start();
  }),
);

it.after(async () => {
  await site?.stop();
  await readerLink?.close();
  await printerLink?.close();
  await readerPty?.close();
  await printerPty?.close();
});

/** Holds `uid` on the reader until the kiosk answers, then takes it away. */
async function present(uid: string): Promise<TapResult> {
  const k1 = site.kiosk("k1");
  const answered = new Promise<TapResult>((resolve) => k1.events.once("tap-decided", resolve));
  reader.placeCard(uid);
  try {
    return await answered;
  } finally {
    reader.removeCard();
    await reader.nextPoll();
  }
}

it("a card on the reader's tty is checked in, committed once, and its receipt printed", async () => {
  const k1 = site.kiosk("k1");
  await site.signal.until(async () => (await k1.state()).reader.state === "ok", "reader ok");
  const printed = printer.nextReceipt();
  const result = await present("04A2B3C4");
  assert.is(result.outcome, "welcome");
  assert.is(result.message, "Welcome, Ada Lovelace");

  const [entry] = await k1.journal.entriesAfter(0, 10);
  assert.is(entry?.kind, "checkin", "journaled before the answer");
  assert.is(entry?.id, result.id);

  const receipt = await printed;
  const text = receipt.lines.map((l) => l.text).join("\n");
  assert.ok(
    receipt.lines.some((l) => l.text.includes("Test venue") && l.align === "center" && l.bold),
    text,
  );
  assert.match(text, /Ada Lovelace/);
  assert.match(text, /k1/);
  assert.equal(receipt.qr, [result.id], "the QR code carries the transaction id");
  assert.ok(receipt.cut, "the receipt is cut");
  assert.not.match(text, /04A2B3C4/, "a card UID is never printed in full");

  await site.drained("k1");
  assert.is(await site.count("SELECT count(*) AS n FROM checkins WHERE site_id = $1", [site.site]), 1);
});

it("the reader's port is pulled and put back mid-run: the next card still works", async () => {
  const k1 = site.kiosk("k1");
  await readerLink.close();
  await site.signal.until(async () => (await k1.state()).reader.state !== "ok", "reader notices the loss", 10_000);
  readerLink = await openSerialPort(readerPty.peerPath);
  reader.start(readerLink);
  await site.signal.until(async () => (await k1.state()).reader.state === "ok", "reader back", 10_000);
  const result = await present("04B1C2D3");
  assert.is(result.outcome, "welcome");
  assert.match(result.message, /^Welcome, /);
});

it("out of paper: the check-in is not held up and the receipt is offered on screen", async () => {
  const k1 = site.kiosk("k1");
  const ops = await site.opsClient();
  const telemetry = await record<Telemetry>(ops, topics.telemetry(site.address("k1")), site.signal);
  printer.setPaper("out");
  const notices: ReceiptNotice[] = [];
  k1.events.on("receipt-issued", (n) => notices.push(n));
  const result = await present("04C0FFEE");
  assert.is(result.outcome, "welcome", "the answer comes whatever the printer does");
  await site.signal.until(async () => notices.some((n) => n.id === result.id), "receipt notice");
  const receipt = notices.find((n) => n.id === result.id)!;
  assert.ok(!receipt.printed && receipt.reason === "paper-out", JSON.stringify(receipt));
  assert.match(receipt.printed ? "" : receipt.qr, /^data:image\/svg\+xml;base64,/);
  await site.signal.until(async () => telemetry.some((t) => t.printer?.paper === "out"), "ops told: paper out");
  // the paper-out report may have left before this card was read (the printer noticed first): ask for a fresh one
  await k1.sendTelemetryNow();
  const last = await site.signal.until(
    () => telemetry.find((t) => t.printer?.paper === "out" && (t.readerStats?.reads ?? 0) >= 3),
    "telemetry with paper out and the reader's wire health (3 reads)",
  );
  const s = last.readerStats!;
  assert.ok(
    s.timeouts + s.reinits + s.reconnects >= 1,
    `the pulled port shows in the wire stats: ${JSON.stringify(s)}`,
  );
  printer.setPaper("ok");
});

it("GPIO: a welcome beeps and pulses the relay, a refusal sounds the refusal tone", async () => {
  const k2 = site.kiosk("k2");
  const panel = k2.peripherals.simulators.gpio!;
  const off = panel.onChange(site.signal.notify);
  assert.not.ok(panel.relayEnergised(), "the relay starts de-energised");
  const welcome = await k2.tap("04A1B2C3D4E5F6");
  assert.is(welcome.outcome, "welcome");
  assert.ok(panel.relayEnergised(), "a welcome unlocks the door");
  const beep = panel.history("buzzer").filter((c) => c.on).length;
  assert.ok(beep >= 1, "a read beeps");
  await site.signal.until(async () => !panel.relayEnergised(), "the relay drops after its pulse", 5000);

  const refused = await k2.tap("04DEAD00");
  assert.is(refused.outcome, "refused");
  assert.not.ok(panel.relayEnergised(), "a refusal does not unlock");
  const tones = () => panel.history("buzzer").filter((c) => c.on).length - beep;
  await site.signal.until(async () => tones() >= 2 && !panel.buzzerSounding(), "the refusal tone: two long beeps");
  off();
});

it("GPIO: the call-staff button raises one alert for ops, delivered to the cloud once", async () => {
  const k2 = site.kiosk("k2");
  const panel = k2.peripherals.simulators.gpio!;
  const calls: unknown[] = [];
  k2.events.on("staff-called", (c) => {
    calls.push(c);
    site.signal.notify();
  });
  panel.pressButton();
  await site.signal.until(async () => calls.length === 1, "staff call journaled");
  panel.releaseButton();
  const alerts = async () =>
    (
      (await site.operator("GET", `/api/v1/alerts?site=${site.site}`)).body as {
        items: Array<{ device: string; kind: string; detail: { source: string } }>;
      }
    ).items;
  await site.signal.until(async () => (await alerts()).length === 1, "alert in the cloud", 10_000);
  assert.equal(
    (await alerts()).map((a) => [a.kind, a.device, a.detail.source]),
    [["staff-call", "k2", "button"]],
  );
});

it("a booking code typed on screen checks in like a card; a malformed one is refused naming the field", async () => {
  const post = (code: unknown) => site.kioskPost("k2", "/api/code", { code });
  const ok = await post("grace-1906");
  assert.is(ok.status, 200);
  assert.is(((await ok.json()) as TapResult).message, "Welcome, Grace Hopper");
  const bad = await post("no!");
  assert.is(bad.status, 400);
  assert.match(((await bad.json()) as { detail: string }).detail, /^code: expected 4 to 16 letters or digits/);
});

it("self-test exercises every peripheral and says how each did", async () => {
  const k2 = site.kiosk("k2");
  const res = await site.kioskPost("k2", "/api/self-test");
  const report = (await res.json()) as { ok: boolean; peripherals: Record<string, { ok: boolean; detail: string }> };
  assert.ok(report.ok, JSON.stringify(report));
  for (const p of ["reader", "printer", "gpio.relay", "gpio.led", "gpio.buzzer", "gpio.button"]) {
    assert.ok(report.peripherals[p]?.ok, `${p}: ${JSON.stringify(report.peripherals[p])}`);
  }
  assert.not.ok(k2.peripherals.simulators.gpio!.relayEnergised(), "the self-test never opens the door");
});

it.run();
