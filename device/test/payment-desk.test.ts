/**
 * The kiosk's till, on real journal and replica files, with a fake cloud
 * behind the real CloudClient (an injected fetch), the simulated ZVT
 * terminal for top-ups, and a fake clock: what the member is told, what
 * their balance reads, and what is journaled.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Entry, PaymentRequest, TopupIntentRequest, WalletSync } from "@paylane/protocol";
import { pino } from "pino";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { FakeTimers } from "../../test/support/fake-timers.ts";
import { CloudClient } from "../src/cloud/cloud-client.ts";
import { createTerminal, type TerminalSetup } from "../src/hardware/terminal/factory.ts";
import { Journal } from "../src/journal.ts";
import { PaymentIntents } from "../src/payments/intents.ts";
import { OnlineAuthorizer } from "../src/payments/online-authorizer.ts";
import { PaymentBusyError, PaymentDesk } from "../src/payments/payment-desk.ts";
import { WalletReplica } from "../src/payments/wallet-replica.ts";
import { Replica } from "../src/replica.ts";

const ADA = { id: "m-ada", name: "Ada", cardUid: "04A1B2C3", code: null, status: "active" as const };
const BOB = { id: "m-bob", name: "Bob", cardUid: "04D5E6F7", code: null, status: "revoked" as const };
const IDLE_MS = 30_000;

const WALLETS: WalletSync = {
  site: "s1",
  full: true,
  version: 10,
  currency: "EUR",
  limits: { perPayment: 2000, perCardDaily: 5000, kioskExposure: 20_000 },
  items: [{ id: "coffee", name: "Coffee", price: 250 }],
  wallets: [{ memberId: ADA.id, balance: 1000, offlineBlocked: false }],
  appliedUpTo: 0,
};

type Answer = (body: never) => unknown;

/** The cloud's device API as the kiosk reaches it: each path answers what the test says, and every request is kept. */
class FakeCloud {
  readonly requests: Array<{ path: string; body: Record<string, unknown> }> = [];
  readonly #answers = new Map<string, Answer>();

  on(path: string, answer: Answer): void {
    this.#answers.set(path, answer);
  }

  paths(): string[] {
    return this.requests.map((r) => r.path);
  }

  readonly fetch = (async (input: URL | string, init?: RequestInit) => {
    const path = new URL(String(input)).pathname;
    const body = JSON.parse(String(init?.body ?? "{}")) as Record<string, unknown>;
    this.requests.push({ path, body });
    const answer = this.#answers.get(path);
    if (!answer) return new Response("no route", { status: 404 });
    return Response.json(await answer(body as never));
  }) as typeof fetch;
}

const approved = (r: PaymentRequest, balance: number) => ({
  status: "approved",
  key: r.key,
  paymentId: crypto.randomUUID(),
  memberId: r.memberId,
  amount: r.amount,
  currency: r.currency,
  balance,
  at: r.at,
});

const declined = (r: PaymentRequest, reason: string, balance: number | null) => ({
  status: "declined",
  key: r.key,
  reason,
  message: reason === "voided" ? "Voided." : "Insufficient funds.",
  memberId: r.memberId,
  amount: r.amount,
  currency: r.currency,
  balance,
});

