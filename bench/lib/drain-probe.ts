/**
 * Watches a draining kiosk from the outside: wraps the journal the daemon
 * opens (through the daemon's `openJournal` option, so device code is
 * untouched) to time what the uplink asks of it — `entriesAfter` just before
 * each publish, `markAcked` on each ack — and follows the daemon's `acked`
 * events. From those it knows the window actually used on the wire, the
 * round trip from reading a batch to the ack that covers it, and how much of
 * each round the kiosk's own SQLite work took.
 */
import { performance } from "node:perf_hooks";
import type { Journal } from "@paylane/device";

export interface DrainTimings {
  /** Since the probe's t0 (just before daemon.start()), ms. */
  firstPublishMs: number;
  firstAckMs: number;
  /** Entries read for publishing, resends included. */
  entriesRead: number;
  reads: { count: number; ms: number };
  markAcked: { count: number; ms: number };
  /** Largest gap between the highest seq read for publishing and the ack at that moment. */
  maxInFlight: number;
  /** Entries each ack advanced, in arrival order. */
  ackSteps: number[];
  /** ms between consecutive acks, sorted. */
  ackGaps: number[];
  /** ms from reading a batch to the ack that covers it, sorted. */
  roundTrips: number[];
}

export class DrainProbe {
  readonly #t0: number;
  #firstPublish = Number.NaN;
  #firstAck = Number.NaN;
  #lastAckAt = Number.NaN;
  #ackedUpTo = 0;
  #entriesRead = 0;
  #maxInFlight = 0;
  readonly #reads = { count: 0, ms: 0 };
  readonly #marks = { count: 0, ms: 0 };
  /** Batches read and not yet covered by an ack: last seq and when read. */
  readonly #unacked: Array<{ lastSeq: number; at: number }> = [];
  readonly #ackSteps: number[] = [];
  readonly #ackGaps: number[] = [];
  readonly #roundTrips: number[] = [];

  constructor(t0: number) {
    this.#t0 = t0;
  }

  get ackedUpTo(): number {
    return this.#ackedUpTo;
  }

  /** Times the journal's uplink-facing calls; returns the same journal. */
  instrument(journal: Journal): Journal {
    const entriesAfter = journal.entriesAfter.bind(journal);
    const markAcked = journal.markAcked.bind(journal);
    journal.entriesAfter = async (afterSeq, limit) => {
      const t = performance.now();
      const entries = await entriesAfter(afterSeq, limit);
      const now = performance.now();
      this.#reads.count++;
      this.#reads.ms += now - t;
      const last = entries.at(-1);
      if (last) {
        if (Number.isNaN(this.#firstPublish)) this.#firstPublish = now - this.#t0;
        this.#entriesRead += entries.length;
        this.#unacked.push({ lastSeq: last.seq, at: now });
        this.#maxInFlight = Math.max(this.#maxInFlight, last.seq - this.#ackedUpTo);
      }
      return entries;
    };
    journal.markAcked = async (upTo) => {
      const t = performance.now();
      try {
        return await markAcked(upTo);
      } finally {
        this.#marks.count++;
        this.#marks.ms += performance.now() - t;
      }
    };
    return journal;
  }

  /** The daemon's `acked` event: the journal now holds `upTo` as acked. */
  onAcked(upTo: number): void {
    const now = performance.now();
    if (upTo <= this.#ackedUpTo) return;
    if (Number.isNaN(this.#firstAck)) this.#firstAck = now - this.#t0;
    else this.#ackGaps.push(now - this.#lastAckAt);
    this.#lastAckAt = now;
    this.#ackSteps.push(upTo - this.#ackedUpTo);
    this.#ackedUpTo = upTo;
    while (this.#unacked.length > 0 && this.#unacked[0]!.lastSeq <= upTo)
      this.#roundTrips.push(now - this.#unacked.shift()!.at);
  }

  timings(): DrainTimings {
    const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
    return {
      firstPublishMs: this.#firstPublish,
      firstAckMs: this.#firstAck,
      entriesRead: this.#entriesRead,
      reads: { ...this.#reads },
      markAcked: { ...this.#marks },
      maxInFlight: this.#maxInFlight,
      ackSteps: [...this.#ackSteps],
      ackGaps: sorted(this.#ackGaps),
      roundTrips: sorted(this.#roundTrips),
    };
  }
}
