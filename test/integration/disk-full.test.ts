/**
 * Disk full: an append that cannot be made durable is never reported as done.
 * The real kiosk daemon runs offline with its journal wrapped so that, while
 * "the disk is full", every write fails with SQLite's SQLITE_FULL (an
 * injected I/O error: the append and the daemon's probe write both fail, as
 * on a full file system). The kiosk refuses and explains, stays up, shows
 * degraded mode, and resumes by itself once a probe write succeeds.
 */
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Journal, KioskDaemon, parseDeviceConfig, Replica, WalletReplica } from "@paylane/device";
import { pino } from "pino";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { kioskPost } from "../support/kiosk-api.ts";
import { Signal } from "../support/signal.ts";

const MEMBERS = [
  { id: "m-ada", name: "Ada Lovelace", cardUid: "04A2B3C4", code: null, status: "active" as const },
  { id: "m-grace", name: "Grace Hopper", cardUid: "04B1C2D3", code: null, status: "active" as const },
];

/**
 * A journal whose database refuses every write with SQLITE_FULL while
 * `full.on` is set, as a full disk does: underneath the journal, so the
 * journal (and the intents in its file) meet the failure as on a real kiosk.
 */
function fillable(journal: Journal, full: { on: boolean; appends: number }): Journal {
  const diskFull = () => Object.assign(new Error("SQLITE_FULL: database or disk is full"), { code: "SQLITE_FULL" });
  const db = journal.db as unknown as Record<string, (sql: string, ...rest: unknown[]) => Promise<unknown>>;
  const isWrite = (sql: string) => /^\s*(INSERT|UPDATE|DELETE|REPLACE|BEGIN)/i.test(sql);
  for (const method of ["get", "getPrepared", "all", "run", "exec"]) {
    const original = db[method]?.bind(db);
    if (!original) throw new Error(`Sqlite has no ${method}(): the fault injection must follow its write paths`);
    db[method] = async (sql, ...rest) => {
      if (full.on && isWrite(sql)) {
        // an entry, or a payment's intent (written to the journal's file before anything is asked)
        if (/^\s*INSERT INTO (journal|payment_intents)\b/i.test(sql)) full.appends++;
        throw diskFull();
      }
      return original(sql, ...rest);
    };
  }
  return journal;
}

/** An offline kiosk (nobody listens on port 9) in a fresh folder, its replica holding MEMBERS, its journal fillable. */
async function offlineKiosk(full: { on: boolean; appends: number }) {
  const root = await mkdtemp(join(tmpdir(), "paylane-disk-full-"));
  const dataDir = join(root, "k1");
  await mkdir(dataDir, { recursive: true });
  const replica = await Replica.open(join(dataDir, "replica.db"));
  await replica.replace({ site: "s1", version: 2, timezone: "UTC", siteName: "Venue", members: MEMBERS }, new Date());
  await replica.close();
  const daemon = new KioskDaemon({
    config: parseDeviceConfig({
      site: "s1",
      device: "k1",
      secret: "disk-full-secret-0123456",
      mqttUrl: "mqtt://127.0.0.1:9",
      cloudUrl: "http://127.0.0.1:9",
      dataDir,
      http: { host: "127.0.0.1", port: 0 },
      reader: { type: "pn532-simulator", pollIntervalMs: 5 },
      storageProbeMs: 100,
    }),
    logger: pino({ level: "silent" }),
    openJournal: async (path) => fillable(await Journal.open(path), full),
  });
  return { root, dataDir, daemon };
}

