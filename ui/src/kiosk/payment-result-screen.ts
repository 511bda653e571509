import type { PaymentResult } from "@paylane/protocol/kiosk-api";
import { css, html, nothing, type TemplateResult } from "lit";
import { customElement } from "lit/decorators.js";
import { cross, tick } from "./icons.ts";
import { formatMoney } from "./money.ts";
import { ResultScreenBase, type ResultView } from "./result-view.ts";

/**
 * What a decline means for the member, in the UI's words. The daemon's
 * message (shown above it) has the particulars, such as the balance or the
 * offline limit.
 */
function declineHint(result: PaymentResult): string {
  const topup = result.kind === "topup";
  switch (result.reason) {
    case "insufficient-funds":
      return "Your wallet balance is too low. Top up, or choose a smaller amount.";
    case "offline-limit":
      return "This kiosk is offline and can only take small payments. Try a smaller amount or pay at the desk.";
    case "wallet-blocked":
      return "This wallet cannot pay right now. Please ask at the desk.";
    case "unknown-card":
    case "unknown-member":
      return "Card not recognised. Please ask at the desk.";
    case "member-revoked":
      return "This membership cannot pay. Please ask at the desk.";
    case "terminal-declined":
      return "The card terminal declined the payment. Nothing was added to your wallet.";
    default:
      return topup
        ? "Nothing was added to your wallet. Please ask at the desk."
        : "Nothing was charged. Please ask at the desk.";
  }
}

/** Below an approval's heading: what was paid, the new balance, and whether that balance is final. */
function approvedDetails(r: PaymentResult, what: TemplateResult): TemplateResult {
  const money = (amount: number) => formatMoney(amount, r.currency);
  const offline = r.authorization === "offline";
  // a top-up charged offline is not in the balance until the terminal's day is settled
  const pending = r.pending === true;
  const balance =
    r.balance === undefined
      ? nothing
      : html`<span class="balance" data-testid="balance"
          >${pending ? "Balance" : "New balance"} ${money(r.balance)}${
            pending ? " (top-up pending)" : offline ? " (offline)" : ""
          }</span
        >`;
  const note = pending
    ? html`<p class="note" data-testid="offline-note">
        Charged while this kiosk is offline: the top-up shows in the balance once the card terminal's day is settled.
      </p>`
    : offline
      ? html`<p class="note" data-testid="offline-note">
          Approved by this kiosk while offline: the new balance is its estimate.
        </p>`
      : nothing;
  return html`<p class="details"><span>${r.kind === "topup" ? "Top-up" : "Paid"} ${what}</span> ${balance}</p>
    ${note}`;
}

/** Approved or declined: the outcome's colour, the daemon's sentence, the amount and the new balance. */
@customElement("paylane-payment-result-screen")
export class PaymentResultScreen extends ResultScreenBase<PaymentResult> {
  static override styles = [
    ResultScreenBase.styles,
    css`
      :host {
        --gap: clamp(0.4rem, 2.5vh, 1.5rem);
        --icon: clamp(3rem, 16vh, 8rem);
        --text: clamp(1.1rem, 3.2vw, 2.25rem);
        --receipt-qr: clamp(5rem, 20vh, 10rem);
        --message-l: clamp(2.25rem, 7vw, 5.5rem);
        --message-m: clamp(1.75rem, 5vw, 4rem);
        --message-s: clamp(1.4rem, 4vw, 3rem);
      }
      .details {
        display: flex;
        flex-wrap: wrap;
        justify-content: center;
        gap: 0.25rem 1.5rem;
      }
      .reason {
        font-size: clamp(1rem, 2.8vw, 2rem);
        font-weight: 500;
      }
      .balance {
        font-weight: 800;
      }
      .note {
        font-size: clamp(1rem, 2.5vw, 1.5rem);
        font-weight: 400;
      }
    `,
  ];

  protected view(r: PaymentResult): ResultView {
    const what = html`<span data-testid="amount">${formatMoney(r.amount, r.currency)}</span>${
      r.itemName ? html` · <span data-testid="item">${r.itemName}</span>` : nothing
    }`;
    if (r.outcome === "approved") {
      const details = approvedDetails(r, what);
      return { tone: "done", icon: tick, message: r.message, role: "status", details, receiptId: r.id };
    }
    const kind = r.kind === "topup" ? "Top-up" : "Payment";
    // a decline has no receipt
    return {
      tone: "refused",
      icon: cross,
      message: r.message,
      role: "alert",
      details: html`<p class="reason" data-testid="reason">${declineHint(r)}</p>
        <p class="details note"><span>${kind} of ${what} declined</span></p>`,
    };
  }
}

declare global {
  interface HTMLElementTagNameMap {
    "paylane-payment-result-screen": PaymentResultScreen;
  }
}
