/**
 * The local check-in decision. The kiosk answers from its replica and its
 * own journal only, so it answers the same way and in the same time online
 * and offline; the cloud reconciles across kiosks later.
 *
 *   unknown card            -> "Card not recognised" (nothing journaled)
 *   revoked member          -> refused (nothing journaled)
 *   already in today        -> "Already checked in today" (nothing journaled)
 *   otherwise               -> a `checkin` entry is journaled (durable), then "Welcome, NAME"
 *
 * "Today" is the site's calendar day in the site's time zone.
 */
import type { CheckinBody, Credential, Entry } from "@paylane/protocol";
import type { TapResult } from "@paylane/protocol/kiosk-api";
import type { Journal } from "./journal.ts";
import type { Replica } from "./replica.ts";

export interface CheckinDeskOptions {
  journal: Journal;
  replica: Replica;
  now: () => Date;
  /** Whether the kiosk currently sees the cloud; recorded with each decision. */
  isOnline: () => boolean;
}

/** What the kiosk says when it cannot record anything: never "done" for what is not durable. */
export const STORAGE_FAILURE_MESSAGE = "This kiosk cannot record check-ins right now. Please ask at the desk.";

export class CheckinDesk {
  readonly #opts: CheckinDeskOptions;
  /** Decisions are serialised: two quick taps of one card must not both pass the "already" check. */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(opts: CheckinDeskOptions) {
    this.#opts = opts;
  }

  decide(credential: Credential): Promise<TapResult> {
    const next = this.#queue.then(() => this.#decide(credential));
    this.#queue = next.catch(() => {});
    return next;
  }

  async #decide(credential: Credential): Promise<TapResult> {
    const { journal, replica, now, isOnline } = this.#opts;
    const at = now();
    const member =
      credential.type === "card" ? await replica.byCard(credential.uid) : await replica.byCode(credential.code);
    if (!member) {
      const message = credential.type === "card" ? "Card not recognised" : "Booking code not recognised";
      return { outcome: "unknown", message, at: at.toISOString() };
    }
    if (member.status !== "active") {
      return { outcome: "refused", name: member.name, message: "This card is blocked", at: at.toISOString() };
    }
    const info = await replica.info();
    const index = { memberId: member.id, day: localDay(at, info.timezone) };
    if (await journal.hasEntryOn("checkin", index)) {
      return { outcome: "already", name: member.name, message: "Already checked in today", at: at.toISOString() };
    }
    const body: CheckinBody = {
      memberId: member.id,
      credential,
      replicaVersion: info.version,
      offline: !isOnline(),
    };
    let entry: Entry;
    try {
      entry = await journal.append("checkin", body, at, index);
    } catch {
      // The journal told its listeners (storage is failing); the user is told it did not happen.
      return { outcome: "refused", name: member.name, message: STORAGE_FAILURE_MESSAGE, at: at.toISOString() };
    }
    return {
      outcome: "welcome",
      name: member.name,
      message: `Welcome, ${member.name}`,
      seq: entry.seq,
      id: entry.id,
      at: at.toISOString(),
    };
  }
}

const dayFormats = new Map<string, Intl.DateTimeFormat>();

/** The calendar day (YYYY-MM-DD) of `at` in `timeZone`. */
export function localDay(at: Date, timeZone: string): string {
  let fmt = dayFormats.get(timeZone);
  if (!fmt) {
    // en-CA formats dates as YYYY-MM-DD.
    fmt = new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" });
    dayFormats.set(timeZone, fmt);
  }
  return fmt.format(at);
}
