/**
 * The `terminal` section of the kiosk config and the terminal it asks for.
 * Errors name the field (`terminal.password: expected 6 digits, like "000000"`);
 * neither errors nor logs ever show the password.
 */
import { validate } from "@paylane/protocol";
import type { Logger } from "pino";
import { z } from "zod";
import type { Timers } from "../../timers.ts";
import type { PaymentTerminal, TerminalState } from "./terminal.ts";
import { ZVT_PORT, ZvtTerminal } from "./zvt.ts";
import { ZVT_SERIAL_BAUD } from "./zvt-serial.ts";
import { ZvtSimulator } from "./zvt-simulator.ts";

const timeoutMs = z
  .number({ error: "expected a number of milliseconds" })
  .int({ error: "expected a whole number of milliseconds" })
  .min(5000, { error: "expected at least 5000 ms: card, PIN and the issuer's answer take time" })
  .max(600_000, { error: "expected at most 600000 ms (10 minutes)" })
  .default(60_000);

/** The terminal's ECR password; never logged. */
const password = z
  .string({ error: 'expected 6 digits in quotes, like "000000"' })
  .regex(/^\d{6}$/, { error: 'expected 6 digits, like "000000"' })
  .default("000000");

/** How often a lost terminal is tried again: within 2 s of its return, its state is right again. */
export const TERMINAL_RECONNECT_MS = 1000;

/**
 * `none`: no card payments (the default). `zvt`: a terminal speaking ZVT on
 * TCP (`host`, port 20007). `zvt-serial`: ZVT on a serial line (`path`, e.g.
 * /dev/ttyUSB0, 9600 baud by default). `zvt-simulator`: the daemon runs a
 * simulated ZVT terminal in-process and drives it with the same driver
 * (demos, `npm start`).
 */
export const TerminalConfigSchema = z
  .discriminatedUnion(
    "type",
    [
      z.strictObject({ type: z.literal("none") }),
      z.strictObject({
        type: z.literal("zvt"),
        host: z
          .string({ error: "expected the terminal's host name or IP address" })
          .min(1, { error: "expected the terminal's host name or IP address" }),
        port: z
          .number({ error: "expected a TCP port 1..65535" })
          .int({ error: "expected a TCP port 1..65535" })
          .min(1, { error: "expected a TCP port 1..65535" })
          .max(65_535, { error: "expected a TCP port 1..65535" })
          .default(ZVT_PORT),
        password,
        timeoutMs,
      }),
      z.strictObject({
        type: z.literal("zvt-serial"),
        path: z
          .string({ error: 'expected the serial device path, like "/dev/ttyUSB0"' })
          .startsWith("/", { error: 'expected an absolute device path, like "/dev/ttyUSB0"' }),
        baudRate: z
          .number({ error: "expected a baud rate such as 9600" })
          .int({ error: "expected a whole baud rate such as 9600" })
          .min(1200, { error: "expected a baud rate of at least 1200 (ZVT terminals use 9600)" })
          .max(115_200, { error: "expected a baud rate of at most 115200 (ZVT terminals use 9600)" })
          .default(ZVT_SERIAL_BAUD),
        password,
        timeoutMs,
      }),
      z.strictObject({ type: z.literal("zvt-simulator"), timeoutMs }),
    ],
    {
      error: 'expected terminal.type "none", "zvt" (with a host), "zvt-serial" (with a path) or "zvt-simulator"',
    },
  )
  .default({ type: "none" });

export type TerminalConfig = z.infer<typeof TerminalConfigSchema>;
export type TerminalConfigInput = z.input<typeof TerminalConfigSchema>;

export class TerminalConfigError extends Error {
  override name = "TerminalConfigError";
}

/** Validates a `terminal` config section; `at` is where it sits in the config file. */
export function parseTerminalConfig(json: unknown, at = "terminal"): TerminalConfig {
  const result = validate(TerminalConfigSchema, json, at);
  if (!result.ok) throw new TerminalConfigError(result.error);
  return result.value;
}

export interface TerminalDeps {
  timers: Timers;
  logger: Logger;
  /** Told of each change of the terminal's state (ready, busy, disconnected). */
  onStateChange?: (state: TerminalState) => void;
}

/** The terminal as /healthz, the status page and telemetry show it. */
export interface TerminalHealth {
  type: Exclude<TerminalConfig["type"], "none">;
  state: TerminalState;
  /** Where it is reached: "host:port" or the serial device path. */
  link: string;
  /** Link attempts after the first (a terminal that keeps going away shows here). */
  reconnects: number;
}

export interface TerminalSetup {
  /** Undefined for type "none": the kiosk offers no card payment. */
  terminal: PaymentTerminal | undefined;
  /** Null for type "none". Read on each call: never stale. */
  health(): TerminalHealth | null;
  /** The in-process terminal for type "zvt-simulator", for the daemon (and local API) to drive. */
  simulator: ZvtSimulator | undefined;
  /** Closes the driver, then the simulator. */
  close(): Promise<void>;
}

/** Builds the terminal `config` asks for (validated here too, so errors name the field). */
export async function createTerminal(config: TerminalConfigInput, deps: TerminalDeps): Promise<TerminalSetup> {
  const c = parseTerminalConfig(config);
  const logger = deps.logger.child({ component: "terminal" });
  // The daemon's terminal keeps its link up, so its state is right between charges too (hot-plug).
  const common = { timers: deps.timers, logger, reconnectMs: TERMINAL_RECONNECT_MS, onStateChange: deps.onStateChange };
  const linked = (terminal: ZvtTerminal): ZvtTerminal => {
    // Failures are logged by the driver and retried every TERMINAL_RECONNECT_MS.
    terminal.connect().catch(() => {});
    return terminal;
  };
  const health = (type: TerminalHealth["type"], terminal: ZvtTerminal) => (): TerminalHealth => ({
    type,
    state: terminal.state,
    link: terminal.where,
    reconnects: terminal.counters.reconnects,
  });
  switch (c.type) {
    case "none":
      logger.info("no payment terminal configured: card payments are off");
      return { terminal: undefined, simulator: undefined, health: () => null, close: async () => {} };
    case "zvt": {
      logger.info({ host: c.host, port: c.port, timeoutMs: c.timeoutMs }, "payment terminal: ZVT over TCP");
      const terminal = linked(
        new ZvtTerminal({ host: c.host, port: c.port, password: c.password, timeoutMs: c.timeoutMs, ...common }),
      );
      return { terminal, simulator: undefined, health: health(c.type, terminal), close: () => terminal.close() };
    }
    case "zvt-serial": {
      logger.info(
        { path: c.path, baudRate: c.baudRate, timeoutMs: c.timeoutMs },
        "payment terminal: ZVT on a serial line",
      );
      const serial = { path: c.path, baudRate: c.baudRate };
      const terminal = linked(new ZvtTerminal({ serial, password: c.password, timeoutMs: c.timeoutMs, ...common }));
      return { terminal, simulator: undefined, health: health(c.type, terminal), close: () => terminal.close() };
    }
    case "zvt-simulator": {
      const simulator = new ZvtSimulator({ logger: logger.child({ peer: "zvt-simulator" }) });
      const { host, port } = await simulator.start();
      logger.info({ host, port }, "payment terminal: simulated ZVT terminal in-process");
      const terminal = linked(new ZvtTerminal({ host, port, timeoutMs: c.timeoutMs, ...common }));
      return {
        terminal,
        simulator,
        health: health(c.type, terminal),
        close: async () => {
          await terminal.close();
          await simulator.stop();
        },
      };
    }
  }
}
