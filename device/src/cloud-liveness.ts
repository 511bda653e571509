/**
 * Whether the cloud is alive behind a broker session that is up. A hung
 * cloud (SIGSTOP, a stuck event loop, a dead database pool) keeps its TCP
 * session to the broker for a keepalive and a half, so its retained STATE
 * still says online; only its silence shows. While the cloud's STATE is
 * online and advertises heartbeats, every heartbeat or ack proves it alive;
 * when neither comes for the window, the cloud is taken as unreachable and
 * the kiosk decides offline at once instead of waiting out timeouts.
 *
 * The window is the configured one, but never shorter than two heartbeat
 * periods of the cloud: a shorter one would flap on a single late heartbeat.
 */
import type { Timers } from "./timers.ts";

export interface CloudLivenessOptions {
  /** How long without a heartbeat or an ack before the cloud counts as unreachable. */
  windowMs: number;
  timers: Timers;
  /** Fires when `alive` changes (never while not watching). */
  onChange: (alive: boolean) => void;
}

export class CloudLiveness {
  readonly #timers: Timers;
  readonly #onChange: (alive: boolean) => void;
  #windowMs: number;
  /** The cloud's own heartbeat period while watching; 0 when not watching. */
  #heartbeatMs = 0;
  #alive = true;
  #timer: unknown;

  constructor(o: CloudLivenessOptions) {
    this.#timers = o.timers;
    this.#onChange = o.onChange;
    this.#windowMs = positive(o.windowMs);
  }

  /** False only while watching and the cloud has been silent for the window. */
  get alive(): boolean {
    return this.#alive;
  }

  get watching(): boolean {
    return this.#heartbeatMs > 0;
  }

  /** The window in force: the configured one, or two heartbeats if that is longer. */
  get effectiveWindowMs(): number {
    return Math.max(this.#windowMs, 2 * this.#heartbeatMs);
  }

  /**
   * The cloud's STATE says online with heartbeats every `heartbeatSeconds`:
   * the window starts now (a retained STATE may be old; only what arrives
   * from here on counts). Counts as hearing from it.
   */
  watch(heartbeatSeconds: number): void {
    this.#heartbeatMs = positive(heartbeatSeconds * 1000);
    this.heard();
  }

  /**
   * Not watching: the broker is down, the cloud said offline, or it sends no
   * heartbeats (a cloud older than them). Alive again, silently: whoever
   * stops watching reports the link's state itself.
   */
  unwatch(): void {
    this.#timers.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#heartbeatMs = 0;
    this.#alive = true;
  }

  /** A heartbeat or an ack: the cloud is alive; the window starts again. */
  heard(): void {
    if (!this.watching) return;
    this.#arm();
    if (!this.#alive) {
      this.#alive = true;
      this.#onChange(true);
    }
  }

  /** A new window (desired configuration, live); a running one restarts with it. */
  setWindowMs(ms: number): void {
    this.#windowMs = positive(ms);
    if (this.watching && this.#alive) this.#arm();
  }

  #arm(): void {
    this.#timers.clearTimeout(this.#timer);
    this.#timer = this.#timers.setTimeout(() => {
      this.#timer = undefined;
      if (!this.watching || !this.#alive) return;
      this.#alive = false;
      this.#onChange(false);
    }, this.effectiveWindowMs);
  }
}

function positive(ms: number): number {
  if (!Number.isFinite(ms) || ms <= 0)
    throw new Error(`cloud liveness window must be a positive number of ms, not ${ms}`);
  return ms;
}
