/**
 * What the daemon needs of a card reader, whichever it is: a PN532 on a
 * serial port (pn532/) or a USB reader through pcscd (pcsc/). Both hand each
 * tap's UID to the same CardHandler and report the same states.
 */
import type { Logger } from "pino";
import { abbreviateUid } from "./pn532/commands.ts";
import type { CardHandler, ReaderState } from "./pn532/pn532-reader.ts";

export type { CardHandler, ReaderState };

export interface CardReader {
  readonly kind: "pn532" | "pcsc";
  /** "ok", "degraded" (answers, but not well), "disconnected" (the UI offers code entry). */
  readonly state: ReaderState;
  /** Resolves after the first attempt; a missing reader is waited for in the background. */
  start(handler: CardHandler): Promise<void>;
  stop(): Promise<void>;
  selfTest(): Promise<{ ok: boolean; detail: string }>;
}

/**
 * One tap: logs the read (UID abbreviated) and calls the handler. Settles when
 * the handler does and never rejects: a failing handler is logged, and the
 * reader goes on reading. Each reader keeps its own "one tap at a time" rule.
 */
export function runTap(handler: CardHandler, uid: string, logger: Logger): Promise<void> {
  logger.info({ uid: abbreviateUid(uid) }, "card read");
  return handler(uid).then(
    () => {},
    (err: unknown) => {
      logger.error({ err: (err as Error).message, uid: abbreviateUid(uid) }, "card handler failed");
    },
  );
}
