import type { Command, OptionValues } from "commander";
import type { Logger } from "pino";
import { EXIT } from "./cli.ts";
import { ConfigError } from "./env.ts";

export interface Service {
  stop(): Promise<void>;
}

/** A started service and the logger it was given (made once its configuration was read). */
export interface Started {
  service: Service;
  log: Logger;
}

/** An error as one line a person can act on: its message (or what a message-less error carries), never a stack. */
export function oneLine(err: unknown): string {
  const e = err as { message?: unknown; code?: unknown; errors?: unknown };
  let text = typeof e?.message === "string" ? e.message : "";
  // e.g. a connect to "localhost" that failed on both ::1 and 127.0.0.1: an AggregateError without a message
  if (!text && Array.isArray(e?.errors)) text = e.errors.map((x) => oneLine(x)).join("; ");
  if (!text && typeof e?.code === "string") text = e.code;
  if (!text) text = String(err);
  return text.replace(/\s*\n\s*/g, "; ").trim();
}

/**
 * Parses the command line with `program` (see `createCommand`: `--help` and
 * `--version` answer and exit 0 without starting anything), then runs the
 * service `start` makes until SIGINT or SIGTERM, stops it cleanly and exits 0.
 *
 * A start that fails is one line on stderr (`<name>: failed to start: <why>`),
 * never a stack trace and never a process left running: the service's
 * `start()` stops what it had started before it rejects, and the process
 * exits whatever else still holds the event loop. The exit code is 2 for a
 * ConfigError (a bad flag, variable or config file: nothing started), 1 otherwise.
 *
 * A signal that arrives while the service is still starting stops it once
 * started. A second signal while stopping changes nothing (under `npm start`
 * a Ctrl-C reaches every process of the group, and the runner then sends
 * SIGTERM too): stop runs once.
 */
export function runService<O extends OptionValues>(program: Command, start: (options: O) => Promise<Started>): void {
  program.parse();
  const name = program.name();
  let stopping = false;
  // `start` may throw before its first await (a bad variable): that is a failed start too.
  const started = Promise.resolve().then(() => start(program.opts<O>()));
  const shutdown = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    started
      .then(({ service, log }) => {
        log.info({ signal }, "stopping");
        return service.stop().catch((err: unknown) => {
          log.error({ err: oneLine(err) }, "stop failed");
          process.exit(EXIT.failed);
        });
      })
      .then(() => process.exit(0));
  };
  process.on("SIGINT", shutdown);
  process.on("SIGTERM", shutdown);
  // Registered before any signal can chain a stop onto `started`, so a failed start is reported first.
  started.catch((err: unknown) => {
    process.stderr.write(`${name}: failed to start: ${oneLine(err)}\n`);
    process.exit(err instanceof ConfigError ? EXIT.usage : EXIT.failed);
  });
}

/**
 * The exit code of a service that asks to be started again (a kiosk's
 * `cmd/reboot`): EX_TEMPFAIL, not 0, so systemd's Restart=on-failure (or any
 * supervisor) starts it again; `npm start`'s runner does so at once, without
 * counting it as a crash.
 */
export const EXIT_RESTART = 75;
