/**
 * Progress of the long byte-moving phases (decompressing, copying, writing,
 * verifying): a bar on stderr when a person watches it (a TTY), else one line
 * per finished phase, so a CI log or a pipe gets a readable record instead of
 * carriage-return noise.
 */
import cliProgress from "cli-progress";

export interface Phase {
  /** `bytes` more are done. */
  advance(bytes: number): void;
  /** The phase ended well: the bar is completed, or its line is printed. */
  finish(): void;
  /** The phase ended in an error: the bar is taken down so the error line stands alone. */
  abort(): void;
}

export interface Progress {
  /** Starts a phase of `total` bytes (unknown: 0), labelled like "copying". */
  phase(label: string, total: number): Phase;
}

export const MiB = 1024 * 1024;
export const mib = (bytes: number) => (bytes / MiB).toFixed(bytes < 10 * MiB ? 1 : 0);

/** Progress on `stream` (default stderr): bars on a TTY, a line a phase otherwise. */
export function createProgress(stream: NodeJS.WriteStream = process.stderr, now = () => Date.now()): Progress {
  return stream.isTTY ? new BarProgress(stream) : new LineProgress(stream, now);
}

/** No output at all (library callers and tests that do not look at it). */
export const silentProgress: Progress = {
  phase: () => ({ advance() {}, finish() {}, abort() {} }),
};

class BarProgress implements Progress {
  constructor(private readonly stream: NodeJS.WriteStream) {}

  phase(label: string, total: number): Phase {
    const bar = new cliProgress.SingleBar(
      {
        stream: this.stream,
        format: `${label.padEnd(13)} [{bar}] {percentage}% | {done}/{size} MiB | {rate} MiB/s | ETA {eta_formatted}`,
        hideCursor: true,
        barsize: 30,
        etaBuffer: 50,
        fps: 5,
      },
      cliProgress.Presets.shades_classic,
    );
    const started = Date.now();
    let value = 0;
    const payload = () => ({
      done: mib(value),
      size: total > 0 ? mib(total) : "?",
      rate: (value / MiB / Math.max((Date.now() - started) / 1000, 0.001)).toFixed(1),
    });
    bar.start(Math.max(total, 1), 0, payload());
    return {
      advance(bytes) {
        value += bytes;
        bar.update(Math.min(value, Math.max(total, 1)), payload());
      },
      finish() {
        bar.update(Math.max(total, 1), payload());
        bar.stop();
      },
      abort() {
        bar.stop();
      },
    };
  }
}

class LineProgress implements Progress {
  constructor(
    private readonly stream: NodeJS.WritableStream,
    private readonly now: () => number,
  ) {}

  phase(label: string, _total: number): Phase {
    const started = this.now();
    let value = 0;
    return {
      advance(bytes) {
        value += bytes;
      },
      finish: () => {
        const seconds = (this.now() - started) / 1000;
        this.stream.write(`${label}: ${mib(value)} MiB in ${seconds.toFixed(1)} s\n`);
      },
      abort() {},
    };
  }
}
