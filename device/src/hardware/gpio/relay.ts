/**
 * The door / turnstile relay: pulse() energises it for a bounded time; a
 * pulse during a pulse extends it. It is de-energised on stop, on a normal or
 * exception exit, and FIRST THING on start.
 *
 * Why a crash cannot leave it energised past the next start: a GPIO output
 * is a latch, so after kill -9, an OOM kill or a hang the line stays where the
 * last write left it, and no code of ours can run. What we control is the
 * next start: start() acquires the line already at the inactive level
 * (sysfs/onoff export it with direction "high"/"low", which the kernel applies
 * without passing through the other level) and writes inactive again before
 * anything else happens, and GpioRoles starts the relay before the other roles.
 * So the longest it can stay energised is until the daemon is restarted
 * (systemd Restart=always), and the daemon is the only thing that pulses it.
 * Power loss, a wedged kernel or a daemon that never comes back are not
 * covered by software: wire the strike or turnstile so that the safe state is
 * the de-energised one, and add a hardware timer (a monostable / timed relay
 * module) if the site needs a hard upper bound.
 */
import type { Logger } from "pino";
import type { Timers } from "../../timers.ts";
import type { GpioBackend } from "./backend.ts";
import { physical, type RoleHealth, RoleOutput, RoleStatus } from "./role.ts";

export const RELAY_PULSE_MS = { min: 100, max: 30_000, default: 3000 } as const;

export interface RelayOptions {
  backend: GpioBackend;
  line: number;
  timers: Timers;
  logger: Logger;
  /** The injected clock, for extending a running pulse; same clock as `timers`. */
  now?: () => Date;
  /** Default false: energised while the line is high. Most opto-isolated relay boards are active-low. */
  activeLow?: boolean;
  /** Default pulse length, RELAY_PULSE_MS.min..max; default 3000. */
  pulseMs?: number;
  /** Default true: de-energise synchronously in process.on("exit") (normal exit, uncaught exception). */
  deenergiseOnExit?: boolean;
}

export function checkPulseMs(ms: number, what = "relay pulse"): number {
  if (!Number.isInteger(ms) || ms < RELAY_PULSE_MS.min || ms > RELAY_PULSE_MS.max) {
    throw new RangeError(`${what}: expected an integer ${RELAY_PULSE_MS.min}..${RELAY_PULSE_MS.max} ms, got ${ms}`);
  }
  return ms;
}

export class Relay {
  readonly #o: RelayOptions;
  readonly #status = new RoleStatus();
  readonly #out: RoleOutput;
  readonly #log: Logger;
  readonly #now: () => Date;
  readonly #pulseMs: number;
  #timer: unknown;
  /** When the running pulse ends (ms since epoch on the injected clock); undefined when de-energised. */
  #until: number | undefined;
  readonly #waiters: Array<() => void> = [];
  readonly #onExit = () => {
    this.#out.set(false);
  };

  constructor(o: RelayOptions) {
    this.#o = o;
    this.#pulseMs = checkPulseMs(o.pulseMs ?? RELAY_PULSE_MS.default, "relay pulseMs");
    this.#log = o.logger.child({ role: "relay", line: o.line });
    this.#out = new RoleOutput(o.activeLow ?? false, this.#status, this.#log);
    this.#now = o.now ?? (() => new Date());
  }

  get health(): RoleHealth {
    return this.#status.health;
  }

  get energised(): boolean {
    return this.#until !== undefined;
  }

  /** Reads the line back: whether it is energised; undefined where the backend cannot read outputs. */
  readEnergised(): boolean | undefined {
    return this.#out.isOn();
  }

  async start(): Promise<void> {
    if (this.#out.line) return;
    try {
      const line = await this.#out.open(this.#o.backend, this.#o.line);
      // Again, explicitly: a backend that cannot export at a level (a Firmata board) gets it here.
      line.write(physical(false, this.#out.activeLow));
    } catch (err) {
      this.#status.failed(err, "disconnected");
      this.#log.error({ err }, "relay line could not be driven to de-energised");
      throw err;
    }
    if (this.#o.deenergiseOnExit ?? true) process.on("exit", this.#onExit);
  }

  async stop(): Promise<void> {
    process.off("exit", this.#onExit);
    this.#end();
    this.#out.close();
  }

  /**
   * Energises for `ms` (default: the configured pulse). During a pulse it extends the
   * end to now + ms if that is later; it never shortens a running pulse. Returns false
   * when the relay could not be energised (not started, or the write failed).
   */
  pulse(ms: number = this.#pulseMs): boolean {
    checkPulseMs(ms);
    if (!this.#out.line) {
      this.#log.warn("relay pulse asked while not started");
      return false;
    }
    const until = this.#now().getTime() + ms;
    if (this.#until !== undefined && this.#until >= until) return true;
    if (!this.#out.set(true)) {
      this.#end();
      return false;
    }
    this.#o.timers.clearTimeout(this.#timer);
    this.#timer = this.#o.timers.setTimeout(() => this.#end(), until - this.#now().getTime());
    this.#until = until;
    this.#log.info({ ms }, "relay pulse");
    return true;
  }

  /**
   * The line was set up again (a reopened board): de-energised, and a pulse cut short by the
   * loss is not resumed (nobody knows any more whether the person is still at the door).
   */
  reassert(): void {
    this.#end();
  }

  /** Ends a pulse now. */
  deenergise(): void {
    this.#end();
  }

  /** Resolves when no pulse is running (at once if none is). */
  whenDeenergised(): Promise<void> {
    if (this.#until === undefined) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  #end(): void {
    this.#o.timers.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#until = undefined;
    if (this.#out.line && !this.#out.set(false)) {
      this.#log.error({ lastError: this.health.lastError }, "relay could not be de-energised");
    }
    for (const resolve of this.#waiters.splice(0)) resolve();
  }
}
