/**
 * Pulls the site's member list (and, on kiosks that take payments, its
 * wallets, prices and offline limits) from the cloud with the device's own
 * credentials and stores them in the replicas. A failed pull leaves a
 * replica as it was: the kiosk keeps deciding from what it has.
 */
import type { Logger } from "pino";
import { answered, type CloudClient } from "./cloud/cloud-client.ts";
import type { WalletReplica } from "./payments/wallet-replica.ts";
import type { Replica } from "./replica.ts";
import type { Timers } from "./timers.ts";

export interface ReplicaSyncOptions {
  /** Pulls go through its `pull` lane: retries and a circuit breaker (after 5 failed pulls, 30 s of quiet). */
  cloud: CloudClient;
  replica: Replica;
  /** Pulled after the members, when present. */
  wallets?: WalletReplica;
  logger: Logger;
  timers: Timers;
  now: () => Date;
  refreshMs: number;
  onSynced?: (version: number) => void;
}

export class ReplicaSync {
  readonly #o: ReplicaSyncOptions;
  #timer: unknown;
  #running: Promise<void> | undefined;
  /** The pull queued behind the running one (syncNow during a pull). */
  #next: Promise<void> | undefined;
  #stopped = true;
  lastError: string | undefined;
  /** The last pull that answered: a full snapshot or a delta, how many members it carried, and whether it applied. */
  lastSync: { full: boolean; members: number; version: number; applied: boolean } | undefined;

  constructor(opts: ReplicaSyncOptions) {
    this.#o = opts;
  }

  start(): void {
    this.#stopped = false;
    void this.syncNow();
  }

  /** No further pulls; resolves once a pull in progress has ended (before the replicas may close). */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#o.timers.clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.idle();
  }

  /** Resolves once no pull is running (the daemon waits for it before closing the replicas). */
  async idle(): Promise<void> {
    await this.#next?.catch(() => {});
    await this.#running?.catch(() => {});
  }

  /**
   * Pulls now and reschedules the next one; resolves once a pull that started after this call has
   * ended. A pull already running may have read the cloud before the change the caller is after
   * (a block set just now), so it is not enough: one more follows it, shared by every caller meanwhile.
   */
  syncNow(): Promise<void> {
    if (this.#running) {
      this.#next ??= this.#running
        .catch(() => {})
        .then(() => {
          this.#next = undefined;
          return this.#stopped ? undefined : this.syncNow();
        });
      return this.#next;
    }
    // The periodic refresh is this pull now: rescheduled when it ends, not fired into it.
    this.#o.timers.clearTimeout(this.#timer);
    this.#running = this.#pull().finally(() => {
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
    this.lastError = (err as Error).message;
    this.#o.logger.warn({ err: this.lastError }, `${what} sync failed; keeping the current replica`);
  }

  async #pullWallets(wallets: WalletReplica): Promise<void> {
    const { cloud, logger, now } = this.#o;
    try {
      const held = (await wallets.info()).version;
      const sync = answered(await cloud.call("wallets", { query: { since: held ?? undefined } }));
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
    const { cloud, replica, logger, now } = this.#o;
    try {
      // A delta from the version we hold (the cloud answers with a full snapshot when it cannot).
      const held = (await replica.info()).version;
      const snapshot = answered(await cloud.call("members", { query: { since: held > 0 ? held : undefined } }));
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
