/**
 * The kiosk's GPIO roles as one lifecycle unit, built from a validated `gpio`
 * config: resolves every pin, starts the relay first (de-energised before
 * anything else), reports per-role health for telemetry and runs a self-test.
 */
import type { Logger } from "pino";
import type { Timers } from "../../timers.ts";
import {
  type BackendState,
  type BoardLink,
  describePin,
  type GpioBackend,
  GpioConfigError,
  type Level,
} from "./backend.ts";
import { CallStaffButton } from "./button.ts";
import { Buzzer } from "./buzzer.ts";
import { type GpioConfig, ROLE_ORDER } from "./config.ts";
import { Relay } from "./relay.ts";
import { physical, type RoleHealth, type RoleName } from "./role.ts";
import { type LevelChange, SimulatedGpio } from "./simulated.ts";
import { type LedPattern, StatusLed } from "./status-led.ts";

export interface GpioRolesOptions {
  config: GpioConfig;
  backend: GpioBackend;
  timers: Timers;
  logger: Logger;
  now?: () => Date;
  /** A press of the call-staff button (debounced, once per press): raise an alert to ops. */
  onCallStaff?: () => void;
  /** Passed to the relay; default true. */
  deenergiseOnExit?: boolean;
  /** The backend's health changed (a board lost or back, a line's holder died or restarted): push it now. */
  onChange?: () => void;
}

export interface GpioRoleHealth extends RoleHealth {
  /** The backend's line number (sysfs global number, chip × 1000 + offset, or Firmata pin); absent if it never resolved. */
  line?: number;
  /** Where the line is, where the backend says it another way than the number (chardev: `gpiochip0 17`). */
  at?: string;
}

export interface GpioHealth {
  backend: string;
  state: BackendState;
  lastError?: string;
  /** A Firmata board's link: connected, or reconnecting with the attempts so far. */
  board?: BoardLink;
  roles: Partial<Record<RoleName, GpioRoleHealth>>;
}

export interface SelfTestResult {
  ok: boolean;
  detail: string;
}

export type GpioSelfTest = Partial<Record<RoleName, SelfTestResult>>;

export interface SelfTestOptions {
  /** Pulse the relay (opens the door!) for its configured pulseMs. Default false: only its level is checked. */
  pulseRelay?: boolean;
}

export class GpioRoles {
  readonly #o: GpioRolesOptions;
  readonly #log: Logger;
  readonly #lines: Partial<Record<RoleName, number>> = {};
  readonly #startErrors: Partial<Record<RoleName, string>> = {};
  #relay: Relay | undefined;
  #led: StatusLed | undefined;
  #buzzer: Buzzer | undefined;
  #button: CallStaffButton | undefined;
  #started = false;
  #built = false;
  #unwatch: (() => void) | undefined;

  constructor(o: GpioRolesOptions) {
    this.#o = o;
    this.#log = o.logger.child({ component: "gpio" });
  }

  get backend(): GpioBackend {
    return this.#o.backend;
  }

  get relay(): Relay | undefined {
    return this.#relay;
  }
  get led(): StatusLed | undefined {
    return this.#led;
  }
  get buzzer(): Buzzer | undefined {
    return this.#buzzer;
  }
  get button(): CallStaffButton | undefined {
    return this.#button;
  }

