/**
 * Pulls the site's member list (and, on kiosks that take payments, its
 * wallets, prices and offline limits) from the cloud with the device's own
 * credentials and stores them in the replicas. A failed pull leaves a
 * replica as it was: the kiosk keeps deciding from what it has.
 */
import { type DeviceAddress, MemberSyncSchema, validate, WalletSyncSchema } from "@paylane/protocol";
import {
  BrokenCircuitError,
  ConsecutiveBreaker,
  circuitBreaker,
  ExponentialBackoff,
  fullJitterGenerator,
  handleAll,
  type IBackoffFactory,
  type IRetryBackoffContext,
  retry,
  wrap,
} from "cockatiel";
import type { Logger } from "pino";
import type { z } from "zod";
import { deviceAuthorization } from "./cloud-auth.ts";
import type { WalletReplica } from "./payments/wallet-replica.ts";
import type { Replica } from "./replica.ts";
import type { Timers } from "./timers.ts";

export interface ReplicaSyncOptions {
  address: DeviceAddress;
  secret: string;
  cloudUrl: string;
  replica: Replica;
  /** Pulled after the members, when present. */
  wallets?: WalletReplica;
  logger: Logger;
  timers: Timers;
  now: () => Date;
  refreshMs: number;
  requestTimeoutMs?: number;
  onSynced?: (version: number) => void;
  /** Pause between the retries of one pull (default: full-jitter exponential, 200 ms..2 s). Tests pass none. */
  retryBackoff?: IBackoffFactory<IRetryBackoffContext<unknown>>;
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
  readonly #policy;
  lastError: string | undefined;
  /** The last pull that answered: a full snapshot or a delta, how many members it carried, and whether it applied. */
  lastSync: { full: boolean; members: number; version: number; applied: boolean } | undefined;

  constructor(opts: ReplicaSyncOptions) {
    this.#o = opts;
    this.#policy = wrap(
      circuitBreaker(handleAll, { halfOpenAfter: 30_000, breaker: new ConsecutiveBreaker(5) }),
      retry(handleAll, {
        maxAttempts: 2,
        backoff:
          opts.retryBackoff ??
          new ExponentialBackoff({ initialDelay: 200, maxDelay: 2000, generator: fullJitterGenerator }),
      }),
    );
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

  /** Resolves once no pull is running (the daemon waits for it before closing the replicas). */
  async idle(): Promise<void> {
    await this.#running?.catch(() => {});
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
    await this.#pullMembers();
    if (this.#o.wallets && !this.#stopped) await this.#pullWallets(this.#o.wallets);
  }

  #failed(err: unknown, what: string): void {
    this.lastError =
      err instanceof BrokenCircuitError
        ? "cloud unreachable (circuit open after repeated failures; retrying in 30 s)"
        : (err as Error).message;
    this.#o.logger.warn({ err: this.lastError }, `${what} sync failed; keeping the current replica`);
  }

  /** One GET of a sync document, through the retries and the circuit breaker, validated. */
  #fetch<S extends z.ZodType>(url: URL, schema: S, what: string): Promise<z.infer<S>> {
    const { address, secret, requestTimeoutMs } = this.#o;
    return this.#policy.execute(async () => {
      const res = await fetch(url, {
        headers: { authorization: deviceAuthorization(address, secret), accept: "application/json" },
        signal: AbortSignal.timeout(requestTimeoutMs ?? 5000),
      });
      if (!res.ok) throw new Error(`GET ${url.pathname} answered ${res.status}`);
      const parsed = validate(schema, await res.json());
      if (!parsed.ok) throw new Error(`${what} sync refused: ${parsed.error}`);
      return parsed.value;
    });
  }

  async #pullWallets(wallets: WalletReplica): Promise<void> {
    const { address, cloudUrl, logger, now } = this.#o;
    const url = new URL(`/api/v1/sites/${encodeURIComponent(address.site)}/wallets`, cloudUrl);
    try {
      const held = (await wallets.info()).version;
      if (held !== null) url.searchParams.set("since", String(held));
      const sync = await this.#fetch(url, WalletSyncSchema, "wallet");
      const applied = await wallets.apply(sync, held, now());
      this.lastError = undefined;
      if (applied && sync.wallets.length > 0) {
        logger.info(
          { full: sync.full, wallets: sync.wallets.length, version: sync.version, applied },
          "wallet replica synced",
        );
      }
    } catch (err) {
      this.#failed(err, "wallet replica");
    }
  }

  async #pullMembers(): Promise<void> {
    const { address, cloudUrl, replica, logger, now } = this.#o;
    const url = new URL(`/api/v1/sites/${encodeURIComponent(address.site)}/members`, cloudUrl);
    try {
      // A delta from the version we hold (the cloud answers with a full snapshot when it cannot).
      const held = (await replica.info()).version;
      if (held > 0) url.searchParams.set("since", String(held));
      const snapshot = await this.#fetch(url, MemberSyncSchema, "member");
      if (snapshot.full !== false && snapshot.version < held) {
        logger.warn(
          { held, cloud: snapshot.version },
          "the cloud's member versions went back: following its full snapshot",
        );
      }
      const applied =
        snapshot.full === false
          ? await replica.applyDelta(snapshot, now())
          : await replica.replace(snapshot, now(), { followCloudBack: snapshot.version < held });
      this.lastError = undefined;
      this.lastSync = {
        full: snapshot.full !== false,
        members: snapshot.full === false ? snapshot.changes.length : snapshot.members.length,
        version: snapshot.version,
        applied,
      };
      if (applied) {
        logger.info(this.lastSync, "member replica synced");
        this.#o.onSynced?.(snapshot.version);
      }
    } catch (err) {
      this.#failed(err, "member replica");
    }
  }
}
