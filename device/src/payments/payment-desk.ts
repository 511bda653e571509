/**
 * The kiosk's till: one payment session at a time, started from the screen
 * (an item or an amount, or a top-up), paid by the next member card tapped.
 *
 *   start ──▶ awaiting-card ──tap──▶ authorizing ──▶ approved / declined
 *                 │   (top-up) └──tap──▶ awaiting-terminal ──▶ approved / declined
 *                 └── cancel / idle timeout: ended, nothing charged
 *
 * A purchase's key is written to the journal (an intent) before the first
 * attempt to authorize it, and every attempt reuses it: online retries, the
 * offline fallback, the journal entry that records it, and a restart that
 * finds it unresolved. The cloud's ledger takes each key once, so no path
 * can charge twice. A purchase is told "approved" only once it is durable:
 * in the cloud's ledger (online) or in the journal (offline).
 */
import { randomUUID } from "node:crypto";
import {
  type Exposure,
  formatMoney,
  type OfflineLimits,
  type PaymentBody,
  type PaymentRequest,
  type ReplicaMember,
  type TerminalSettlementBody,
  type TopupBody,
} from "@paylane/protocol";
import type { Catalog, PaymentResult, PaymentSession } from "@paylane/protocol/kiosk-api";
import type { Logger } from "pino";
import { localDay } from "../checkin-desk.ts";
import type { PaymentTerminal, TerminalOutcome } from "../hardware/terminal/terminal.ts";
import type { Journal } from "../journal.ts";
import type { Replica } from "../replica.ts";
import type { Timers } from "../timers.ts";
import type { PaymentIntents } from "./intents.ts";
import { JournalMoney } from "./journal-money.ts";
import { decideOffline } from "./offline-policy.ts";
import type { OnlineAuthorizer } from "./online-authorizer.ts";
import type { WalletReplica } from "./wallet-replica.ts";

export interface PaymentDeskOptions {
  /** Where payments are recorded; it tells its listeners of every entry and every failed write itself. */
  journal: Journal;
  /** In the journal's file: each payment's key, written before anything is asked. */
  intents: PaymentIntents;
  members: Replica;
  wallets: WalletReplica;
  online: Pick<OnlineAuthorizer, "authorize" | "topupIntent" | "settle">;
  /** Whether the kiosk sees the cloud right now (MQTT and the cloud's STATE); when not, no online attempt is made. */
  isOnline: () => boolean;
  terminal?: PaymentTerminal;
  now: () => Date;
  timers: Timers;
  logger: Logger;
  /** A session left waiting for a card this long ends by itself. */
  idleMs: number;
  topupAmounts: number[];
  onSession: (session: PaymentSession) => void;
  onResult: (result: PaymentResult, receipt: ReceiptFacts | undefined) => void;
  onEnded: (sessionId: string, reason: "cancelled" | "timeout") => void;
  /** Lowers the site's offline limits at this kiosk (ops' `offlineCaps`); never raises them. */
  lowerOfflineLimits?: (limits: OfflineLimits) => OfflineLimits;
}

/** What a receipt needs beyond the result. */
export interface ReceiptFacts {
  memberName: string;
  cardUid: string;
  item: string;
}

/** A request the kiosk cannot start (HTTP 400 at the local API). */
export class PaymentInputError extends Error {
  override name = "PaymentInputError";
}

/** A session that cannot be started or cancelled right now (HTTP 409 at the local API). */
export class PaymentBusyError extends Error {
  override name = "PaymentBusyError";
}

export type StartRequest = { kind: "purchase"; itemId?: string; amount?: number } | { kind: "topup"; amount: number };

const STORAGE_MESSAGE = "This kiosk cannot record payments right now. You have not been charged.";

interface Session extends PaymentSession {
  itemId: string | null;
  timer: unknown;
  abort?: AbortController;
}

export class PaymentDesk {
  readonly #o: PaymentDeskOptions;
  #session: Session | undefined;
  /** Keys being authorized right now: a resolvePending pass must not journal them a second time. */
  readonly #inFlight = new Set<string>();
  #resolving: Promise<void> | undefined;
  /** The terminal's end-of-day in progress: no session starts meanwhile. */
  #settling: Promise<TerminalSettlementBody> | undefined;

  readonly #money: JournalMoney;

  constructor(o: PaymentDeskOptions) {
    this.#o = o;
    this.#money = new JournalMoney(o.journal);
  }

