import type { Logger } from "pino";

export interface Service {
  stop(): Promise<void>;
}

/**
 * Runs a service until SIGINT or SIGTERM, then stops it cleanly. A start
 * failure is one fatal log line and exit code 1, never a stack trace.
 */
export function runService(log: Logger, start: () => Promise<Service>): void {
  start().then(
    (service) => {
      const shutdown = (signal: string) => {
        log.info({ signal }, "stopping");
        service.stop().then(
          () => process.exit(0),
          (err: unknown) => {
            log.error({ err: (err as Error).message }, "stop failed");
            process.exit(1);
          },
        );
      };
      process.once("SIGINT", () => shutdown("SIGINT"));
      process.once("SIGTERM", () => shutdown("SIGTERM"));
    },
    (err: unknown) => {
      log.fatal({ err: (err as Error).message }, "failed to start");
      process.exitCode = 1;
    },
  );
}
