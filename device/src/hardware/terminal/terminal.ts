/**
 * The card-payment terminal as the rest of the daemon sees it. Taking the
 * card is the certified terminal's job; the kiosk asks it to charge an amount
 * and learns how that ended. Terminal and network trouble are outcomes, not
 * exceptions, so a top-up flow handles every ending in one `switch`.
 */

export interface TerminalCharge {
  /** Integer minor units (250 = 2.50), > 0. */
  amount: number;
  /** ISO 4217 alphabetic code, e.g. "EUR". */
  currency: string;
  /** Our payment key (a UUID): ties the terminal's answer to our journal in logs. */
  reference: string;
}

export type TerminalOutcome =
  | {
      status: "approved";
      /** The terminal's transaction reference (trace number and receipt number), for reconciliation. */
      reference: string;
      approvalCode: string;
      /** e.g. "VISA •••• 4242": a brand and at most the last four digits, never more of the card. */
      cardLabel: string;
    }
  /** `reason` is human readable, e.g. "card declined by issuer". */
  | { status: "declined"; reason: string }
  /** No final answer in time; the terminal's own reversal applies. */
  | { status: "timeout" }
  /** The link was lost (or could not be set up) during the charge. */
  | { status: "disconnected"; reason: string }
  /** Aborted by us (AbortSignal) before the terminal answered. */
  | { status: "cancelled" };

export type TerminalState = "ready" | "busy" | "disconnected";

export interface PaymentTerminal {
  readonly state: TerminalState;
  /**
   * Starts a card payment; one at a time (a second call while busy rejects
   * with an Error). Never throws for terminal or network outcomes: those are
   * TerminalOutcome values.
   */
  charge(req: TerminalCharge, opts?: { signal?: AbortSignal }): Promise<TerminalOutcome>;
  /**
   * End-of-day: the terminal closes its batch (the approved payments since
   * the last end-of-day), sends it to the acquirer and reports its totals.
   * Rejects with an Error naming why when the terminal refuses or cannot
   * (busy, unreachable, no answer in time). Optional: not every terminal
   * interface offers it.
   */
  endOfDay?(): Promise<TerminalSettlement>;
  /**
   * Sets up the link now rather than at the first charge (a terminal idle
   * since boot reads "disconnected" until then). Rejects naming why it could
   * not. Optional, like endOfDay.
   */
  connect?(): Promise<void>;
  close(): Promise<void>;
}

/** The totals of a closed terminal batch. */
export interface TerminalSettlement {
  /** Minor units the batch took in. */
  total: number;
  /** Card payments in the batch. */
  count: number;
  /** ISO 4217 alphabetic, when the terminal says. */
  currency?: string;
  /** The end-of-day's own trace number. */
  traceNumber?: string;
  /** The first and last receipt numbers of the batch. */
  receiptFrom?: string;
  receiptTo?: string;
}

/** "VISA •••• 4242"; the brand alone when the last four are unknown. */
export function cardLabel(brand: string | undefined, last4: string | undefined): string {
  const name = brand?.trim() || "Card";
  return last4 && /^\d{4}$/.test(last4) ? `${name} •••• ${last4}` : name;
}
