import type { Logger } from "pino";

export interface Service {
  stop(): Promise<void>;
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
 * Runs a service until SIGINT or SIGTERM, then stops it cleanly and exits 0.
 *
 * A start that fails is one line on stderr (`<name>: failed to start: <why>`)
 * and exit code 1, never a stack trace and never a process left running: the
 * service's `start()` stops what it had started before it rejects, and the
 * process exits whatever else still holds the event loop.
 *
 * With `usage`, `--help` (or `-h`) prints it and exits 0 without starting.
 *
 * A signal that arrives while the service is still starting stops it once
 * started. A second signal while stopping changes nothing (under `npm start`
 * a Ctrl-C reaches every process of the group, and the runner then sends
 * SIGTERM too): stop runs once.
 */
export function runService(log: Logger, start: () => Promise<Service>, usage?: string): void {
  const name = (log.bindings() as { name?: string }).name ?? "service";
  if (usage !== undefined && process.argv.slice(2).some((a) => a === "--help" || a === "-h")) {
    process.stdout.write(`${usage.trim()}\n`);
    process.exit(0);
  }
  let stopping = false;
  const started = start();
  const shutdown = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "stopping");
    started
      .then((service) => service.stop())
      .then(
        () => process.exit(0),
        (err: unknown) => {
          log.error({ err: oneLine(err) }, "stop failed");
          process.exit(1);
        },
      );
  };
  process.on("SIGINT", shutdown);
  process.on("SIGTERM", shutdown);
  // Registered before any signal can chain a stop onto `started`, so a failed start is reported first.
  started.catch((err: unknown) => {
    process.stderr.write(`${name}: failed to start: ${oneLine(err)}\n`);
    process.exit(1);
  });
}
