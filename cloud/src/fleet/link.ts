/**
 * What the fleet parts need of the bridge: its decoded fleet messages and a
 * way to publish as the cloud. The Bridge is one; tests may hand in another.
 */
import type { EventEmitter } from "node:events";
import type { DeviceAddress } from "@paylane/protocol";
import type { FleetEvents } from "../bridge/bridge.ts";

export interface FleetLink {
  readonly fleet: EventEmitter<FleetEvents>;
  readonly connected: boolean;
  publish(topic: string, payload: Buffer | string, opts: { qos: 0 | 1; retain?: boolean }): Promise<void>;
}

export const deviceKey = (d: DeviceAddress) => `${d.site}/${d.device}`;

/**
 * Runs each device's work one after the other, in arrival order (a command's
 * `accepted` must be written before its `done`), and different devices' work
 * side by side. A failure is logged by the caller's `onError` and never stops
 * the device's later work.
 */
export class PerDeviceQueue {
  readonly #tails = new Map<string, Promise<void>>();
  readonly #onError: (err: Error) => void;

  constructor(onError: (err: Error) => void) {
    this.#onError = onError;
  }

  run(device: DeviceAddress, work: () => Promise<void>): Promise<void> {
    const key = deviceKey(device);
    const tail = (this.#tails.get(key) ?? Promise.resolve()).then(work).catch((err: Error) => this.#onError(err));
    this.#tails.set(key, tail);
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return tail;
  }

  /** Resolves once every device's queued work is done. */
  async idle(): Promise<void> {
    while (this.#tails.size > 0) await Promise.all(this.#tails.values());
  }
}
