/**
 * One queue per sink: alert changes go out in the order they happened (a
 * resolve never overtakes its trigger), each retried with exponential
 * backoff while the failure is worth retrying, up to a number of attempts.
 * `push` returns at once, so whoever raises an alert (the bridge's
 * listeners, i.e. ingest) never waits on a sink. A slow or failing sink
 * holds back only its own queue.
 *
 * Visible: paylane_alert_sink_failures_total (every failed attempt),
 * paylane_alert_sink_dropped_total (given up), paylane_alert_sink_queue
 * (waiting now), paylane_alert_sink_delivered_total, and a log line per
 * failure naming the sink, the alert key, the attempt and the error (never
 * a secret: URLs are redacted, keys and signatures are not logged).
 */
import type { Timers } from "@paylane/protocol";
import type { Logger } from "pino";
import { Counter, Gauge, type Registry as MetricsRegistry } from "prom-client";
import { type Delivery, type Sink, SinkError } from "./sinks.ts";

export interface RetryPolicy {
  maxAttempts: number;
  initialDelayMs: number;
  maxDelayMs: number;
}

/** Above this many waiting changes the oldest is dropped (a sink down for days must not eat the memory). */
const MAX_QUEUE = 10_000;

export interface SinkMetrics {
  failures: Counter<"sink">;
  dropped: Counter<"sink">;
  delivered: Counter<"sink">;
  queue: Gauge<"sink">;
}

export function sinkMetrics(registry: MetricsRegistry): SinkMetrics {
  return {
    failures: new Counter({
      name: "paylane_alert_sink_failures_total",
      help: "Failed attempts to deliver an alert change, by sink (each retry counts)",
      labelNames: ["sink"],
      registers: [registry],
    }),
    dropped: new Counter({
      name: "paylane_alert_sink_dropped_total",
      help: "Alert changes a sink never got (attempts used up, refused, or the queue overflowed)",
      labelNames: ["sink"],
      registers: [registry],
    }),
    delivered: new Counter({
      name: "paylane_alert_sink_delivered_total",
      help: "Alert changes delivered, by sink",
      labelNames: ["sink"],
      registers: [registry],
    }),
    queue: new Gauge({
      name: "paylane_alert_sink_queue",
      help: "Alert changes waiting for a sink (including the one being tried)",
      labelNames: ["sink"],
      registers: [registry],
    }),
  };
}

export class DeliveryQueue {
  readonly #items: Delivery[] = [];
  #running = false;
  #stopped = false;
  #timer: unknown;
  #wake: (() => void) | undefined;
  #idleWaiters: Array<() => void> = [];

  constructor(
    readonly sink: Sink,
    readonly o: { policy: RetryPolicy; timers: Timers; logger: Logger; metrics: SinkMetrics },
  ) {
    o.metrics.queue.set({ sink: sink.name }, 0);
  }

  get length(): number {
    return this.#items.length;
  }

  push(d: Delivery): void {
    if (this.#stopped) return;
    if (this.#items.length >= MAX_QUEUE) {
      const dropped = this.#items.splice(1, 1)[0]; // the head may be mid-attempt
      this.o.metrics.dropped.inc({ sink: this.sink.name });
      this.o.logger.error({ sink: this.sink.name, key: dropped?.alert.key }, "alert sink queue full: oldest dropped");
    }
    this.#items.push(d);
    this.#gauge();
    void this.#run();
  }

  /** Resolves when nothing is waiting (tests; a stop). */
  idle(): Promise<void> {
    if (!this.#running && this.#items.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Stops retrying; what is still waiting is logged and dropped. */
  stop(): void {
    this.#stopped = true;
    this.o.timers.clearTimeout(this.#timer);
    this.#wake?.();
    if (this.#items.length > 0) {
      this.o.logger.warn({ sink: this.sink.name, waiting: this.#items.length }, "alert changes not delivered at stop");
    }
  }

  async #run(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    try {
      while (this.#items.length > 0 && !this.#stopped) {
        await this.#deliver(this.#items[0]!);
        this.#items.shift();
        this.#gauge();
      }
    } finally {
      this.#running = false;
      if (this.#stopped) this.#items.length = 0;
      this.#gauge();
      for (const w of this.#idleWaiters.splice(0)) w();
    }
  }

  async #deliver(d: Delivery): Promise<void> {
    const { policy, logger, metrics } = this.o;
    const sink = this.sink.name;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.sink.send(d);
        metrics.delivered.inc({ sink });
        if (attempt > 1) logger.info({ sink, key: d.alert.key, attempt }, "alert delivered after retrying");
        return;
      } catch (err) {
        metrics.failures.inc({ sink });
        const retryable = err instanceof SinkError ? err.retryable : true;
        const message = (err as Error).message;
        if (!retryable || attempt >= policy.maxAttempts || this.#stopped) {
          metrics.dropped.inc({ sink });
          logger.error(
            { sink, key: d.alert.key, state: d.alert.state, attempt, err: message },
            retryable ? "alert delivery failed: attempts used up, dropped" : "alert delivery refused: dropped",
          );
          return;
        }
        const delay = Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** (attempt - 1));
        logger.warn({ sink, key: d.alert.key, attempt, retryInMs: delay, err: message }, "alert delivery failed");
        await this.#sleep(delay);
      }
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = resolve;
      this.#timer = this.o.timers.setTimeout(() => {
        this.#timer = this.#wake = undefined;
        resolve();
      }, ms);
    });
  }

  #gauge(): void {
    this.o.metrics.queue.set({ sink: this.sink.name }, this.#items.length);
  }
}
