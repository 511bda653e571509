/**
 * kill -9 between the cloud's approval and the kiosk's journal write: the
 * member was charged (the ledger has it) but the kiosk never recorded it. The
 * payment intent written before the call survives; when the kiosk starts
 * again and sees the cloud, it asks again with the same key, gets the stored
 * approval, and journals it. One charge, one journal entry, nothing lost.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { Journal, PaymentIntents } from "@paylane/device";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { loud } from "../support/hooks.ts";
import { demoCard, TestSite } from "../support/site.ts";
import { within } from "../support/within.ts";

const it = suite("payment-crash");
const CHILD = join(import.meta.dirname, "../support/crash-payment-child.ts");
const ADA = demoCard("m-ada");
let site: TestSite;
let child: ChildProcess | undefined;

it.before(
  loud("payment-crash site setup", async () => {
    // k1 is enrolled, but its first daemon is the child below
    site = new TestSite({ db: "pg", presence: "memory", broker: "aedes", kiosks: [], probes: ["k1"] });
    await site.start();
  }),
);
it.after(async () => {
  child?.kill("SIGKILL");
  await site?.stop();
});

it("killed after the approval, before the journal: the restarted kiosk journals it, charged once", async () => {
  const config = {
    site: site.site,
    device: "k1",
    secret: site.secrets.get("k1"),
    mqttUrl: site.mqttUrl,
    cloudUrl: site.cloud!.url,
    dataDir: join(site.dir, "k1"),
    http: { host: "127.0.0.1", port: 0 },
    reader: { type: "pn532-simulator", pollIntervalMs: 5 },
  };
  child = spawn(process.execPath, ["--import", "tsx", CHILD, JSON.stringify(config), ADA], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout! });
  const charged = new Promise<string>((resolve) =>
    lines.on("line", (l) => {
      if (l.startsWith("charged ")) resolve(l.slice(8));
    }),
  );
  const key = await within(charged, 60_000, "the child to be charged");
  const exited = new Promise((r) => child!.once("exit", r));
  child.kill("SIGKILL");
  await exited;
  child = undefined;

  const ledger = () =>
    site.db.query<{ amount: number; authorization: string }>(
      `SELECT amount, "authorization" FROM ledger_entries WHERE site_id = $1 AND request_key = $2`,
      [site.site, `kiosk:k1:${key}`],
    );
  assert.equal((await ledger()).rows, [{ amount: -250, authorization: "online" }], "the cloud charged it");
  const before = await Journal.open(join(site.dir, "k1", "journal.db"));
  assert.equal(
    (await (await PaymentIntents.open(before)).pending()).map((i) => i.key),
    [key],
    "the intent written before the call survived the kill",
  );
  assert.is((await before.entriesAfter(0, 100)).filter((e) => e.kind === "payment").length, 0);
  await before.close();

  // the kiosk comes back: same data folder, the real daemon
  const k1 = await site.startKiosk("k1");
  const intents = await PaymentIntents.open(k1.journal);
  await site.signal.until(
    async () => (await intents.pending()).length === 0 && (await k1.journal.stats()).backlog === 0,
    "the interrupted payment journaled and acked",
  );
  const payments = (await k1.journal.entriesAfter(0, 100)).filter((e) => e.kind === "payment");
  assert.is(payments.length, 1);
  assert.is(payments[0]!.body.key, key);
  assert.is(payments[0]!.body.authorization, "online");
  assert.equal((await ledger()).rows, [{ amount: -250, authorization: "online" }], "still one charge");
  const { rows } = await site.db.query<{ balance: number }>(
    "SELECT balance FROM wallets WHERE site_id = $1 AND member_id = 'm-ada'",
    [site.site],
  );
  assert.is(rows[0]!.balance, 2250);
});

it.run();
