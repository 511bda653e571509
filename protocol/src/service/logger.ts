/**
 * The one way a PayLane process makes its logger: JSON lines (for a log
 * shipper, a supervisor, a test) unless stdout is a terminal, where a person
 * reads them, pretty-printed by pino-pretty.
 */
import { createRequire } from "node:module";
import { type Level, type Logger, pino } from "pino";
import { z } from "zod";

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** `LOG_LEVEL` as every service reads it, for its environment schema. */
export const LogLevelSchema = z
  .enum(LOG_LEVELS, { error: `expected one of ${LOG_LEVELS.join(", ")}` })
  .default("info")
  .describe("how much to log");

export interface LoggerOptions {
  /** Pretty lines instead of JSON; default: when stdout is a terminal. */
  pretty?: boolean;
}

export function createLogger(name: string, level: LogLevel | Level = "info", o: LoggerOptions = {}): Logger {
  const options = { name, level, timestamp: pino.stdTimeFunctions.isoTime };
  // Synchronous writes: the last lines before an exit are not lost, and nothing is
  // left to flush at exit. (pino's default is asynchronous and flushes stdout in an
  // exit hook, which sonic-boom 4 retries forever once the reader is gone:
  // `paylane-gateway | head -4` never exited after SIGINT.)
  if (!(o.pretty ?? process.stdout.isTTY === true)) return pino(options, pino.destination({ dest: 1, sync: true }));
  // In this thread, not a transport worker: a kiosk's memory is scarce. Loaded only
  // for a terminal: under systemd or a supervisor it would cost ~7 MB for nothing.
  const pretty = createRequire(import.meta.url)("pino-pretty") as typeof import("pino-pretty");
  return pino(options, pretty({ sync: true, colorize: true, translateTime: "SYS:HH:MM:ss.l", ignore: "pid,hostname" }));
}