  /** True while a session waits for a card: the next tap pays instead of checking in. */
  get awaitingCard(): boolean {
    return this.#session?.state === "awaiting-card";
  }

  async catalog(): Promise<Catalog> {
    const info = await this.#o.wallets.info();
    return {
      ready: info.version !== null && info.currency !== null,
      currency: info.currency ?? "EUR",
      items: await this.#o.wallets.items(),
      topups: this.#o.terminal !== undefined,
      topupAmounts: this.#o.topupAmounts,
      maxAmount: maxFreeAmount,
    };
  }

  async start(req: StartRequest): Promise<PaymentSession> {
    if (this.#session) throw new PaymentBusyError("a payment is already in progress at this kiosk");
    if (this.#settling) throw new PaymentBusyError("the card terminal is closing its day; payments start once it has");
    const info = await this.#o.wallets.info();
    if (info.version === null || !info.currency) {
      throw new PaymentBusyError("this kiosk has not loaded its prices yet; payments start once it has");
    }
    let amount: number;
    let itemName: string | undefined;
    let itemId: string | null = null;
    if (req.kind === "topup") {
      if (!this.#o.terminal) throw new PaymentInputError("this kiosk has no card terminal for top-ups");
      amount = checkedAmount(req.amount);
    } else if (req.itemId !== undefined) {
      const item = await this.#o.wallets.item(req.itemId);
      if (!item) throw new PaymentInputError(`itemId: no item ${JSON.stringify(req.itemId)} on this site's price list`);
      ({ price: amount, name: itemName, id: itemId } = item);
    } else {
      amount = checkedAmount(req.amount);
    }
    // re-checked after the awaits: two quick starts must not both win
    if (this.#session) throw new PaymentBusyError("a payment is already in progress at this kiosk");
    const now = this.#o.now();
    const session: Session = {
      id: randomUUID(),
      kind: req.kind,
      amount,
      currency: info.currency,
      ...(itemName ? { itemName } : {}),
      itemId,
      state: "awaiting-card",
      expiresAt: new Date(now.getTime() + this.#o.idleMs).toISOString(),
      timer: undefined,
    };
    session.timer = this.#o.timers.setTimeout(() => this.#end(session, "timeout"), this.#o.idleMs);
    this.#session = session;
    this.#o.onSession(publicSession(session));
    return publicSession(session);
  }

  /** Cancels the session; a purchase being authorized cannot be (its outcome is about to be known). */
  cancel(): boolean {
    const s = this.#session;
    if (!s) return false;
    if (s.state === "authorizing")
      throw new PaymentBusyError("the payment is being authorized and cannot be cancelled");
    if (s.state === "awaiting-terminal") {
      // the terminal answers `cancelled`, and the top-up flow ends the session
      s.abort?.abort();
      return true;
    }
    this.#end(s, "cancelled");
    return true;
  }

  /** A member card tapped while a session waits for one: pays or tops up. */
  async onCard(uid: string): Promise<PaymentResult> {
    const s = this.#session;
    if (s?.state !== "awaiting-card") throw new PaymentBusyError("no payment is waiting for a card");
    this.#o.timers.clearTimeout(s.timer);
    s.state = s.kind === "topup" ? "awaiting-terminal" : "authorizing";
    // a top-up can be cancelled until the terminal answers: from now, not only once the charge started
    if (s.kind === "topup") s.abort = new AbortController();
    this.#o.onSession(publicSession(s));
    let result: PaymentResult;
    let receipt: ReceiptFacts | undefined;
    try {
      const member = await this.#o.members.byCard(uid);
      if (member?.status !== "active") {
        result = this.#declined(
          s,
          member ? "member-revoked" : "unknown-card",
          member ? "This card is blocked" : "Card not recognised",
          member,
        );
      } else {
        receipt = {
          memberName: member.name,
          cardUid: uid,
          item: s.itemName ?? (s.kind === "topup" ? "Wallet top-up" : "Payment"),
        };
        result = s.kind === "topup" ? await this.#topup(s, member, receipt) : await this.#purchase(s, member);
      }
    } catch (err) {
      this.#o.logger.error({ err: (err as Error).message, session: s.id }, "payment failed unexpectedly");
      result = this.#declined(s, "error", "This payment could not be completed. You have not been charged.");
    }
    this.#session = undefined;
    this.#o.onResult(result, result.outcome === "approved" ? receipt : undefined);
    return result;
  }

  /**
   * Purchases whose outcome a crash left unknown: settled online with their
   * key (the cloud answers what it decided, or voids the key so that it is
   * never charged: the member left without an answer), and journaled when
   * the cloud had approved. Top-ups caught mid-charge are left to the
   * terminal's own reversal and marked abandoned.
   */
  resolvePending(): Promise<void> {
    this.#resolving ??= this.#resolvePending().finally(() => {
      this.#resolving = undefined;
    });
    return this.#resolving;
  }

  async #resolvePending(): Promise<void> {
    if (!this.#o.isOnline()) return;
    for (const intent of await this.#o.intents.pending()) {
      if (this.#inFlight.has(intent.key)) continue;
      if (intent.kind === "topup") {
        this.#o.logger.warn({ key: intent.key }, "a top-up was interrupted mid-charge; the terminal reverses it");
        await this.#o.intents.close(intent.key, "abandoned");
        continue;
      }
      const request = intent.request as PaymentRequest;
      const outcome = await this.#o.online.settle(request);
      if (outcome.kind === "unreachable") return;
      if (outcome.kind === "answered" && outcome.response.status === "approved") {
        await this.#journalPurchase(request, "online");
        this.#o.logger.warn({ key: intent.key }, "an interrupted payment was approved by the cloud; journaled now");
      } else {
        await this.#o.intents.close(intent.key, "declined");
      }
    }
  }

  /** What this kiosk approved offline and the cloud has not reconciled yet (telemetry). */
  async exposure(): Promise<Exposure | undefined> {
    const info = await this.#o.wallets.info();
    if (!info.limits || !info.currency) return undefined;
    const e = await this.#money.offlineExposure();
    return {
      currency: info.currency,
      offlineExposure: e.amount,
      offlinePayments: e.payments,
      cap: this.#limits(info.limits).kioskExposure,
    };
  }

  async #purchase(s: Session, member: ReplicaMember): Promise<PaymentResult> {
    const at = this.#o.now();
    const request: PaymentRequest = {
      key: randomUUID(),
      memberId: member.id,
      amount: s.amount,
      currency: s.currency,
      itemId: s.itemId,
      at: at.toISOString(),
    };
    this.#inFlight.add(request.key);
    try {
      return await this.#authorize(s, member, request, at);
    } finally {
      this.#inFlight.delete(request.key);
    }
  }

  async #authorize(s: Session, member: ReplicaMember, request: PaymentRequest, at: Date): Promise<PaymentResult> {
    try {
      await this.#o.intents.record({
        key: request.key,
        kind: "purchase",
        memberId: member.id,
        amount: s.amount,
        currency: s.currency,
        request,
        createdAt: at.toISOString(),
      });
    } catch {
      // the journal told its listeners (storage is failing); nothing was asked or charged
      return this.#declined(s, "storage", STORAGE_MESSAGE, member);
    }
    if (this.#o.isOnline()) {
      const outcome = await this.#o.online.authorize(request);
      if (outcome.kind === "answered") {
        const r = outcome.response;
        if (r.status === "declined") {
          await this.#o.intents.close(request.key, "declined");
          return this.#declined(s, r.reason, r.message, member, r.balance ?? undefined);
        }
        // The ledger has it: approved, whatever happens to the journal now (a pending intent is journaled later).
        await this.#journalPurchase(request, "online").catch((err: Error) => {
          this.#o.logger.error({ err: err.message, key: request.key }, "approved online but not journaled yet");
        });
        return this.#approved(s, member, request.key, r.balance, "online");
      }
      if (outcome.kind === "refused") {
        await this.#o.intents.close(request.key, "declined");
        this.#o.logger.warn({ status: outcome.status, detail: outcome.detail }, "the cloud refused a payment request");
        return this.#declined(s, "refused", "This payment could not be processed. You have not been charged.", member);
      }
      this.#o.logger.warn({ reason: outcome.reason }, "online authorization unavailable: deciding offline");
    }
    return this.#offline(s, member, request);
  }

  async #offline(s: Session, member: ReplicaMember, request: PaymentRequest): Promise<PaymentResult> {
    const day = await this.#day(new Date(request.at));
    const { info, wallet, money, available } = await this.#balance(member.id, day, request.key);
    const decision = decideOffline({
      amount: s.amount,
      currency: s.currency,
      limits: info.limits && this.#limits(info.limits),
      available,
      offlineBlocked: wallet.offlineBlocked,
      offlineSpentToday: money.offlineSpentToday,
      kioskExposure: (await this.#money.offlineExposure()).amount,
    });
    if (!decision.approved) {
      await this.#o.intents.close(request.key, "declined");
      return this.#declined(s, decision.reason, decision.message, member, available);
    }
    try {
      await this.#journalPurchase(request, "offline", { walletVersion: info.version ?? 0, day });
    } catch {
      // The journal cannot write: an intent left pending is voided with the cloud by resolvePending.
      await this.#o.intents.close(request.key, "declined").catch(() => {});
      return this.#declined(s, "storage", STORAGE_MESSAGE, member);
    }
    return this.#approved(s, member, request.key, available - s.amount, "offline");
  }

  /** `known`: what the offline decision already read, so it is not read again. */
  async #journalPurchase(
    r: PaymentRequest,
    authorization: "online" | "offline",
    known?: { walletVersion: number; day: string },
  ): Promise<void> {
    const at = new Date(r.at);
    const body: PaymentBody = {
      key: r.key,
      memberId: r.memberId,
      amount: r.amount,
      currency: r.currency,
      itemId: r.itemId,
      authorization,
      walletVersion: known?.walletVersion ?? (await this.#o.wallets.info()).version ?? 0,
    };
    await this.#o.journal.append("payment", body, at, {
      memberId: r.memberId,
      day: known?.day ?? (await this.#day(at)),
    });
  }

  /** The site-local day of `at`, for the journal's per-member-per-day index. */
  async #day(at: Date): Promise<string> {
    return localDay(at, (await this.#o.members.info()).timezone);
  }

  /**
   * The member's balance as this kiosk knows it: the replica's, less what it
   * journaled since the replica was read and what is still pending (`day`
   * also sums the offline spending of that day). The replica's meta and the
   * wallet come from one sync; the journal is read after them, so a sync
   * landing meanwhile can only count a payment twice, never miss one.
   */
  async #balance(memberId: string, day: string, exceptKey?: string) {
    const { wallets } = this.#o;
    const [info, wallet] = await wallets.snapshot(() => Promise.all([wallets.info(), wallets.wallet(memberId)]));
    const money = await this.#money.member(memberId, info.appliedUpTo, day, exceptKey);
    return { info, wallet, money, available: wallet.balance - money.unsyncedSpend - money.pendingSpend };
  }

  async #topup(s: Session, member: ReplicaMember, receipt: ReceiptFacts): Promise<PaymentResult> {
    const terminal = this.#o.terminal!;
    const key = randomUUID();
    const at = this.#o.now();
    try {
      await this.#o.intents.record({
        key,
        kind: "topup",
        memberId: member.id,
        amount: s.amount,
        currency: s.currency,
        request: { amount: s.amount, currency: s.currency },
        createdAt: at.toISOString(),
      });
    } catch {
      // the journal told its listeners (storage is failing); nothing was asked or charged
      return this.#declined(s, "storage", STORAGE_MESSAGE, member);
    }
    // No card is charged before the cloud has issued the intent this top-up will credit against,
    // unless the cloud cannot be asked and the site's offline top-up cap leaves room for it.
    const day = await this.#day(at);
    let refusal = await this.#topupIntent(key, s, member);
    let authorization: "online" | "offline" = "online";
    if (refusal?.reason === "offline") {
      const room = await this.#offlineTopupRoom(day);
      if (room !== null && s.amount <= room) {
        this.#o.logger.warn({ key, amount: s.amount }, "top-up taken offline: pending until the terminal's settlement");
        refusal = null;
        authorization = "offline";
      } else if (room !== null) {
        refusal = {
          reason: "offline-limit",
          message:
            room > 0
              ? `This kiosk is offline; top-ups above ${formatMoney(room, s.currency)} are not possible right now. Your card has not been charged.`
              : "This kiosk is offline and cannot take more top-ups today. Your card has not been charged.",
        };
      }
    }
    if (refusal) {
      await this.#o.intents.close(key, "declined");
      return this.#declined(s, refusal.reason, refusal.message, member);
    }
    const signal = s.abort?.signal;
    const outcome: TerminalOutcome = signal?.aborted
      ? { status: "cancelled" }
      : await terminal.charge({ amount: s.amount, currency: s.currency, reference: key }, { signal });
    if (outcome.status !== "approved") {
      await this.#o.intents.close(
        key,
        outcome.status === "declined" || outcome.status === "cancelled" ? "declined" : "abandoned",
      );
      const { reason, message } = terminalDecline(outcome);
      return this.#declined(s, reason, message, member);
    }
    receipt.item = `Wallet top-up (${outcome.cardLabel})`;
    const body: TopupBody = {
      key,
      memberId: member.id,
      amount: s.amount,
      currency: s.currency,
      terminal: { reference: outcome.reference, approvalCode: outcome.approvalCode, cardLabel: outcome.cardLabel },
      ...(authorization === "offline" ? { authorization } : {}),
    };
    try {
      await this.#o.journal.append("topup", body, at, { memberId: member.id, day });
    } catch {
      // The card was charged and this kiosk cannot record it: staff must, with the terminal's reference.
      this.#o.logger.error({ key, terminalReference: outcome.reference }, "top-up charged but not journaled");
      return this.#declined(
        s,
        "storage",
        `Your card was charged but this kiosk cannot record the top-up. Please ask at the desk (reference ${outcome.reference}).`,
        member,
      );
    }
    // An offline top-up is not in `available`: the cloud credits it only once the terminal's settlement matches.
    const { available } = await this.#balance(member.id, "");
    if (authorization === "offline") {
      receipt.item = `Wallet top-up (${outcome.cardLabel}), pending`;
      return {
        ...this.#approved(s, member, key, available, "offline"),
        pending: true,
        message: `Card charged ${formatMoney(s.amount, s.currency)}, ${member.name}. The top-up is pending: it will show in your balance once the card terminal's day is settled.`,
      };
    }
    return this.#approved(s, member, key, available, undefined);
  }

  /** What the site's offline top-up cap leaves for this kiosk on `day`; null when offline top-ups are off (cap 0 or unset). */
  async #offlineTopupRoom(day: string): Promise<number | null> {
    const cap = (await this.#o.wallets.info()).limits?.topupDaily ?? 0;
    if (cap <= 0) return null;
    return Math.max(0, cap - (await this.#money.offlineTopupsOn(day)));
  }

  /**
   * The terminal's end-of-day: it closes its batch and reports the totals,
   * which are journaled as a `terminal-settlement` with the references of
   * the top-ups this kiosk journaled since its last one. The cloud credits
   * the pending offline top-ups only when the two agree. Between payments
   * only; rejects with an Error naming why when the terminal cannot.
   */
  settleTerminal(): Promise<TerminalSettlementBody> {
    if (this.#settling) return this.#settling;
    const terminal = this.#o.terminal;
    if (!terminal?.endOfDay) {
      return Promise.reject(new PaymentInputError("this kiosk's card terminal does not offer an end-of-day"));
    }
    if (this.#session) {
      return Promise.reject(
        new PaymentBusyError("a payment is in progress; the terminal's day closes between payments"),
      );
    }
    this.#settling = this.#settle(terminal.endOfDay.bind(terminal)).finally(() => {
      this.#settling = undefined;
    });
    return this.#settling;
  }

  async #settle(endOfDay: NonNullable<PaymentTerminal["endOfDay"]>): Promise<TerminalSettlementBody> {
    const totals = await endOfDay();
    const at = this.#o.now();
    const { fromSeq, toSeq, topups } = await this.#money.topupsSinceSettlement();
    const currency = totals.currency ?? (await this.#o.wallets.info()).currency ?? "EUR";
    const body: TerminalSettlementBody = {
      day: await this.#day(at),
      period: { fromSeq, toSeq },
      total: totals.total,
      count: totals.count,
      currency,
      references: topups.map((t) => t.terminal.reference),
      terminal: {
        ...(totals.traceNumber ? { traceNumber: totals.traceNumber } : {}),
        ...(totals.receiptFrom ? { receiptFrom: totals.receiptFrom } : {}),
        ...(totals.receiptTo ? { receiptTo: totals.receiptTo } : {}),
      },
    };
    const journaled = topups.reduce((n, t) => n + t.amount, 0);
    if (journaled !== totals.total || topups.length !== totals.count) {
      this.#o.logger.error(
        { terminal: { total: totals.total, count: totals.count }, journal: { total: journaled, count: topups.length } },
        "the terminal's end-of-day totals differ from this kiosk's journaled top-ups; ops will see it",
      );
    }
    await this.#o.journal.append("terminal-settlement", body, at);
    this.#o.logger.info({ total: body.total, count: body.count, fromSeq, toSeq }, "terminal settlement journaled");
    return body;
  }

  /** Null when the cloud issued the top-up's intent; else why there is no top-up now. */
  async #topupIntent(
    key: string,
    s: Session,
    member: ReplicaMember,
  ): Promise<{ reason: string; message: string } | null> {
    const offline = {
      reason: "offline",
      message: "Top-ups need a connection to the venue right now. Your card has not been charged.",
    };
    if (!this.#o.isOnline()) return offline;
    const outcome = await this.#o.online.topupIntent({
      key,
      memberId: member.id,
      amount: s.amount,
      currency: s.currency,
    });
    if (outcome.kind === "unreachable") {
      this.#o.logger.warn({ key, reason: outcome.reason }, "no top-up intent: the cloud is unreachable");
      return offline;
    }
    if (outcome.kind === "refused") {
      this.#o.logger.error(
        { key, status: outcome.status, detail: outcome.detail },
        "the cloud refused a top-up intent",
      );
      return { reason: "error", message: "This top-up could not be started. Your card has not been charged." };
    }
    const r = outcome.response;
    return r.status === "open" ? null : { reason: r.reason, message: r.message };
  }

  #approved(
    s: Session,
    member: ReplicaMember,
    id: string,
    balance: number,
    authorization: "online" | "offline" | undefined,
  ): PaymentResult {
    return {
      sessionId: s.id,
      kind: s.kind,
      outcome: "approved",
      // the screen shows amount, item and balance beside it; the sentence is for the person
      message: s.kind === "topup" ? `Wallet topped up, ${member.name}` : `Thank you, ${member.name}`,
      name: member.name,
      amount: s.amount,
      currency: s.currency,
      ...(s.itemName ? { itemName: s.itemName } : {}),
      balance,
      ...(authorization ? { authorization } : {}),
      id,
      at: this.#o.now().toISOString(),
    };
  }

  #limits(limits: OfflineLimits): OfflineLimits {
    return this.#o.lowerOfflineLimits?.(limits) ?? limits;
  }

  #declined(s: Session, reason: string, message: string, member?: ReplicaMember, balance?: number): PaymentResult {
    return {
      sessionId: s.id,
      kind: s.kind,
      outcome: "declined",
      message,
      ...(member ? { name: member.name } : {}),
      amount: s.amount,
      currency: s.currency,
      ...(s.itemName ? { itemName: s.itemName } : {}),
      ...(balance !== undefined ? { balance } : {}),
      reason,
      at: this.#o.now().toISOString(),
    };
  }

  #end(s: Session, reason: "cancelled" | "timeout"): void {
    if (this.#session !== s) return;
    this.#o.timers.clearTimeout(s.timer);
    this.#session = undefined;
    this.#o.onEnded(s.id, reason);
  }
}

