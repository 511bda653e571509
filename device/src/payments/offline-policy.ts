/**
 * Offline authorization: what a kiosk may approve while it cannot reach the
 * cloud. A pure function of what the kiosk knows, so every limit is tested
 * at its boundary without a network, a clock or a database.
 *
 * The exposure is bounded three ways (Square's per-item and total caps, plus
 * a per-card daily cap), and the money must be there: the replica balance
 * minus what this kiosk spent since that balance was read.
 */
import { formatMoney, type OfflineLimits } from "@paylane/protocol";

export interface OfflineFacts {
  amount: number;
  currency: string;
  /** Null until the kiosk's first wallet sync. */
  limits: OfflineLimits | null;
  /** Replica balance minus this kiosk's unsynced and pending spending. */
  available: number;
  /** An earlier offline overdraft is not settled yet. */
  offlineBlocked: boolean;
  /** This card's offline spending at this kiosk today. */
  offlineSpentToday: number;
  /** This kiosk's offline payments not yet reconciled by the cloud. */
  kioskExposure: number;
}

export type OfflineDecision =
  | { approved: true }
  | {
      approved: false;
      reason: "offline-not-ready" | "wallet-blocked" | "offline-limit" | "insufficient-funds";
      message: string;
    };

export function decideOffline(f: OfflineFacts): OfflineDecision {
  const money = (n: number) => formatMoney(n, f.currency);
  if (!f.limits) {
    return {
      approved: false,
      reason: "offline-not-ready",
      message: "This kiosk is offline and cannot take payments yet. Please ask at the desk.",
    };
  }
  if (f.offlineBlocked) {
    return {
      approved: false,
      reason: "wallet-blocked",
      message: "This kiosk is offline, and this card cannot pay offline until its balance is settled.",
    };
  }
  // The tightest of the three caps is what this payment may be at most.
  const ceiling = Math.max(
    0,
    Math.min(
      f.limits.perPayment,
      f.limits.perCardDaily - f.offlineSpentToday,
      f.limits.kioskExposure - f.kioskExposure,
    ),
  );
  if (f.amount > ceiling) {
    return {
      approved: false,
      reason: "offline-limit",
      message:
        ceiling > 0
          ? `This kiosk is offline; payments above ${money(ceiling)} are not possible right now.`
          : "This kiosk is offline; payments are not possible right now.",
    };
  }
  if (f.amount > f.available) {
    return {
      approved: false,
      reason: "insufficient-funds",
      message: `Insufficient funds: the balance is ${money(f.available)}.`,
    };
  }
  return { approved: true };
}
