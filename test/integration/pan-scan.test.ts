/**
 * No card number anywhere. Payments go through every path — online, offline,
 * a kiosk top-up paid on the (simulated) card terminal, a declined top-up, an
 * operator top-up and a refund — while the simulated terminal holds a real
 * test PAN. Then the kiosk's files (journal, replicas), every log line, a
 * pg_dump of the site's schema and the printed receipts are scanned for any
 * Luhn-valid 13–19 digit run: there must be none.
 */
import { execFile } from "node:child_process";
import { readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import pino from "pino";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { loud } from "../support/hooks.ts";
import { findPans, scanFilesForPans } from "../support/pan-scan.ts";
import { demoCard as card, PG_URL, TestSite } from "../support/site.ts";

const it = suite("pan-scan");
const PAN = "4242424242424242";
let site: TestSite;
let logFile = "";

it.before(
  loud("pan-scan site setup", async () => {
    logFile = join(tmpdir(), `paylane-pan-scan-${process.pid}.log`);
    const logger = pino(
      { level: "debug", timestamp: pino.stdTimeFunctions.isoTime },
      pino.destination({ dest: logFile, sync: true }),
    );
    site = new TestSite({
      db: "pg",
      presence: "memory",
      broker: "aedes",
      kiosks: ["k1"],
      probes: [],
      hardware: { k1: { printer: { type: "simulator" }, terminal: { type: "zvt-simulator", timeoutMs: 5000 } } },
      logger,
    });
    await site.start();
  }),
);
it.after(async () => {
  await site?.stop();
  await rm(logFile, { force: true });
});

it("payments through every path leave no card number in journals, logs, the database or receipts", async () => {
  const k1 = site.kiosk("k1");
  const terminal = k1.terminalSimulator!;
  assert.ok(terminal, "the kiosk has a simulated terminal");
  terminal.setCard({ brand: "VISA", pan: PAN });

  // a kiosk top-up: the terminal reads the card, PayLane gets a masked label
  await k1.payments.start({ kind: "topup", amount: 2000 });
  const topup = await k1.tapToPay(card("m-alan"));
  assert.is(topup.outcome, "approved", topup.message);
  // a declined one
  terminal.nextOutcome("decline");
  await k1.payments.start({ kind: "topup", amount: 1000 });
  assert.is((await k1.tapToPay(card("m-alan"))).outcome, "declined");
  // online purchase
  await k1.payments.start({ kind: "purchase", itemId: "coffee" });
  const online = await k1.tapToPay(card("m-alan"));
  assert.is(online.authorization, "online");
  // offline purchase
  await site.stopCloud("kill");
  await site.signal.until(async () => !(await k1.state()).cloud, "cloud away");
  await k1.payments.start({ kind: "purchase", amount: 300 });
  assert.is((await k1.tapToPay(card("m-ada"))).authorization, "offline");
  await site.startCloud();
  await site.drained("k1");
  // operator top-up and refund
  const op = await site.operator(
    "POST",
    `/api/v1/wallets/${site.site}/m-ada/topups`,
    { amount: 500, currency: "EUR", note: "desk top-up" },
    { "idempotency-key": "desk-topup-1" },
  );
  assert.is(op.status, 201);
  const { rows } = await site.db.query<{ id: string }>(
    "SELECT id FROM ledger_entries WHERE site_id = $1 AND request_key = $2",
    [site.site, `kiosk:k1:${online.id}`],
  );
  const refund = await site.operator(
    "POST",
    `/api/v1/payments/${rows[0]!.id}/refunds`,
    { reason: "coffee spilt" },
    { "idempotency-key": "refund-coffee-1" },
  );
  assert.is(refund.status, 201);
  await k1.sendTelemetryNow();

  // the receipt shows what a card label may: brand and last four
  const printed = k1.peripherals.simulators.printer!.receipts;
  const receiptText = JSON.stringify(printed);
  assert.match(receiptText, /VISA •••• 4242/);

  // the scanner finds a PAN when there is one (so an empty result means something)
  assert.equal(findPans(`card ${PAN} and 4242 4242 4242 4242`), [PAN, "4242 4242 4242 4242"]);

  const kioskDir = join(site.dir, "k1");
  const kioskFiles = (await readdir(kioskDir)).map((f) => join(kioskDir, f));
  assert.ok(kioskFiles.some((f) => f.endsWith("journal.db")));
  const found = await scanFilesForPans([...kioskFiles, logFile]);
  assert.equal(found, [], "a PAN in the kiosk's files or the logs");
  assert.ok((await readFile(logFile, "utf8")).includes("payment answered"), "the log holds the payments");

  const { stdout: dump } = await promisify(execFile)("pg_dump", ["--schema", site.schema, "--data-only", PG_URL], {
    maxBuffer: 64 * 1024 * 1024,
  });
  assert.ok(dump.includes("Wallet top-up") || dump.includes("terminal "), "the dump holds the payments");
  assert.equal(findPans(dump), [], "a PAN in the database");
  assert.equal(findPans(receiptText), [], "a PAN on a receipt");
});

it.run();
