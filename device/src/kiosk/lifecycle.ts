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

/** A part made of two functions, for what needs no class of its own. */
export function part(name: string, start: () => unknown, stop: () => unknown = () => {}): Part {
  return { name, start: async () => void (await start()), stop: async () => void (await stop()) };
}

/**
 * What has been opened and started so far, in order. `stop()` undoes it in
 * reverse; a start that fails half-way is undone the same way by its owner,
 * so nothing is left holding a port, a serial device or the event loop.
 */
export class Lifecycle {
  readonly #log: Logger;
  #running: Part[] = [];

  constructor(log: Logger) {
    this.#log = log;
  }

  /** Opens a store; it is closed when the lifecycle stops, after every part started later. */
  async open<T>(name: string, open: () => Promise<T>, close: (store: T) => Promise<void>): Promise<T> {
    const store = await open();
    this.#running.push(
      part(
        name,
        () => {},
        () => close(store),
      ),
    );
    return store;
  }

  /** Starts `parts` in order. */
  async start(parts: readonly Part[]): Promise<void> {
    for (const p of parts) {
      await p.start();
      this.#running.push(p);
    }
  }

  /** Stops everything in reverse; every part is stopped even if one fails, and the first failure is rethrown. */
  async stop(): Promise<void> {
    const running = this.#running.reverse();
    this.#running = [];
    let failed: unknown;
    for (const p of running) {
      try {
        await p.stop();
      } catch (err) {
        this.#log.warn({ part: p.name, err: (err as Error).message }, "part did not stop cleanly");
        failed ??= err;
      }
    }
    if (failed) throw failed;
  }
}
