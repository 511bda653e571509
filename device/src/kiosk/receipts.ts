/**
 * Prints a receipt for a welcome (when the site wants check-in receipts) and
 * for every approved payment. It never holds up the answer: the user already
 * has it. When nothing could be printed (no printer, paper out) the screen
 * offers the receipt as a QR code of the transaction id.
 */
import type { Credential } from "@paylane/protocol";
import type { ReceiptNotice, TapResult } from "@paylane/protocol/kiosk-api";
import type { Receipt } from "../hardware/printer/receipt.ts";
import type { Peripherals } from "../peripherals.ts";
import { receiptQrDataUrl } from "../receipt-qr.ts";
import type { Replica } from "../replica.ts";
import { type KioskEvents, listen } from "./events.ts";
import type { KioskKit } from "./kit.ts";
import type { Part } from "./lifecycle.ts";

export interface ReceiptsDeps {
  peripherals: Peripherals;
  replica: Replica;
}

export class Receipts implements Part {
  readonly name = "receipts";
  readonly #k: KioskKit;
  readonly #d: ReceiptsDeps;
  #unlisten = () => {};

  constructor(kit: KioskKit, deps: ReceiptsDeps) {
    this.#k = kit;
    this.#d = deps;
  }

  start(): void {
    this.#unlisten = listen(this.#k.bus, { "tap-decided": this.#onTap, "payment-progressed": this.#onPayment });
  }

  stop(): void {
    this.#unlisten();
  }

  readonly #onTap = (...[result, credential]: KioskEvents["tap-decided"]) => {
    const printer = this.#k.config.printer;
    if (result.outcome !== "welcome" || printer.type === "none" || !printer.checkinReceipts || !result.id) return;
    this.#issue(result.id, (venue, timeZone) =>
      checkinReceipt(result, credential, this.#k.config.device, venue, timeZone),
    );
  };

  readonly #onPayment = (...[progress]: KioskEvents["payment-progressed"]) => {
    if (progress.step !== "answered") return;
    const { result, receipt } = progress;
    if (result.outcome !== "approved" || !receipt || !result.id) return;
    const id = result.id;
    this.#issue(id, (venue, timeZone) => ({
      kind: "payment",
      venue,
      kiosk: this.#k.config.device,
      at: new Date(result.at),
      timeZone,
      memberName: receipt.memberName,
      transactionId: id,
      cardUid: receipt.cardUid,
      item: receipt.item,
      amount: { minor: result.amount, currency: result.currency },
      newBalance: { minor: result.balance ?? 0, currency: result.currency },
    }));
  };

  #issue(id: string, receipt: (venue: string, timeZone: string) => Receipt): void {
    this.#k.work
      .track(this.#print(id, receipt))
      .catch((err: Error) => this.#k.log.warn({ err: err.message }, "receipt could not be handled"));
  }

  async #print(id: string, receipt: (venue: string, timeZone: string) => Receipt): Promise<void> {
    const { printer } = this.#d.peripherals;
    const info = await this.#d.replica.info();
    const outcome =
      printer && this.#k.config.printer.type !== "none"
        ? await printer.print(receipt(info.siteName || this.#k.config.site, info.timezone))
        : ({ printed: false, reason: "no-printer" } as const);
    const notice: ReceiptNotice = outcome.printed
      ? { id, printed: true }
      : { id, printed: false, reason: outcome.reason, qr: await receiptQrDataUrl(id) };
    if (!outcome.printed) this.#k.log.warn({ reason: outcome.reason }, "receipt not printed; offered on screen");
    this.#k.bus.emit("receipt-issued", notice);
  }
}

function checkinReceipt(
  result: TapResult,
  credential: Credential,
  kiosk: string,
  venue: string,
  timeZone: string,
): Receipt {
  return {
    kind: "checkin",
    venue,
    kiosk,
    at: new Date(result.at),
    timeZone,
    memberName: result.name ?? "",
    transactionId: result.id ?? "",
    ...(credential.type === "card" ? { cardUid: credential.uid } : {}),
  };
}