  /** Resolved line numbers of the configured roles (after start). */
  get lines(): Readonly<Partial<Record<RoleName, number>>> {
    return { ...this.#lines };
  }

  /**
   * Throws GpioConfigError when the config cannot work here (a pin that does not
   * resolve, two roles on one line): a human must fix it. A backend or line that
   * fails otherwise is logged and reported as disconnected; the kiosk runs without it.
   */
  async start(): Promise<void> {
    if (this.#started) return;
    const { config, backend } = this.#o;
    for (const role of ROLE_ORDER) delete this.#startErrors[role];
    this.#unwatch ??= backend.watchState?.((event) => this.#backendChanged(event.restored));
    try {
      await backend.start();
    } catch (err) {
      // A board that comes back later (johnny-five reopens it) starts the roles then.
      this.#log.error({ err, backend: backend.describe() }, "GPIO backend did not start; roles are disconnected");
      for (const role of ROLE_ORDER) if (config[role]) this.#startErrors[role] = (err as Error).message;
      this.#started = true;
      return;
    }
    this.#started = true;
    await this.#startRoles();
  }

  async #startRoles(): Promise<void> {
    const { backend } = this.#o;
    for (const role of ROLE_ORDER) delete this.#startErrors[role];
    try {
      await this.#resolveLines();
    } catch (err) {
      this.#started = false;
      this.#unwatch?.();
      this.#unwatch = undefined;
      await backend.stop();
      throw err;
    }
    this.#build();
    this.#built = true;
    // Relay first: after a crash it may still be energised, and nothing else should happen before it is not.
    for (const role of ROLE_ORDER) {
      const unit = this.#unit(role);
      if (!unit) continue;
      try {
        await unit.start();
      } catch (err) {
        if (err instanceof GpioConfigError) {
          await this.stop();
          throw new GpioConfigError(`gpio.${role}.line: ${err.message}`);
        }
        this.#startErrors[role] = (err as Error).message;
        this.#log.error({ err, role, line: this.#lines[role] }, "GPIO role did not start");
      }
    }
    this.#log.info({ backend: backend.describe(), lines: this.#lines }, "GPIO roles started");
  }

  async stop(): Promise<void> {
    if (!this.#started) return;
    this.#started = false;
    this.#built = false;
    this.#unwatch?.();
    this.#unwatch = undefined;
    for (const role of ROLE_ORDER) {
      try {
        await this.#unit(role)?.stop();
      } catch (err) {
        this.#log.error({ err, role }, "GPIO role did not stop cleanly");
      }
    }
    await this.#o.backend.stop();
  }

  /** A card was read. No-op without a buzzer. */
  beep(): void {
    this.#buzzer?.beep();
  }

  /** A tap was refused. No-op without a buzzer. */
  refuse(): void {
    this.#buzzer?.refuse();
  }

  /** Unlocks the door / turnstile for the configured pulse. False without a relay or when it could not be energised. */
  unlock(): boolean {
    return this.#relay?.pulse() ?? false;
  }

  /** Shows a status pattern. No-op without an LED. */
  status(pattern: LedPattern): void {
    this.#led?.set(pattern);
  }

  /** Per-role state for telemetry; only configured roles appear. */
  health(): GpioHealth {
    const { backend } = this.#o;
    const roles: Partial<Record<RoleName, GpioRoleHealth>> = {};
    for (const role of ROLE_ORDER) {
      if (!this.#o.config[role]) continue;
      const line = this.#lines[role];
      const own = this.#unit(role)?.health ?? { state: "disconnected" as const };
      // A line whose holder died is degraded until it is held again, whatever the role last saw.
      const fault = line === undefined ? undefined : backend.lineFault?.(line);
      const lastError =
        backend.state === "disconnected" ? backend.lastError : (fault ?? own.lastError ?? this.#startErrors[role]);
      const at = line === undefined ? undefined : backend.describeLine?.(line);
      roles[role] = {
        state: backend.state === "disconnected" ? "disconnected" : fault && own.state === "ok" ? "degraded" : own.state,
        ...(lastError === undefined ? {} : { lastError }),
        ...(line === undefined ? {} : { line }),
        ...(at === undefined ? {} : { at }),
      };
    }
    const board = backend.board;
    return {
      backend: backend.describe(),
      state: backend.state,
      ...(backend.lastError === undefined ? {} : { lastError: backend.lastError }),
      ...(board ? { board } : {}),
      roles,
    };
  }

  /**
   * Exercises each configured role: the LED blinks (on/off twice, 600 ms), the buzzer
   * chirps (30 ms), the button is read (it must read released), and the relay is
   * checked to read de-energised. The relay is NOT pulsed unless `pulseRelay` is set,
   * because a pulse opens the door; with it, the relay is pulsed for its pulseMs and must
   * read energised during and de-energised after.
   */
  async selfTest(o: SelfTestOptions = {}): Promise<GpioSelfTest> {
    const result: GpioSelfTest = {};
    const tests: Promise<void>[] = [];
    if (this.#o.config.led) {
      const led = this.#led;
      tests.push(
        (led?.health.state === "ok" ? led.blinkTest() : Promise.resolve(this.#notRunning("led"))).then((r) => {
          result.led = r;
        }),
      );
    }
    if (this.#o.config.buzzer) {
      const buzzer = this.#buzzer;
      tests.push(
        (buzzer?.health.state === "ok"
          ? buzzer.play("chirp").then((played) => ({ ok: played, detail: played ? "chirped" : "chirp cut short" }))
          : Promise.resolve(this.#notRunning("buzzer"))
        ).then((r) => {
          result.buzzer = r;
        }),
      );
    }
    if (this.#o.config.button) result.button = this.#testButton();
    if (this.#o.config.relay) {
      tests.push(
        this.#testRelay(o.pulseRelay ?? false).then((r) => {
          result.relay = r;
        }),
      );
    }
    await Promise.all(tests);
    return result;
  }

  /** Controls for the simulated backend (the `npm start` site, tests); throws on any other backend. */
  panel(): SimulatedPanel {
    const { backend, config } = this.#o;
    if (!(backend instanceof SimulatedGpio))
      throw new Error(`panel() needs the simulated backend, not ${backend.kind}`);
    return new SimulatedPanel(backend, config, this.#lines);
  }

  /** The backend's health changed; lines re-acquired after a reconnect get their roles' state again. */
  #backendChanged(restored: boolean): void {
    if (restored && this.#started) {
      if (this.#built) {
        // The relay first, as at start.
        this.#relay?.reassert();
        this.#led?.reassert();
        this.#buzzer?.reassert();
        this.#log.info("GPIO roles re-applied on the reopened board");
      } else {
        this.#startRoles().then(
          () => this.#o.onChange?.(),
          (err: Error) => this.#log.error({ err }, "GPIO roles could not start on the board that came back"),
        );
      }
    }
    this.#o.onChange?.();
  }

  async #resolveLines(): Promise<void> {
    const byLine = new Map<number, RoleName>();
    for (const role of ROLE_ORDER) {
      const spec = this.#o.config[role]?.line;
      if (!spec) continue;
      const line = await this.#o.backend.resolve(spec, `gpio.${role}.line`);
      const other = byLine.get(line);
      if (other) {
        throw new GpioConfigError(
          `gpio.${role}.line: ${describePin(spec)} is line ${line}, already used by gpio.${other}.line`,
        );
      }
      byLine.set(line, role);
      this.#lines[role] = line;
    }
  }

  #build(): void {
    const { config, backend, timers, logger } = this.#o;
    const at = (role: RoleName) => this.#lines[role] as number;
    if (config.relay) {
      this.#relay = new Relay({
        backend,
        timers,
        logger,
        line: at("relay"),
        activeLow: config.relay.activeLow,
        pulseMs: config.relay.pulseMs,
        now: this.#o.now,
        deenergiseOnExit: this.#o.deenergiseOnExit,
      });
    }
    if (config.led)
      this.#led = new StatusLed({ backend, timers, logger, line: at("led"), activeLow: config.led.activeLow });
    if (config.buzzer) {
      this.#buzzer = new Buzzer({ backend, timers, logger, line: at("buzzer"), activeLow: config.buzzer.activeLow });
    }
    if (config.button) {
      this.#button = new CallStaffButton({
        backend,
        timers,
        logger,
        line: at("button"),
        activeLow: config.button.activeLow,
        debounceMs: config.button.debounceMs,
        onPress: () => this.#o.onCallStaff?.(),
      });
    }
  }

  #unit(role: RoleName): Relay | StatusLed | Buzzer | CallStaffButton | undefined {
    return { relay: this.#relay, led: this.#led, buzzer: this.#buzzer, button: this.#button }[role];
  }

  #notRunning(role: RoleName): SelfTestResult {
    return { ok: false, detail: this.health().roles[role]?.lastError ?? "not started" };
  }

  #testButton(): SelfTestResult {
    const button = this.#button;
    if (button?.health.state !== "ok") return this.#notRunning("button");
    try {
      return button.readPressed()
        ? { ok: false, detail: "reads pressed: held, stuck, or activeLow set wrong" }
        : { ok: true, detail: "reads released" };
    } catch (err) {
      return { ok: false, detail: (err as Error).message };
    }
  }

  async #testRelay(pulse: boolean): Promise<SelfTestResult> {
    const relay = this.#relay;
    if (relay?.health.state !== "ok") return this.#notRunning("relay");
    if (!pulse) {
      const on = relay.readEnergised();
      // A check-in's unlock may be in progress: then the line must read energised, else de-energised.
      if (relay.energised) {
        return on === false
          ? { ok: false, detail: "unlocking, but reads de-energised" }
          : { ok: true, detail: "unlocking (a check-in's pulse); reads energised" };
      }
      if (on === true) return { ok: false, detail: "not pulsed, but reads energised" };
      return {
        ok: true,
        detail: `not pulsed (pulseRelay: true pulses it); ${on === false ? "reads de-energised" : "no read-back"}`,
      };
    }
    if (!relay.pulse()) return { ok: false, detail: `pulse failed: ${relay.health.lastError ?? ""}` };
    const during = relay.readEnergised();
    await relay.whenDeenergised();
    const after = relay.readEnergised();
    if (during === false || after === true) {
      return {
        ok: false,
        detail: `pulsed, but read back ${during ? "on" : "off"} during and ${after ? "on" : "off"} after`,
      };
    }
    return { ok: true, detail: during === undefined ? "pulsed (no read-back)" : "pulsed, read back on then off" };
  }
}

