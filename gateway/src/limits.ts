/**
 * What the gateway allows a client before it stops listening to it. Every
 * limit applies on every listener (mqtt, mqtts, wss), before authentication
 * where it can: a hostile client has no credentials to be judged by.
 */

export interface GatewayLimits {
  /**
   * Largest MQTT packet, fixed header included, in bytes. A packet announcing
   * more closes its connection before its payload is read (packet-guard.ts).
   */
  maxPacketBytes: number;
  /** A connection that has not sent CONNECT by then is closed (aedes `connectTimeout`). */
  connectTimeoutMs: number;
  /**
   * New connections accepted per source address per `connectWindowSeconds`;
   * past that, the socket is closed at once, before TLS or MQTT. A venue's
   * kiosks usually share one public address, so this is sized for a whole
   * fleet reconnecting, not for one kiosk.
   */
  connectsPerAddress: number;
  connectWindowSeconds: number;
  /**
   * Password checks (scrypt, ~50 ms each) one source address may have running
   * at once; more wait their turn. A flood of wrong passwords then holds a
   * fixed share of the thread pool, and other addresses' kiosks still get in.
   */
  authChecksPerAddress: number;
  /**
   * Failed password checks per source address per minute. Past that, CONNECTs
   * from the address whose secret is not already verified are refused with
   * CONNACK 3 (server unavailable) without a check, until the minute is over.
   * Kiosks that connected before (their secret verified) still get in.
   */
  authFailuresPerAddress: number;
  /**
   * PUBLISH packets per second per device client. Past that the connection is
   * closed (MQTT 3.1.1 has no negative PUBACK). Services (the cloud bridge,
   * which acks every device) are not limited.
   */
  messagesPerSecond: number;
}

export const DEFAULT_LIMITS: Readonly<GatewayLimits> = {
  maxPacketBytes: 256 * 1024,
  connectTimeoutMs: 10_000,
  connectsPerAddress: 100,
  connectWindowSeconds: 10,
  authChecksPerAddress: 2,
  authFailuresPerAddress: 10,
  messagesPerSecond: 1000,
};

/**
 * Runs at most `limit` tasks at once per key, the rest in arrival order.
 * Keys with nothing running or waiting are forgotten.
 */
export class KeyedSemaphore {
  readonly #limit: number;
  readonly #slots = new Map<string, { running: number; waiting: (() => void)[] }>();

  constructor(limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`limit must be a positive integer, not ${limit}`);
    this.#limit = limit;
  }

  /** Keys with work running or waiting (for tests). */
  get size(): number {
    return this.#slots.size;
  }

  async run<T>(key: string, work: () => Promise<T>): Promise<T> {
    let slot = this.#slots.get(key);
    if (!slot) {
      slot = { running: 0, waiting: [] };
      this.#slots.set(key, slot);
    }
    if (slot.running >= this.#limit) {
      const s = slot;
      await new Promise<void>((resolve) => s.waiting.push(resolve));
    } else {
      slot.running++;
    }
    try {
      return await work();
    } finally {
      // The slot passes straight to the next waiter, or is given back.
      const next = slot.waiting.shift();
      if (next) next();
      else if (--slot.running === 0) this.#slots.delete(key);
    }
  }
}
