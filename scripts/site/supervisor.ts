/**
 * Keeps the site's processes running, the way a small init does: children are
 * started one after another, each waited for until it answers; a child that
 * dies is reported in one line and handled by its policy; `stop()` ends them
 * in reverse start order, each waited for, so a kiosk says its clean goodbye
 * while the broker it says it to is still up.
 *
 * Why not a supervisor library: pm2 and forever are daemons that outlive the
 * terminal; concurrently and foreman start and stop everything at once (the
 * kiosks' goodbye would race the broker's exit) and know no readiness. What
 * `npm start` needs is this file.
 *
 * Exits are read from the `exit` event's `(code, signal)`, recorded when they
 * happen: a child killed by a signal has a null `exitCode`, and a listener
 * added after the exit would wait forever (the runner once hung so).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { realTimers, type Timers } from "@paylane/protocol";
import { EXIT_RESTART } from "@paylane/protocol/service";

/**
 * What a crash of a running child does: `restart` it (with backoff, a bounded
 * number of times), or `stop-site` (everything else depends on it).
 */
export type CrashPolicy = "restart" | "stop-site";

export interface ChildSpec {
  /** As people say it: `gateway`, `cloud`, `kiosk k1`. */
  name: string;
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  cwd?: string;
  policy: CrashPolicy;
  /** Resolves once the child answers (its /healthz); rejects on `signal` (it exited) or its own deadline. */
  ready(signal: AbortSignal): Promise<void>;
}

export interface SupervisorOptions {
  /** One line for a person (stderr under `npm start`). */
  report(line: string): void;
  /** A running child died and its policy, or its restart budget, says the site cannot go on. */
  onFatal(): void;
  timers?: Timers;
  /** Milliseconds, for the restart budget (the same clock as `timers`). */
  now?: () => number;
  /** The first restart's delay; each next one doubles, up to `maxBackoffMs`. */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** At most this many restarts of one child within `restartWindowMs`; one more crash stops the site. */
  maxRestarts?: number;
  restartWindowMs?: number;
  /** How long `stop()` waits for a child after SIGTERM before it sends SIGKILL. */
  stopGraceMs?: number;
}

type State = "starting" | "running" | "restarting" | "stopped";

/** How a process ended: its exit code, or the signal that ended it. */
export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export const describeExit = (e: Exit): string => (e.signal ? `signal ${e.signal}` : `exit code ${e.code}`);

class Supervised {
  state: State = "starting";
  process: ChildProcess | undefined;
  exited: Promise<Exit> = Promise.resolve({ code: null, signal: null });
  /** When each recent restart happened (ms), for the restart budget. */
  restarts: number[] = [];
  timer: unknown;
  readyAbort: AbortController | undefined;

  constructor(readonly spec: ChildSpec) {}

  get alive(): boolean {
    return this.process !== undefined && this.process.exitCode === null && this.process.signalCode === null;
  }
}

export class Supervisor {
  readonly #o: Required<Omit<SupervisorOptions, "timers">> & { timers: Timers };
  readonly #children: Supervised[] = [];
  #stopping = false;

