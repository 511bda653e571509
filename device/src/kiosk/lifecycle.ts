/**
 * Parts with a lifecycle (reader, uplink, telemetry, local API, …) share one
 * small interface and are started in dependency order and stopped in
 * reverse, the way Zigbee2MQTT starts its extensions. Stores opened before
 * them (journal, replicas, terminal) are closed last, after the parts.
 */
import type { Logger } from "pino";

export interface Part {
  /** For logs: which part failed to stop. */
  readonly name: string;
  start(): Promise<void> | void;
  stop(): Promise<void> | void;
}

/**
 * What has been opened and started so far, in order. `stop()` undoes it in
 * reverse; a start that fails half-way is undone the same way by its owner,
 * so nothing is left holding a port, a serial device or the event loop.
 */
export class Lifecycle {
  readonly #log: Logger;
  #running: Part[] = [];
  #starting: Promise<unknown> | undefined;
  #stopping: Promise<void> | undefined;
  #stoppingPart: string | undefined;

  constructor(log: Logger) {
    this.#log = log;
  }

  /**
   * Runs `compose` (which opens stores and starts parts on this lifecycle)
   * as one start: calls while it runs share it, a stop in progress is
   * awaited first, and a start that fails is undone before it rejects.
   */
  launch<T>(compose: () => Promise<T>): Promise<T> {
    const run = async () => {
      await this.#stopping;
      try {
        return await compose();
      } catch (err) {
        await this.stop().catch((e: Error) =>
          this.#log.warn({ err: e.message }, "stopping what had started failed too"),
        );
        throw err;
      }
    };
    this.#starting ??= run().finally(() => {
      this.#starting = undefined;
    });
    return this.#starting as Promise<T>;
  }

  /**
   * Stops once a start in progress has ended; calls while stopping share the
   * stop (Ctrl-C brings SIGINT and SIGTERM). `stopped` runs first, so the owner
   * reads as stopped before any store closes.
   */
  shutdown(stopped: () => void = () => {}): Promise<void> {
    this.#stopping ??= (this.#starting ?? Promise.resolve())
      .catch(() => {})
      .then(() => {
        stopped();
        return this.stop();
      })
      .finally(() => (this.#stopping = undefined));
    return this.#stopping;
  }

  /** Opens a store; it is closed when the lifecycle stops, after every part started later. */
  async open<T>(name: string, open: () => Promise<T>, close: (store: T) => Promise<void>): Promise<T> {
    const store = await open();
    this.#running.push({ name, start: () => {}, stop: () => close(store) });
    return store;
  }

  /**
   * Starts `parts` in order. A part whose start fails half-way (a listener
   * added, a port opened, then a throw) is stopped too, before the failure
   * is rethrown: `stop()` must therefore undo whatever part of a start ran.
   */
  async start(parts: readonly Part[]): Promise<void> {
    for (const p of parts) {
      try {
        await p.start();
      } catch (err) {
        await Promise.resolve()
          .then(() => p.stop())
          .catch((e: Error) =>
            this.#log.warn({ part: p.name, err: e.message }, "part did not stop after a failed start"),
          );
        throw err;
      }
      this.#running.push(p);
    }
  }

  /** The part being stopped now: a stop that hangs can name where. */
  get stoppingPart(): string | undefined {
    return this.#stoppingPart;
  }

  /** Stops everything in reverse; every part is stopped even if one fails, and the first failure is rethrown. */
  async stop(): Promise<void> {
    const running = this.#running.reverse();
    this.#running = [];
    let failed: unknown;
    for (const p of running) {
      this.#stoppingPart = p.name;
      try {
        await p.stop();
      } catch (err) {
        this.#log.warn({ part: p.name, err: (err as Error).message }, "part did not stop cleanly");
        failed ??= err;
      }
    }
    this.#stoppingPart = undefined;
    if (failed) throw failed;
  }
}
