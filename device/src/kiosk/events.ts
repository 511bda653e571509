/**
 * The kiosk's event bus: every happening has one name and one payload type.
 * Parts publish what happened; the screen feed, telemetry, the LEDs and
 * the metrics subscribe. Nobody calls anybody "to let them know".
 *
 * Listeners run synchronously inside the publisher's call (an append, a
 * payment's answer) and must not throw: whatever can fail (printing, a
 * push to the screen) runs as tracked async work and catches its own errors.
 */
import { EventEmitter } from "node:events";
import type { Credential, Entry, StaffCallBody } from "@paylane/protocol";
import type {
  PaymentResult,
  PaymentSession,
  ReceiptNotice,
  ScreenSettings,
  TapResult,
} from "@paylane/protocol/kiosk-api";
import type { ReceiptFacts } from "../payments/payment-desk.ts";
import type { StorageStatus } from "../storage-monitor.ts";

/** How the kiosk reaches its cloud: the broker session, and the cloud's own status on it. */
export interface CloudLinkState {
  online: boolean;
  broker: boolean;
  /** What the cloud's retained STATE says (a hung cloud's still says online). */
  cloud: boolean;
  /** "unreachable": the broker is up but the cloud is away or silent past the liveness window (docs/status.md). */
  state: "online" | "unreachable" | "broker-down";
}

/** A payment's steps, in order: a session opens, then it is answered or it ends unanswered. */
export type PaymentProgress =
  | { step: "session"; session: PaymentSession }
  | { step: "answered"; result: PaymentResult; receipt: ReceiptFacts | undefined }
  | { step: "ended"; sessionId: string; reason: "cancelled" | "timeout" };

export interface KioskEvents {
  /** A credential (card or code) was decided at the check-in desk. */
  "tap-decided": [TapResult, Credential];
  /** An entry is durable in the journal (the journal emits it itself). */
  "entry-journaled": [Entry];
  /** The cloud acknowledged the journal up to this seq. */
  "entries-acked": [number];
  /** The journal was behind the cloud and moved past its seqs (journal-rollback.ts). */
  "journal-rolled-back": [Entry];
  /** The cloud holds other entries than this kiosk's at these seqs; ours are kept. */
  "journal-conflicts": [number[]];
  /** Storage began failing, or writes work again. */
  "storage-changed": [StorageStatus];
  /** A peripheral changed state ("state": reader, printer, GPIO or card terminal health; "paper": the printer's paper). */
  "peripheral-changed": ["state" | "paper"];
  "payment-progressed": [PaymentProgress];
  /** A receipt was printed, or offered on screen as a QR code when it could not be. */
  "receipt-issued": [ReceiptNotice];
  /** The broker session or the cloud's status changed. */
  "cloud-link-changed": [CloudLinkState];
  /** A staff call was journaled (button or screen). */
  "staff-called": [StaffCallBody];
  /** A decision started (true) or ended (false): the status LED shows "busy" meanwhile. */
  "decision-busy": [boolean];
  /** The operating mode or the screen's settings changed (kiosk-mode.ts). */
  "kiosk-mode-changed": [ScreenSettings];
}

export type KioskBus = EventEmitter<KioskEvents>;

export function createKioskBus(): KioskBus {
  const bus = new EventEmitter<KioskEvents>();
  // Every part, every test and every open screen subscribes: the default of 10 is no leak signal here.
  bus.setMaxListeners(100);
  return bus;
}

export type KioskListeners = { [E in keyof KioskEvents]?: (...args: KioskEvents[E]) => void };

/** Subscribes each listener to its event; the function returned unsubscribes them all (a part's `stop`). */
export function listen(bus: KioskBus, listeners: KioskListeners): () => void {
  const entries = Object.entries(listeners) as Array<[keyof KioskEvents, (...args: unknown[]) => void]>;
  for (const [event, listener] of entries) bus.on(event, listener as never);
  return () => {
    for (const [event, listener] of entries) bus.off(event, listener as never);
  };
}
