/**
 * Pulls the site's member list from the cloud with the device's own
 * credentials and stores it in the replica. A failed pull leaves the replica
 * as it was: the kiosk keeps deciding from what it has.
 */
import { type DeviceAddress, MemberSnapshotSchema, validate } from "@paylane/protocol";
import {
  BrokenCircuitError,
  ConsecutiveBreaker,
  circuitBreaker,
  ExponentialBackoff,
  fullJitterGenerator,
  handleAll,
  retry,
  wrap,
} from "cockatiel";
import type { Logger } from "pino";
import type { Replica } from "./replica.ts";
import type { Timers } from "./timers.ts";

export interface ReplicaSyncOptions {
  address: DeviceAddress;
  secret: string;
  cloudUrl: string;
  replica: Replica;
  logger: Logger;
  timers: Timers;
  now: () => Date;
  refreshMs: number;
  requestTimeoutMs?: number;
  onSynced?: (version: number) => void;
}

export class ReplicaSync {
  readonly #o: ReplicaSyncOptions;
  #timer: unknown;
  #running: Promise<void> | undefined;
  #stopped = true;
  /**
   * A short retry inside a circuit breaker: after 5 failed pulls in a row the
   * cloud is left alone for 30 s (calls fail at once, the replica stays as it
   * is), then one trial pull decides whether to close the circuit again.
   */
  readonly #policy = wrap(
    circuitBreaker(handleAll, { halfOpenAfter: 30_000, breaker: new ConsecutiveBreaker(5) }),
    retry(handleAll, {
      maxAttempts: 2,
      backoff: new ExponentialBackoff({ initialDelay: 200, maxDelay: 2000, generator: fullJitterGenerator }),
    }),
  );
  lastError: string | undefined;

  constructor(opts: ReplicaSyncOptions) {
    this.#o = opts;
  }

  start(): void {
    this.#stopped = false;
    void this.syncNow();
  }

  stop(): void {
    this.#stopped = true;
    this.#o.timers.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Pulls now (coalescing with a pull already running) and reschedules the next one. */
  syncNow(): Promise<void> {
    this.#running ??= this.#pull().finally(() => {
      this.#running = undefined;
      this.#schedule();
    });
    return this.#running;
  }

  #schedule(): void {
    this.#o.timers.clearTimeout(this.#timer);
    if (this.#stopped) return;
    this.#timer = this.#o.timers.setTimeout(() => void this.syncNow(), this.#o.refreshMs);
  }

  async #pull(): Promise<void> {
    const { address, secret, cloudUrl, replica, logger, now } = this.#o;
    const url = new URL(`/api/v1/sites/${encodeURIComponent(address.site)}/members`, cloudUrl);
    const auth = `Basic ${Buffer.from(`${address.site}/${address.device}:${secret}`).toString("base64")}`;
    try {
      const snapshot = await this.#policy.execute(async () => {
        const res = await fetch(url, {
          headers: { authorization: auth, accept: "application/json" },
          signal: AbortSignal.timeout(this.#o.requestTimeoutMs ?? 5000),
        });
        if (!res.ok) throw new Error(`GET ${url.pathname} answered ${res.status}`);
        const parsed = validate(MemberSnapshotSchema, await res.json());
        if (!parsed.ok) throw new Error(`member snapshot refused: ${parsed.error}`);
        return parsed.value;
      });
      const replaced = await replica.replace(snapshot, now());
      this.lastError = undefined;
      if (replaced) {
        logger.info({ version: snapshot.version, members: snapshot.members.length }, "member replica synced");
        this.#o.onSynced?.(snapshot.version);
      }
    } catch (err) {
      this.lastError =
        err instanceof BrokenCircuitError
          ? "cloud unreachable (circuit open after repeated failures; retrying in 30 s)"
          : (err as Error).message;
      logger.warn({ err: this.lastError }, "member replica sync failed; keeping the current replica");
    }
  }
}
