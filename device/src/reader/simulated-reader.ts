import type { TapResult } from "@paylane/ui/kiosk-api";
import type { CardHandler, CardReader, ReaderState } from "./card-reader.ts";

/** A reader with no hardware: cards are "placed" by the page control, the CLI or a test. */
export class SimulatedReader implements CardReader {
  readonly kind = "simulated" as const;
  #handler: CardHandler | undefined;

  get state(): ReaderState {
    return this.#handler ? "ok" : "disconnected";
  }

  async start(handler: CardHandler): Promise<void> {
    this.#handler = handler;
  }

  async stop(): Promise<void> {
    this.#handler = undefined;
  }

  /** Presents a card; resolves with the kiosk's answer. */
  tap(uid: string): Promise<TapResult> {
    if (!this.#handler) return Promise.reject(new Error("reader is not started"));
    return this.#handler(uid);
  }
}