/** Drives and reads the simulated lines by role, in on/off terms (active levels applied). */
export class SimulatedPanel {
  constructor(
    private readonly sim: SimulatedGpio,
    private readonly config: GpioConfig,
    private readonly lines: Partial<Record<RoleName, number>>,
  ) {}

  pressButton(): void {
    this.sim.drive(this.#line("button"), physical(true, this.config.button?.activeLow ?? true));
  }

  releaseButton(): void {
    this.sim.drive(this.#line("button"), physical(false, this.config.button?.activeLow ?? true));
  }

  /** Calls `fn` whenever any line changes level; returns the unsubscribe. */
  onChange(fn: () => void): () => void {
    return this.sim.onChange(() => fn());
  }

  relayEnergised(): boolean {
    return this.#on("relay", this.config.relay?.activeLow);
  }

  ledLit(): boolean {
    return this.#on("led", this.config.led?.activeLow);
  }

  buzzerSounding(): boolean {
    return this.#on("buzzer", this.config.buzzer?.activeLow);
  }

  /** A role's level changes as on/off, oldest first. */
  history(role: RoleName): Array<{ at: Date; on: boolean; by: LevelChange["by"] }> {
    const activeLow = this.config[role]?.activeLow ?? false;
    return this.sim
      .history(this.#line(role))
      .map((c) => ({ at: c.at, on: c.level === physical(true, activeLow), by: c.by }));
  }

  #on(role: RoleName, activeLow: boolean | undefined): boolean {
    const level: Level | undefined = this.sim.level(this.#line(role));
    return level !== undefined && level === physical(true, activeLow ?? false);
  }

  #line(role: RoleName): number {
    const line = this.lines[role];
    if (line === undefined) throw new Error(`gpio.${role} is not configured (or roles are not started)`);
    return line;
  }
}
