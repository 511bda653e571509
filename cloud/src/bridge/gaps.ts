/**
 * Gap detection. After each commit the bridge knows, per device, the
 * contiguous high-water mark (`upTo`) and the highest seq it has seen. When
 * it has seen N+2 but the mark stops at N, entry N+1 is missing: a message
 * lost between device and cloud (a broker restart, the bridge's connection
 * dropping while the device went on publishing). Messages on one MQTT
 * connection arrive in order, so N+1 is not simply late: the tracker waits a
 * bounded time for it (it may be in a batch still committing, or in a resend
 * already on its way) and then asks the device to replay from N+1 on
 * `cmd/replay-from`. It asks again, backing off, while the gap stays open,
 * and forgets the device once the mark passes everything it has seen.
 *
 * With several bridges on one share group a device's batches land on
 * different instances, so one bridge's view of a stream has holes another
 * filled: the inbox is the source of truth. Before each request the tracker
 * re-reads the device's contiguous mark from it (`recheck`) and drops the gap
 * when another instance filled it (or moves on to a later one).
 */
import type { DeviceAddress, Timers } from "@paylane/protocol";

export interface GapTrackerOptions {
  /** How long a gap may stay open before the device is asked to replay. */
  waitMs: number;
  /** Longest pause between repeated requests for one gap. */
  maxWaitMs?: number;
  timers: Timers;
  requestReplay: (device: DeviceAddress, from: number) => void;
  /**
   * The device's contiguous mark as the database has it now, read before each request: a gap
   * another bridge filled is dropped instead of asked for. A failed read asks anyway.
   */
  recheck?: (device: DeviceAddress) => Promise<number>;
  /** A new gap was seen (for metrics). */
  onGap?: (device: DeviceAddress, from: number) => void;
  /** The clock a gap's opening time is read from (default: the wall clock). */
  now?: () => Date;
}

interface OpenGap {
  device: DeviceAddress;
  /** The first missing seq. */
  from: number;
  timer: unknown;
  asked: number;
  /** When it was seen open (a later gap of the same device starts its own). */
  since: Date;
}

export class GapTracker {
  readonly #o: Required<Omit<GapTrackerOptions, "onGap" | "recheck">> & Pick<GapTrackerOptions, "onGap" | "recheck">;
  /** Highest seq seen per device since it last had no gap. */
  readonly #seen = new Map<string, number>();
  readonly #open = new Map<string, OpenGap>();
  #stopped = false;

  constructor(o: GapTrackerOptions) {
    this.#o = { maxWaitMs: 30_000, now: () => new Date(), ...o };
  }

  /** Devices with a gap open now. */
  get open(): Array<{ device: DeviceAddress; from: number; since: Date }> {
    return [...this.#open.values()].map(({ device, from, since }) => ({ device, from, since }));
  }

  /** After a commit: the device's contiguous mark and the highest seq of its entries in that batch. */
  observe(device: DeviceAddress, upTo: number, maxSeq: number): void {
    if (this.#stopped) return;
    const key = `${device.site}/${device.device}`;
    const seen = Math.max(this.#seen.get(key) ?? 0, maxSeq);
    const open = this.#open.get(key);
    if (seen <= upTo) {
      // Everything seen is contiguous: no gap (any more).
      this.#seen.delete(key);
      if (open) this.#close(key, open);
      return;
    }
    this.#seen.set(key, seen);
    const from = upTo + 1;
    if (open?.from === from) return; // already waiting on this very gap
    if (open) this.#close(key, open); // the mark moved up to a later gap: start over for it
    this.#o.onGap?.(device, from);
    this.#arm(key, { device, from, timer: undefined, asked: 0, since: this.#o.now() }, this.#o.waitMs);
  }

  /** Clears every timer; later observations are ignored (a batch may still commit after a stop). */
  stop(): void {
    this.#stopped = true;
    for (const [key, gap] of this.#open) this.#close(key, gap);
    this.#seen.clear();
  }

  #arm(key: string, gap: OpenGap, ms: number): void {
    gap.timer = this.#o.timers.setTimeout(() => {
      if (this.#open.get(key) !== gap) return;
      if (!this.#o.recheck) {
        this.#ask(key, gap);
        return;
      }
      void this.#o.recheck(gap.device).then(
        (upTo) => {
          if (this.#open.get(key) !== gap || this.#stopped) return;
          if (upTo >= gap.from) {
            // Filled meanwhile (by another instance, or a batch committing alongside this one's):
            // the mark closes the gap, or opens the next one's wait.
            this.observe(gap.device, upTo, 0);
            return;
          }
          this.#ask(key, gap);
        },
        () => this.#open.get(key) === gap && !this.#stopped && this.#ask(key, gap),
      );
    }, ms);
    this.#open.set(key, gap);
  }

  #ask(key: string, gap: OpenGap): void {
    gap.asked++;
    this.#o.requestReplay(gap.device, gap.from);
    this.#arm(key, gap, Math.min(this.#o.maxWaitMs, this.#o.waitMs * 2 ** gap.asked));
  }

  #close(key: string, gap: OpenGap): void {
    this.#o.timers.clearTimeout(gap.timer);
    this.#open.delete(key);
  }
}
