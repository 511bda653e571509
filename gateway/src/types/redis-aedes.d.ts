// What the gateway uses of aedes-persistence-redis, which ships no types.
declare module "aedes-persistence-redis" {
  import type { Redis } from "ioredis";

  export interface RedisPersistenceOptions {
    /** An existing connection (the gateway makes its own, with its key prefix). */
    conn: Redis;
    /** Offline messages delivered on CONNECT at most (default 1000). */
    maxSessionDelivery?: number;
  }
  /** aedes 1.x's async persistence (aedes-persistence's callback layer over it). */
  export interface RedisPersistence {
    setup(broker: unknown): Promise<void>;
    destroy(): Promise<void>;
    /** Stored Wills of brokers not in `brokers` (id → last heartbeat); aedes publishes what it yields. */
    streamWill(brokers?: Record<string, number>): import("node:stream").Readable;
    /** Deletes the Will of client `id` stored by broker `brokerId` (without a callback: a promise). */
    delWill(client: { id: string; brokerId: string }): Promise<unknown>;
  }
  export default function createPersistence(options: RedisPersistenceOptions): RedisPersistence;
}
