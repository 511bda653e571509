/**
 * The contract between the kiosk daemon's local API (device/src/local-api.ts)
 * and the touch UI. Types (and one name): the UI bundle and the daemon both import it.
 *
 * Every POST is `Content-Type: application/json` with `Authorization: Bearer
 * <token>`: the daemon puts this boot's token in the page it serves, as
 * `<meta name="paylane-local-token" content="…">` (LOCAL_TOKEN_META); tools on
 * the kiosk read it from `<dataDir>/local-api-token`. Other origins are refused.
 *
 *   GET  /api/state       -> KioskState
 *   WS   /api/live        <- LiveMessage (a `state` message first, then changes and results)
 *   POST /api/sim/tap     {uid} -> TapResult | PaymentResult   (only when the reader is simulated; 404 otherwise)
 *
 * Payments (see docs/payments.md):
 *   GET  /api/catalog                 -> Catalog
 *   POST /api/payments  {itemId} | {amount}  -> PaymentSession  (the next card tapped pays)
 *   POST /api/topups    {amount}      -> PaymentSession  (the next card tapped is topped up, paid at the terminal)
 *   POST /api/payments/cancel         -> {cancelled: boolean}  (409 once the card is being authorized)
 * A session ends with a `payment-result` (approved / declined) or a
 * `payment-ended` (cancelled, or idle past `expiresAt`) on /api/live.
 */

/** The `<meta name>` of the page the daemon serves that holds this boot's local API token. */
export const LOCAL_TOKEN_META = "paylane-local-token";

export type TapOutcome = "welcome" | "unknown" | "already" | "refused";

export interface TapResult {
  outcome: TapOutcome;
  /** Member's display name, for `welcome` and `already`. */
  name?: string;
  /** The sentence to show, e.g. "Welcome, Ada" or "Card not recognised". */
  message: string;
  /** Journal seq of the check-in, for `welcome`. */
  seq?: number;
  /** Journal entry id of the check-in (the transaction id on its receipt), for `welcome`. */
  id?: string;
  at: string;
}

/**
 * What became of a result's receipt, sent after the result (printing never
 * holds up the answer). When nothing was printed the UI shows `qr` instead.
 */
export type ReceiptNotice =
  | { id: string; printed: true }
  | {
      id: string;
      printed: false;
      /** paper-out, disconnected, not-responding, timeout, busy, stopped, error */
      reason: string;
      /** The transaction id as a QR code: an SVG data URL. */
      qr: string;
    };

export interface KioskState {
  site: string;
  device: string;
  /** The kiosk can see the cloud (broker connected and the cloud's status is online). */
  online: boolean;
  broker: boolean;
  cloud: boolean;
  /** `simulated`: a PN532 simulator the page can place cards on. While `disconnected` the UI offers code entry. */
  reader: { kind: "pn532"; simulated: boolean; state: "ok" | "degraded" | "disconnected" };
  /** Journal entries not yet acknowledged by the cloud. */
  backlog: number;
  /** "failing": the journal cannot write (disk full, I/O error); check-ins are refused until it recovers. */
  storage: "ok" | "failing";
}

/** The site's price list and what the kiosk can sell, amounts in minor units of `currency`. */
export interface Catalog {
  /** False until the kiosk has its site's wallets and prices (first sync); payments are refused until then. */
  ready: boolean;
  currency: string;
  items: Array<{ id: string; name: string; price: number }>;
  /** A payment terminal is attached: members can top up their wallet with a bank card. */
  topups: boolean;
  /** Suggested top-up amounts, minor units. */
  topupAmounts: number[];
  /** Amounts a member may enter freely are between 1 and this (the per-payment limit online). */
  maxAmount: number;
}

export type PaymentKind = "purchase" | "topup";

/** A payment in progress at the kiosk: one at a time. */
export interface PaymentSession {
  id: string;
  kind: PaymentKind;
  amount: number;
  currency: string;
  itemName?: string;
  /** awaiting-card: tap a member card; authorizing: asking the cloud (or deciding offline); awaiting-terminal: pay at the terminal. */
  state: "awaiting-card" | "authorizing" | "awaiting-terminal";
  /** Left alone until then, the session ends by itself (nothing charged). */
  expiresAt: string;
}

export interface PaymentResult {
  sessionId: string;
  kind: PaymentKind;
  outcome: "approved" | "declined";
  /** The sentence to show: "Paid €2.50 — new balance €7.50", "Insufficient funds: balance €1.00". */
  message: string;
  /** Member's display name, when the card was recognised. */
  name?: string;
  amount: number;
  currency: string;
  itemName?: string;
  /** The wallet balance after an approved payment or top-up (offline: the kiosk's own estimate). */
  balance?: number;
  authorization?: "online" | "offline";
  /**
   * A top-up the terminal charged while the kiosk was offline: not in `balance`
   * yet; the cloud credits it once the terminal's end-of-day settlement is reconciled.
   */
  pending?: boolean;
  /** The payment's key: the transaction id on its receipt. Present when approved. */
  id?: string;
  /** Why it was declined: insufficient-funds, offline-limit, wallet-blocked, unknown-card, terminal-declined, … */
  reason?: string;
  at: string;
}

export type LiveMessage =
  | { type: "state"; state: KioskState }
  | { type: "result"; result: TapResult }
  | { type: "receipt"; receipt: ReceiptNotice }
  | { type: "payment"; session: PaymentSession }
  | { type: "payment-result"; result: PaymentResult }
  | { type: "payment-ended"; sessionId: string; reason: "cancelled" | "timeout" };

export interface ProblemDetails {
  type: string;
  title: string;
  status: number;
  detail?: string;
}