test("disk full: nothing is reported done, the kiosk explains and stays up, then recovers by itself", async () => {
  const full = { on: false, appends: 0 };
  const signal = new Signal();
  const { root, dataDir, daemon } = await offlineKiosk(full);
  const storage: string[] = [];
  daemon.events.on("storage-changed", (s) => {
    storage.push(s.state);
    signal.notify();
  });
  await daemon.start();
  try {
    full.on = true;
    const refused = await daemon.tap("04A2B3C4");
    assert.is(refused.outcome, "refused", "never 'Welcome' for what is not durable");
    assert.is(refused.message, "This kiosk cannot record check-ins right now. Please ask at the desk.");
    assert.is(refused.seq, undefined);
    assert.is(full.appends, 1, "the append was tried");
    assert.is((await daemon.journal.stats()).lastSeq, 0, "nothing journaled");
    await signal.until(() => storage.includes("failing"), "degraded mode shown", 10_000);
    assert.is((await daemon.state()).storage, "failing", "the screen's state says why");
    const health = (await (await fetch(`http://127.0.0.1:${daemon.port}/healthz`)).json()) as {
      storage: { state: string; lastError?: string };
    };
    assert.equal(health.storage.state, "failing");
    assert.match(health.storage.lastError ?? "", /SQLITE_FULL/);
    const page = await (await fetch(`http://127.0.0.1:${daemon.port}/status`)).text();
    assert.match(page, /<th>Storage<\/th><td>failing: SQLITE_FULL/, "the local status page says why");

    const staff = await kioskPost(daemon.port, dataDir, "/api/call-staff");
    assert.is(staff.status, 500, "a staff call that cannot be journaled is not reported done");
    assert.is(staff.headers.get("content-type"), "application/problem+json");
    assert.match(((await staff.json()) as { detail: string }).detail, /SQLITE_FULL/);

    const again = await daemon.tap("04B1C2D3");
    assert.is(again.outcome, "refused", "still refusing while the disk is full, and still answering");

    full.on = false;
    await signal.until(async () => (await daemon.state()).storage === "ok", "recovered by itself", 10_000);
    const welcome = await daemon.tap("04A2B3C4");
    assert.is(welcome.outcome, "welcome", "the member refused during the outage is welcome now");
    assert.is(welcome.seq, 1, "the first durable entry is seq 1: nothing half-written before it");
    console.log(
      `disk full: ${full.appends} appends refused and never reported done; recovered by a probe write; next seq ${welcome.seq}`,
    );
  } finally {
    await daemon.stop();
    await rm(root, { recursive: true, force: true });
  }
});

test("disk full at the till: a payment is declined before anything is asked or charged, then works again", async () => {
  const full = { on: false, appends: 0 };
  const { root, dataDir, daemon } = await offlineKiosk(full);
  const wallets = await WalletReplica.open(join(dataDir, "wallets.db"));
  await wallets.apply(
    {
      site: "s1",
      full: true,
      version: 10,
      currency: "EUR",
      limits: { perPayment: 2000, perCardDaily: 5000, kioskExposure: 20_000 },
      items: [{ id: "coffee", name: "Coffee", price: 250 }],
      wallets: [{ memberId: "m-ada", balance: 1000, offlineBlocked: false }],
      appliedUpTo: 0,
    },
    null,
    new Date(),
  );
  await wallets.close();

  await daemon.start();
  try {
    full.on = true;
    await daemon.payments.start({ kind: "purchase", itemId: "coffee" });
    const refused = await daemon.tapToPay("04A2B3C4");
    assert.is(refused.outcome, "declined");
    assert.is(refused.reason, "storage");
    assert.is(refused.message, "This kiosk cannot record payments right now. You have not been charged.");
    assert.is(full.appends, 1, "the intent write was tried, and nothing went further");
    assert.equal(await daemon.payments.exposure(), {
      currency: "EUR",
      offlineExposure: 0,
      offlinePayments: 0,
      cap: 20_000,
    });

    full.on = false;
    await daemon.payments.start({ kind: "purchase", itemId: "coffee" });
    const paid = await daemon.tapToPay("04A2B3C4");
    assert.is(paid.outcome, "approved", paid.message);
    assert.is(paid.authorization, "offline");
    assert.is(paid.balance, 750);
  } finally {
    await daemon.stop();
    await rm(root, { recursive: true, force: true });
  }
});

test.run();
