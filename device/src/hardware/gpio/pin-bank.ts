/**
 * What every GPIO backend does the same way, so each backend file keeps only
 * how it reaches its lines: the lines it has handed out (each given back
 * once, all of them on stop()), and an input's one watcher told of the level
 * changes its edge reports.
 */
import {
  type BackendState,
  type Edge,
  edgeMatches,
  type GpioBackend,
  type GpioBackendKind,
  type InputLine,
  type InputOptions,
  type Level,
  type OutputLine,
  type OutputOptions,
  type PinSpec,
} from "./backend.ts";
import { resolveSysfsLine, SYSFS_GPIO_ROOT } from "./pins.ts";

/**
 * An input's last known level and its one watcher. A backend that learns
 * levels by reading (polls, Firmata reports) calls `see()` with each one;
 * only a change the edge reports reaches the watcher.
 */
export class EdgeWatch {
  #level: Level;
  #watcher: ((level: Level) => void) | undefined;

  constructor(
    readonly edge: Edge,
    level: Level,
  ) {
    this.#level = level;
  }

  get level(): Level {
    return this.#level;
  }

  /** One watcher per line: a second call replaces the first. */
  watch(cb: (level: Level) => void): void {
    this.#watcher = cb;
  }

  unwatch(): void {
    this.#watcher = undefined;
  }

  /** The line reads `level` now; returns whether that is a change. */
  see(level: Level): boolean {
    if (level === this.#level) return false;
    this.#level = level;
    this.tell(level);
    return true;
  }

  /** The line changed to `level` (the caller already knows it is a change): the watcher hears it if the edge reports it. */
  tell(level: Level): void {
    this.#level = level;
    if (this.#watcher && edgeMatches(this.edge, level)) this.#watcher(level);
  }
}

/**
 * A backend's pin bookkeeping: `hold()` registers how to give a line back and
 * returns a release that runs once; stop() releases every line still held.
 * Backends without a connection of their own are always "ok".
 */
export abstract class PinBank implements GpioBackend {
  abstract readonly kind: GpioBackendKind;
  readonly #held = new Set<() => void>();

  get state(): BackendState {
    return "ok";
  }

  get lastError(): string | undefined {
    return undefined;
  }

  abstract describe(): string;
  abstract resolve(spec: PinSpec, field: string): Promise<number>;
  abstract output(line: number, options: OutputOptions): Promise<OutputLine>;
  abstract input(line: number, edge: Edge, options?: InputOptions): Promise<InputLine>;

  async start(): Promise<void> {}

  async stop(): Promise<void> {
    this.releaseAll();
  }

  /** Tracks a handed-out line; the returned release gives it back once, and only while held. */
  protected hold(release: () => void): () => void {
    const once = () => {
      if (this.#held.delete(once)) release();
    };
    this.#held.add(once);
    return once;
  }

  protected releaseAll(): void {
    for (const release of [...this.#held]) release();
  }
}

/** The kernel's GPIO numbering (onoff and plain sysfs): `{ bcm }` and `{ global }` resolved against the chips under `root`. */
export abstract class SysfsPinBank extends PinBank {
  protected readonly root: string;

  constructor(root: string | undefined) {
    super();
    this.root = root ?? SYSFS_GPIO_ROOT;
  }

  resolve(spec: PinSpec, field: string): Promise<number> {
    return resolveSysfsLine(spec, field, this.root);
  }
}