/** The largest amount a member may type in (minor units); item prices come from the price list. */
const maxFreeAmount = 100_000;

function checkedAmount(amount: unknown): number {
  if (typeof amount !== "number" || !Number.isSafeInteger(amount) || amount < 1 || amount > maxFreeAmount) {
    throw new PaymentInputError(`amount: expected an integer number of minor units from 1 to ${maxFreeAmount}`);
  }
  return amount;
}

function publicSession(s: Session): PaymentSession {
  const { itemId: _itemId, timer: _timer, abort: _abort, ...rest } = s;
  return rest;
}

function terminalDecline(o: Exclude<TerminalOutcome, { status: "approved" }>): { reason: string; message: string } {
  switch (o.status) {
    case "declined":
      return {
        reason: "terminal-declined",
        message: `The card was declined (${o.reason}). Nothing was added to your wallet.`,
      };
    case "timeout":
      return {
        reason: "terminal-timeout",
        message:
          "The card terminal did not confirm the payment. Nothing was added to your wallet; any hold on your card is released.",
      };
    case "disconnected":
      return {
        reason: "terminal-disconnected",
        message:
          "The card terminal stopped responding. Nothing was added to your wallet; any hold on your card is released.",
      };
    case "cancelled":
      return { reason: "cancelled", message: "Top-up cancelled. Nothing was charged." };
  }
}