async function kiosk(o: { terminal?: boolean; limits?: Partial<WalletSync["limits"]> } = {}) {
  const dir = await mkdtemp(join(tmpdir(), "paylane-payment-desk-"));
  const timers = new FakeTimers();
  const logger = pino({ level: "silent" });
  const journal = await Journal.open(join(dir, "journal.db"));
  const intents = await PaymentIntents.open(journal);
  const replica = await Replica.open(join(dir, "replica.db"));
  await replica.replace(
    { site: "s1", version: 3, timezone: "UTC", siteName: "Venue", members: [ADA, BOB] },
    timers.now(),
  );
  const wallets = await WalletReplica.open(join(dir, "wallets.db"));
  await wallets.apply({ ...WALLETS, limits: { ...WALLETS.limits, ...o.limits } }, null, timers.now());
  const terminal: TerminalSetup | undefined = o.terminal
    ? await createTerminal({ type: "zvt-simulator" }, { timers, logger })
    : undefined;
  const cloud = new FakeCloud();
  const online = { value: true };
  const told = { results: [] as unknown[], ended: [] as Array<[string, string]>, sessions: 0 };
  const desk = new PaymentDesk({
    journal,
    intents,
    members: replica,
    wallets,
    online: new OnlineAuthorizer(
      new CloudClient({
        address: { site: "s1", device: "k1" },
        secret: "payment-desk-secret-0123",
        cloudUrl: "http://cloud.test",
        timers,
        fetch: cloud.fetch,
      }),
    ),
    isOnline: () => online.value,
    terminal: terminal?.terminal,
    now: timers.now,
    timers,
    logger,
    idleMs: IDLE_MS,
    topupAmounts: [1000, 2000],
    onSession: () => told.sessions++,
    onResult: (result) => told.results.push(result),
    onEnded: (sessionId, reason) => told.ended.push([sessionId, reason]),
  });
  const entries = async (kind: string): Promise<Entry[]> =>
    (await journal.entriesAfter(0, 100)).filter((e) => e.kind === kind);
  return {
    desk,
    cloud,
    online,
    timers,
    told,
    journal,
    intents,
    simulator: terminal?.simulator,
    entries,
    close: async () => {
      await terminal?.close();
      await Promise.all([journal.close(), replica.close(), wallets.close()]);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

test("online: the cloud approves; the member reads its balance, and the payment is journaled under the key asked with", async () => {
  const k = await kiosk();
  try {
    k.cloud.on("/api/v1/payments", (r: PaymentRequest) => approved(r, 750));
    await k.desk.start({ kind: "purchase", itemId: "coffee" });
    const r = await k.desk.onCard(ADA.cardUid);
    assert.is(r.outcome, "approved");
    assert.is(r.message, "Thank you, Ada");
    assert.is(r.balance, 750);
    assert.is(r.authorization, "online");
    assert.equal(k.cloud.paths(), ["/api/v1/payments"]);
    assert.is(k.cloud.requests[0]?.body.key, r.id);
    assert.is(k.cloud.requests[0]?.body.amount, 250);
    const [payment, ...more] = await k.entries("payment");
    assert.equal(more, []);
    assert.equal(payment?.body, {
      key: r.id,
      memberId: ADA.id,
      amount: 250,
      currency: "EUR",
      itemId: "coffee",
      authorization: "online",
      walletVersion: 10,
    });
    assert.equal(await k.intents.pending(), []);
    assert.is(k.desk.awaitingCard, false);
    assert.equal(k.told.results, [r]);
  } finally {
    await k.close();
  }
});

test("online: the cloud declines; the member reads why and the cloud's balance, and nothing is journaled", async () => {
  const k = await kiosk();
  try {
    k.cloud.on("/api/v1/payments", (r: PaymentRequest) => declined(r, "insufficient-funds", 100));
    await k.desk.start({ kind: "purchase", itemId: "coffee" });
    const r = await k.desk.onCard(ADA.cardUid);
    assert.is(r.outcome, "declined");
    assert.is(r.reason, "insufficient-funds");
    assert.is(r.message, "Insufficient funds.");
    assert.is(r.balance, 100);
    assert.equal(await k.entries("payment"), []);
    assert.equal(await k.intents.pending(), [], "the intent is closed, not left for a restart to settle");
  } finally {
    await k.close();
  }
});

test("a revoked or unknown card is declined before anything is asked", async () => {
  const k = await kiosk();
  try {
    await k.desk.start({ kind: "purchase", itemId: "coffee" });
    assert.is((await k.desk.onCard(BOB.cardUid)).reason, "member-revoked");
    await k.desk.start({ kind: "purchase", itemId: "coffee" });
    const unknown = await k.desk.onCard("04FFFFFF");
    assert.is(unknown.reason, "unknown-card");
    assert.is(unknown.message, "Card not recognised");
    assert.equal(k.cloud.requests, []);
    assert.equal(await k.entries("payment"), []);
  } finally {
    await k.close();
  }
});

test("offline within the limits: approved from the replica's balance, journaled as offline, counted as exposure", async () => {
  const k = await kiosk();
  try {
    k.online.value = false;
    await k.desk.start({ kind: "purchase", itemId: "coffee" });
    const first = await k.desk.onCard(ADA.cardUid);
    assert.is(first.outcome, "approved");
    assert.is(first.authorization, "offline");
    assert.is(first.balance, 750);
    await k.desk.start({ kind: "purchase", amount: 300 });
    const second = await k.desk.onCard(ADA.cardUid);
    assert.is(second.balance, 450, "the first offline payment is spent already");
    assert.equal(k.cloud.requests, [], "no online attempt while the cloud is away");
    const journaled = await k.entries("payment");
    assert.equal(
      journaled.map((e) => [e.body.key, e.body.amount, e.body.authorization]),
      [
        [first.id, 250, "offline"],
        [second.id, 300, "offline"],
      ],
    );
    assert.equal(await k.desk.exposure(), { currency: "EUR", offlineExposure: 550, offlinePayments: 2, cap: 20_000 });
  } finally {
    await k.close();
  }
});

test("offline over a limit: declined with the reason, nothing journaled, the balance unchanged", async () => {
  const k = await kiosk();
  try {
    k.online.value = false;
    await k.desk.start({ kind: "purchase", amount: 2500 });
    const overPayment = await k.desk.onCard(ADA.cardUid);
    assert.is(overPayment.outcome, "declined");
    assert.is(overPayment.reason, "offline-limit");
    await k.desk.start({ kind: "purchase", amount: 1500 });
    const overBalance = await k.desk.onCard(ADA.cardUid);
    assert.is(overBalance.outcome, "declined");
    assert.is(overBalance.reason, "insufficient-funds");
    assert.is(overBalance.balance, 1000);
    assert.equal(await k.entries("payment"), []);
    assert.equal(await k.intents.pending(), []);
    assert.equal(await k.desk.exposure(), { currency: "EUR", offlineExposure: 0, offlinePayments: 0, cap: 20_000 });
  } finally {
    await k.close();
  }
});

test("a session left waiting for a card ends by itself after idleMs; a tap after it pays nothing", async () => {
  const k = await kiosk();
  try {
    const session = await k.desk.start({ kind: "purchase", itemId: "coffee" });
    assert.is(session.state, "awaiting-card");
    assert.is(session.expiresAt, new Date(k.timers.now().getTime() + IDLE_MS).toISOString());
    k.timers.advance(IDLE_MS - 1);
    assert.is(k.desk.awaitingCard, true);
    k.timers.advance(1);
    assert.is(k.desk.awaitingCard, false);
    assert.equal(k.told.ended, [[session.id, "timeout"]]);
    try {
      await k.desk.onCard(ADA.cardUid);
      assert.unreachable("a tap after the timeout must not pay");
    } catch (err) {
      assert.instance(err, PaymentBusyError);
    }
    assert.equal(k.cloud.requests, []);
    assert.equal(await k.entries("payment"), []);
  } finally {
    await k.close();
  }
});

test("cancel ends the waiting session (its idle timer with it) and a new one can start", async () => {
  const k = await kiosk();
  try {
    assert.is(k.desk.cancel(), false, "nothing to cancel");
    const session = await k.desk.start({ kind: "purchase", itemId: "coffee" });
    assert.is(k.desk.cancel(), true);
    assert.equal(k.told.ended, [[session.id, "cancelled"]]);
    assert.is(k.timers.pending, 0, "no idle timer outlives the session");
    const again = await k.desk.start({ kind: "purchase", itemId: "coffee" });
    assert.is.not(again.id, session.id);
  } finally {
    await k.close();
  }
});

test("busy: one session at a time, and a payment being authorized cannot be cancelled", async () => {
  const k = await kiosk();
  try {
    let answer!: (value: unknown) => void;
    let asked!: () => void;
    const askedCloud = new Promise<void>((resolve) => (asked = resolve));
    k.cloud.on("/api/v1/payments", () => {
      asked();
      return new Promise((resolve) => (answer = resolve));
    });
    await k.desk.start({ kind: "purchase", itemId: "coffee" });
    await assertRejects(k.desk.start({ kind: "purchase", itemId: "coffee" }), PaymentBusyError, /already in progress/);
    const paying = k.desk.onCard(ADA.cardUid);
    await askedCloud;
    assert.throws(() => k.desk.cancel(), /being authorized/);
    await assertRejects(k.desk.onCard(ADA.cardUid), PaymentBusyError, /no payment is waiting/);
    answer(approved(k.cloud.requests[0]?.body as PaymentRequest, 750));
    assert.is((await paying).outcome, "approved");
    assert.is((await k.entries("payment")).length, 1, "charged once");
  } finally {
    await k.close();
  }
});

test("resolvePending after a crash: an approved key is journaled once, an unanswered one is voided, a top-up abandoned", async () => {
  const k = await kiosk();
  try {
    const at = k.timers.now().toISOString();
    const purchase = (amount: number): PaymentRequest => ({
      key: crypto.randomUUID(),
      memberId: ADA.id,
      amount,
      currency: "EUR",
      itemId: null,
      at,
    });
    const charged = purchase(250);
    const unanswered = purchase(400);
    // what a kiosk killed between asking and journaling leaves behind
    for (const r of [charged, unanswered]) {
      await k.intents.record({
        key: r.key,
        kind: "purchase",
        memberId: ADA.id,
        amount: r.amount,
        currency: "EUR",
        request: r,
        createdAt: at,
      });
    }
    const topupKey = crypto.randomUUID();
    await k.intents.record({
      key: topupKey,
      kind: "topup",
      memberId: ADA.id,
      amount: 1000,
      currency: "EUR",
      request: {},
      createdAt: at,
    });
    k.cloud.on("/api/v1/payments/void", (r: PaymentRequest) =>
      r.key === charged.key ? approved(r, 750) : declined(r, "voided", 750),
    );

    k.online.value = false;
    await k.desk.resolvePending();
    assert.equal(k.cloud.requests, [], "nothing is settled while the cloud is away");
    assert.is((await k.intents.pending()).length, 3);

    k.online.value = true;
    await k.desk.resolvePending();
    assert.equal(
      k.cloud.paths().sort(),
      ["/api/v1/payments/void", "/api/v1/payments/void"],
      "only purchases are settled",
    );
    const journaled = await k.entries("payment");
    assert.equal(
      journaled.map((e) => [e.body.key, e.body.authorization]),
      [[charged.key, "online"]],
    );
    assert.equal(await k.intents.pending(), []);
    await k.desk.resolvePending();
    assert.is((await k.entries("payment")).length, 1, "settled once");
  } finally {
    await k.close();
  }
});

test("top-up: no card is charged before the cloud issued its intent; with it, the wallet is topped up and journaled", async () => {
  const k = await kiosk({ terminal: true });
  try {
    const simulator = k.simulator!;
    k.cloud.on("/api/v1/topups/intents", (r: TopupIntentRequest) => ({
      status: "refused",
      key: r.key,
      reason: "member-revoked",
      message: "This member cannot top up.",
    }));
    await k.desk.start({ kind: "topup", amount: 1000 });
    const refused = await k.desk.onCard(ADA.cardUid);
    assert.is(refused.outcome, "declined");
    assert.is(refused.message, "This member cannot top up.");
    assert.is(simulator.stats.charges, 0, "no card charged without an intent");

    k.online.value = false;
    await k.desk.start({ kind: "topup", amount: 1000 });
    const offline = await k.desk.onCard(ADA.cardUid);
    assert.is(offline.reason, "offline", "no offline top-ups on this site (topupDaily unset)");
    assert.is(simulator.stats.charges, 0);

    k.online.value = true;
    k.cloud.on("/api/v1/topups/intents", (r: TopupIntentRequest) => ({ status: "open", ...r }));
    await k.desk.start({ kind: "topup", amount: 1000 });
    const topped = await k.desk.onCard(ADA.cardUid);
    assert.is(topped.outcome, "approved", topped.message);
    assert.is(topped.message, "Wallet topped up, Ada");
    assert.is(topped.balance, 2000);
    assert.is(simulator.stats.charges, 1);
    const [topup, ...more] = await k.entries("topup");
    assert.equal(more, []);
    assert.is(topup?.body.key, topped.id);
    assert.is(topup?.body.amount, 1000);
    const intentAsked = k.cloud.requests.filter((q) => q.path === "/api/v1/topups/intents").at(-1);
    assert.is(intentAsked?.body.key, topped.id, "the terminal's charge and the journal carry the intent's key");
    assert.equal(await k.intents.pending(), []);
  } finally {
    await k.close();
  }
});

async function assertRejects(p: Promise<unknown>, type: new (...a: never[]) => Error, message: RegExp) {
  try {
    await p;
  } catch (err) {
    assert.instance(err, type);
    assert.match((err as Error).message, message);
    return;
  }
  assert.unreachable(`expected a ${type.name}`);
}

test.run();
