/**
 * The contract between the kiosk daemon's local API (device/src/local-api.ts)
 * and the touch UI. Types only: the UI bundle and the daemon both import it.
 *
 *   GET  /api/state       -> KioskState
 *   WS   /api/live        <- LiveMessage (a `state` message first, then changes and results)
 *   POST /api/sim/tap     {uid} -> TapResult   (only when the reader is simulated; 404 otherwise)
 */

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

export type LiveMessage =
  | { type: "state"; state: KioskState }
  | { type: "result"; result: TapResult }
  | { type: "receipt"; receipt: ReceiptNotice };

export interface ProblemDetails {
  type: string;
  title: string;
  status: number;
  detail?: string;
}
