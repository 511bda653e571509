/**
 * The benchmark's other processes. The kiosks (load generator) and the
 * gateway each run in a child process of their own, as they do in a real
 * site, so the cloud process under test does not share its event loop with
 * the load that drives it.
 */
import { type ChildProcess, fork } from "node:child_process";

/** A TypeScript module run in its own Node process, spoken to over IPC. */
export class Child<In, Out extends { type: string }> {
  readonly #proc: ChildProcess;
  readonly #exited: Promise<void>;
  #listeners = new Set<(m: Out) => void>();
  #failure: Error | undefined;

  constructor(
    readonly name: string,
    file: URL,
  ) {
    this.#proc = fork(file, { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
    this.#proc.on("message", (m) => {
      for (const l of [...this.#listeners]) l(m as Out);
    });
    this.#exited = new Promise((resolve) => {
      this.#proc.once("exit", (code, signal) => {
        this.#failure ??= new Error(`${name} process exited (${signal ?? `code ${code}`})`);
        for (const l of [...this.#listeners]) l({ type: "exit" } as Out);
        resolve();
      });
    });
  }

  get pid(): number | undefined {
    return this.#proc.pid;
  }

  send(message: In): void {
    this.#proc.send(message as object);
  }

  on(listener: (m: Out) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The next message of `type`; rejects if the child reports an error or exits first. */
  next<T extends Out["type"]>(type: T): Promise<Extract<Out, { type: T }>> {
    return new Promise((resolve, reject) => {
      const off = this.on((m) => {
        const err = m as unknown as { type: string; message?: string };
        if (m.type === type) {
          off();
          resolve(m as Extract<Out, { type: T }>);
        } else if (err.type === "error" || err.type === "exit") {
          off();
          reject(new Error(`${this.name}: ${err.message ?? this.#failure?.message}`));
        }
      });
    });
  }

  /** Asks the child to finish (it exits by itself after `stop`), or kills it after `graceMs`. */
  async stop(stopMessage: In, graceMs = 5000): Promise<void> {
    if (this.#proc.exitCode !== null || this.#proc.signalCode !== null) return;
    if (this.#proc.connected) this.send(stopMessage);
    const timer = setTimeout(() => this.#proc.kill("SIGKILL"), graceMs);
    await this.#exited;
    clearTimeout(timer);
  }
}

/** For the child side: report an uncaught failure to the parent, then exit. */
export function reportFailures(): void {
  const fail = (err: unknown) => {
    const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
    process.exitCode = 1;
    // After the parent has gone (a failure while stopping), the channel is closed: say it here instead.
    if (!process.connected) {
      process.stderr.write(`bench child failed after its parent left: ${message}\n`);
      return;
    }
    process.send?.({ type: "error", message });
    process.disconnect?.();
  };
  process.on("uncaughtException", fail);
  process.on("unhandledRejection", fail);
}