  constructor(o: SupervisorOptions) {
    this.#o = {
      timers: realTimers,
      now: Date.now,
      backoffMs: 500,
      maxBackoffMs: 8000,
      maxRestarts: 5,
      restartWindowMs: 60_000,
      stopGraceMs: 15_000,
      ...o,
    };
  }

  /** The live pid of each child, by name (a restarted child has a new one). */
  pids(): Record<string, number | undefined> {
    return Object.fromEntries(this.#children.map((c) => [c.spec.name, c.alive ? c.process?.pid : undefined]));
  }

  /**
   * Starts `spec` and resolves once it is ready. A child that exits or never
   * answers while starting rejects this (a failed start is not restarted: it
   * would fail the same way); the caller stops the site.
   */
  async start(spec: ChildSpec): Promise<void> {
    if (this.#stopping) throw new Error(`stopped before starting ${spec.name}`);
    const child = new Supervised(spec);
    this.#children.push(child);
    await this.#launch(child);
    child.state = "running";
  }

  /** Starts again every child that was stopped on purpose (`kill <pid>`), in start order. */
  async startStopped(): Promise<void> {
    for (const child of this.#children) {
      if (child.state !== "stopped" || this.#stopping) continue;
      child.state = "starting";
      try {
        await this.#launch(child);
        child.state = "running";
        this.#o.report(`${child.spec.name} is back (pid ${child.process?.pid})`);
      } catch (err) {
        if (this.#stopping) return;
        child.state = "stopped";
        this.#o.report(`${child.spec.name} did not start again: ${(err as Error).message}`);
      }
    }
  }

  /** Stops every child, newest first, each with SIGTERM and waited for (SIGKILL after the grace). */
  async stop(): Promise<void> {
    this.#stopping = true;
    for (const child of this.#children) {
      this.#o.timers.clearTimeout(child.timer);
      child.readyAbort?.abort();
    }
    for (const child of [...this.#children].reverse()) {
      if (!child.alive) continue;
      child.process!.kill("SIGTERM");
      const grace = new Promise<"late">((resolve) => {
        child.timer = this.#o.timers.setTimeout(() => resolve("late"), this.#o.stopGraceMs);
      });
      if ((await Promise.race([child.exited, grace])) === "late") {
        this.#o.report(`${child.spec.name} did not stop within ${this.#o.stopGraceMs / 1000} s; killing it`);
        child.process!.kill("SIGKILL");
        await child.exited;
      }
      this.#o.timers.clearTimeout(child.timer);
    }
  }

  /** A second Ctrl-C: whatever still runs is killed now. */
  kill(): void {
    this.#stopping = true;
    for (const child of this.#children) {
      this.#o.timers.clearTimeout(child.timer);
      if (child.alive) child.process!.kill("SIGKILL");
    }
  }

  /** Spawns the child and waits for it to be ready; rejects if it exits first. */
  async #launch(child: Supervised): Promise<void> {
    const { spec } = child;
    const proc = spawn(spec.command, spec.args, {
      cwd: spec.cwd,
      env: spec.env,
      stdio: ["ignore", "inherit", "inherit"],
      // Its own process group: a Ctrl-C in the terminal reaches the runner only, which stops
      // the parts in order instead of all of them at once.
      detached: true,
    });
    child.process = proc;
    child.exited = new Promise((resolve) => proc.once("exit", (code, signal) => resolve({ code, signal })));
    // A spawn that fails (no such command) ends in an `exit` too; the error itself is said here.
    proc.once("error", (err) => this.#o.report(`${spec.name}: ${err.message}`));
    const abort = new AbortController();
    child.readyAbort = abort;
    const exitedEarly = child.exited.then((exit) => {
      abort.abort();
      return exit;
    });
    try {
      await spec.ready(abort.signal);
    } catch (err) {
      if (!child.alive) {
        const exit = await exitedEarly;
        throw Object.assign(new Error(`${spec.name} exited while starting (${describeExit(exit)})`), { exit });
      }
      // Never answered: killed, unless the site is stopping (then stop() ends it in its turn, cleanly).
      if (!this.#stopping) proc.kill("SIGKILL");
      throw err;
    } finally {
      child.readyAbort = undefined;
    }
    void exitedEarly.then((exit) => this.#onExit(child, proc, exit));
  }

  #onExit(child: Supervised, proc: ChildProcess, exit: Exit): void {
    if (this.#stopping || child.process !== proc || child.state !== "running") return;
    const { name, policy } = child.spec;
    // A service exits 0 only after a clean stop that someone asked for (`kill <pid>`): it stays stopped.
    if (exit.code === 0) {
      if (policy === "stop-site") {
        this.#o.report(`${name} stopped (exit code 0); stopping the site`);
        this.#o.onFatal();
        return;
      }
      child.state = "stopped";
      this.#o.report(
        `${name} stopped (exit code 0); the site goes on without it (kill -USR2 ${process.pid} starts it again)`,
      );
      return;
    }
    if (exit.code === EXIT_RESTART && policy !== "stop-site") {
      // It asked for this (a kiosk's cmd/reboot): not a crash, no backoff, no budget spent.
      this.#o.report(`${name} restarts as it asked (exit code ${EXIT_RESTART})`);
      child.state = "restarting";
      this.#relaunch(child, 0);
      return;
    }
    this.#crashed(child, describeExit(exit));
  }

  /** `why`: how it ended (`signal SIGKILL`, `exit code 1`), or why it was not taken as back. */
  #crashed(child: Supervised, why: string): void {
    const { name, policy } = child.spec;
    if (policy === "stop-site") {
      this.#o.report(`${name} died (${why}); stopping the site`);
      this.#o.onFatal();
      return;
    }
    const now = this.#o.now();
    child.restarts = child.restarts.filter((at) => now - at < this.#o.restartWindowMs);
    if (child.restarts.length >= this.#o.maxRestarts) {
      this.#o.report(
        `${name} died (${why}) after ${child.restarts.length} restarts within ${this.#o.restartWindowMs / 1000} s; stopping the site`,
      );
      this.#o.onFatal();
      return;
    }
    const delay = Math.min(this.#o.backoffMs * 2 ** child.restarts.length, this.#o.maxBackoffMs);
    child.restarts.push(now);
    child.state = "restarting";
    this.#o.report(
      `${name} died (${why}); restarting in ${delay / 1000} s (restart ${child.restarts.length} of ${this.#o.maxRestarts} allowed within ${this.#o.restartWindowMs / 1000} s)`,
    );
    this.#relaunch(child, delay);
  }

  /** Starts `child` again after `delay` ms; one that does not come back counts as a crash. */
  #relaunch(child: Supervised, delay: number): void {
    const { name } = child.spec;
    child.timer = this.#o.timers.setTimeout(() => {
      child.timer = undefined;
      if (this.#stopping) return;
      this.#launch(child).then(
        () => {
          child.state = "running";
          this.#o.report(`${name} is back (pid ${child.process?.pid})`);
        },
        (err: Error & { exit?: Exit }) => {
          if (this.#stopping) return;
          // Not back: one more crash against the same budget.
          this.#crashed(child, err.exit ? describeExit(err.exit) : err.message);
        },
      );
    }, delay);
  }
}
