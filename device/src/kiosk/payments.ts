/** The kiosk's till: the payment desk with its intents store, its online authorizer and its hooks onto the bus. */
import type { PaymentResult, PaymentSession } from "@paylane/protocol/kiosk-api";
import type { CloudClient } from "../cloud/cloud-client.ts";
import type { TerminalSetup } from "../hardware/terminal/factory.ts";
import type { Journal } from "../journal.ts";
import { PaymentIntents } from "../payments/intents.ts";
import { OnlineAuthorizer } from "../payments/online-authorizer.ts";
import { PaymentBusyError, PaymentDesk, type PaymentDeskOptions, type ReceiptFacts } from "../payments/payment-desk.ts";
import type { WalletReplica } from "../payments/wallet-replica.ts";
import type { Replica } from "../replica.ts";
import type { KioskKit } from "./kit.ts";

export interface TillDeps {
  journal: Journal;
  replica: Replica;
  wallets: WalletReplica;
  cloud: CloudClient;
  terminal: TerminalSetup;
  isOnline: () => boolean;
  /** Lowers the site's offline limits at this kiosk (ops' offline caps, offline-caps.ts). */
  lowerOfflineLimits?: PaymentDeskOptions["lowerOfflineLimits"];
}

export async function openTill(kit: KioskKit, d: TillDeps): Promise<PaymentDesk> {
  const { config, now, timers, log: logger } = kit;
  return new PaymentDesk({
    journal: d.journal,
    intents: await PaymentIntents.open(d.journal),
    members: d.replica,
    wallets: d.wallets,
    online: new OnlineAuthorizer(d.cloud),
    isOnline: d.isOnline,
    terminal: d.terminal.terminal,
    now,
    timers,
    logger,
    idleMs: config.payments.idleMs,
    topupAmounts: config.payments.topupAmounts,
    ...(d.lowerOfflineLimits ? { lowerOfflineLimits: d.lowerOfflineLimits } : {}),
    ...paymentProgressHooks(kit),
  });
}

/** The payment desk's hooks: each step of a payment goes on the bus (and its answer in the log). */
export function paymentProgressHooks({ bus, log: logger }: KioskKit) {
  return {
    onSession: (session: PaymentSession) => bus.emit("payment-progressed", { step: "session", session }),
    onResult: (result: PaymentResult, receipt: ReceiptFacts | undefined) => {
      const { outcome, kind, reason, authorization, id: key } = result;
      logger.info({ outcome, kind, reason, authorization, key }, "payment answered");
      bus.emit("payment-progressed", { step: "answered", result, receipt });
    },
    onEnded: (sessionId: string, reason: "cancelled" | "timeout") =>
      bus.emit("payment-progressed", { step: "ended", sessionId, reason }),
  };
}

/** At stop: a payment waiting for a card ends (its idle timer with it); one being authorized is awaited with the work. */
export function endWaitingPayment(payments: PaymentDesk): void {
  try {
    payments.cancel();
  } catch (err) {
    if (!(err instanceof PaymentBusyError)) throw err;
  }
}
