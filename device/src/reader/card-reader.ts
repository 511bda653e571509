import type { PaymentResult, TapResult } from "@paylane/ui/kiosk-api";

export type ReaderState = "ok" | "degraded" | "disconnected";

/** What the daemon does with a card: decide (a check-in, or the payment in progress) and answer. */
export type CardHandler = (uid: string) => Promise<TapResult | PaymentResult>;

/**
 * A card reader as the daemon sees it. Drivers (the PN532 today)
 * report card UIDs as upper-case hex; the daemon never sees the wire.
 */
export interface CardReader {
  readonly kind: "pn532";
  readonly state: ReaderState;
  start(handler: CardHandler): Promise<void>;
  stop(): Promise<void>;
}
