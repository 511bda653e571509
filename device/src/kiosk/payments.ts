/** The kiosk's till: the payment desk with its intents store, its online authorizer and its hooks onto the bus. */
import type { CloudClient } from "../cloud/cloud-client.ts";
import type { TerminalSetup } from "../hardware/terminal/factory.ts";
import type { Journal } from "../journal.ts";
import { PaymentIntents } from "../payments/intents.ts";
import { OnlineAuthorizer } from "../payments/online-authorizer.ts";
import { PaymentDesk } from "../payments/payment-desk.ts";
import type { WalletReplica } from "../payments/wallet-replica.ts";
import type { Replica } from "../replica.ts";
import { paymentProgressHooks } from "./front-desk.ts";
import type { KioskKit } from "./kit.ts";

export interface TillDeps {
  journal: Journal;
  replica: Replica;
  wallets: WalletReplica;
  cloud: CloudClient;
  terminal: TerminalSetup;
  isOnline: () => boolean;
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
    ...paymentProgressHooks(kit),
  });
}
