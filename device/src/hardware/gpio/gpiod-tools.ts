/**
 * The `Chardev` interface over Debian's gpiod tools (libgpiod 1.6: gpiodetect,
 * gpioinfo, gpiofind, gpioget, gpioset, gpiomon), run as processes: nothing
 * native to build on a Pi, and the same tools ops use to check the wiring.
 *
 * - An output is a `gpioset --mode=wait` that holds the line while it runs.
 *   It waits for a line on its stdin, so it also exits (and lets go) when the
 *   daemon dies: its stdin pipe closes. A new level is a new gpioset: the old
 *   one is ended first, since the kernel gives a line to one holder at a time.
 * - An input is a `gpiomon` on both edges, its level read first with gpioget.
 * - A hold counts once `gpioinfo` shows the line used by the tool, so a busy
 *   line or a wrong chip is an error at once, not a silent no-op.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { Timers } from "../../timers.ts";
import type { Level } from "./backend.ts";
import type { Bias, Chardev, ChardevChip, ChardevLineRef, ChardevMonitor, ChardevOutput } from "./chardev.ts";

export interface GpiodToolsOptions {
  timers: Timers;
  /** Folder of the tools; default: found on PATH. */
  binDir?: string;
  /** How long a started gpioset/gpiomon may take to show up as the line's holder. */
  holdTimeoutMs?: number;
  /** How long a one-shot tool (gpiodetect, gpioget…) may run. */
  toolTimeoutMs?: number;
}

/** One line of `gpioinfo`: `\tline  17:     "GPIO17"   "gpioset"  output  active-high [used]`. */
export interface GpioinfoLine {
  offset: number;
  name: string | undefined;
  /** undefined: unused; "kernel" for a line the kernel holds without naming itself. */
  consumer: string | undefined;
  direction: "input" | "output";
}

export function parseGpiodetect(out: string): ChardevChip[] {
  const chips: ChardevChip[] = [];
  for (const line of out.split("\n")) {
    const m = /^(gpiochip\d+) \[(.*)\] \((\d+) lines?\)$/.exec(line.trim());
    if (m) chips.push({ name: m[1] as string, label: m[2] as string, lines: Number(m[3]) });
  }
  return chips;
}

export function parseGpioinfo(out: string): GpioinfoLine[] {
  const lines: GpioinfoLine[] = [];
  for (const line of out.split("\n")) {
    const m = /^\s*line\s+(\d+):\s+("([^"]*)"|unnamed)\s+("([^"]*)"|unused|kernel)\s+(input|output)\b/.exec(line);
    if (!m) continue;
    lines.push({
      offset: Number(m[1]),
      name: m[2] === "unnamed" ? undefined : m[3],
      consumer: m[4] === "unused" ? undefined : (m[5] ?? m[4]),
      direction: m[6] as "input" | "output",
    });
  }
  return lines;
}

export class GpiodTools implements Chardev {
  readonly #o: GpiodToolsOptions;

  constructor(o: GpiodToolsOptions) {
    this.#o = o;
  }

  describe(): string {
    return this.#o.binDir ? `gpiod tools in ${this.#o.binDir}` : "gpiod tools";
  }

  async chips(): Promise<ChardevChip[]> {
    return parseGpiodetect(await this.#run("gpiodetect", []));
  }

  async find(name: string): Promise<ChardevLineRef | undefined> {
    let out: string;
    try {
      out = await this.#run("gpiofind", [name]);
    } catch (err) {
      // gpiofind says nothing and exits 1 when no line has the name.
      if ((err as ToolError).code === 1) return undefined;
      throw err;
    }
    const m = /^(gpiochip\d+) (\d+)$/.exec(out.trim());
    return m ? { chip: m[1] as string, offset: Number(m[2]) } : undefined;
  }

  async info(chip: string): Promise<GpioinfoLine[]> {
    return parseGpioinfo(await this.#run("gpioinfo", [chip]));
  }

  async get(line: ChardevLineRef, bias: Bias): Promise<Level> {
    const out = (await this.#run("gpioget", ["-B", bias, line.chip, String(line.offset)])).trim();
    if (out !== "0" && out !== "1") throw new Error(`gpioget ${line.chip} ${line.offset} printed "${out}"`);
    return out === "1" ? 1 : 0;
  }

  async output(line: ChardevLineRef, level: Level, onEnd: (err: Error) => void): Promise<ChardevOutput> {
    const gpioset = (l: Level) => this.#hold("gpioset", ["--mode=wait", line.chip, `${line.offset}=${l}`], line, onEnd);
    let proc = await gpioset(level);
    // One step at a time, in the order asked: a release during a level change ends the new gpioset, not the old.
    let queue = Promise.resolve();
    const then = (step: () => Promise<void>) => {
      const run = queue.then(step);
      queue = run.catch(() => {});
      return run;
    };
    return {
      set: (next) =>
        then(async () => {
          await this.#end(proc);
          proc = await gpioset(next);
        }),
      release: () => then(() => this.#end(proc)),
    };
  }

  async monitor(
    line: ChardevLineRef,
    bias: Bias,
    onEdge: (level: Level) => void,
    onEnd: (err: Error) => void,
  ): Promise<ChardevMonitor> {
    // -b: line-buffered, or events would wait in a pipe buffer; -F %e: 1 rising, 0 falling.
    const proc = await this.#hold(
      "gpiomon",
      ["-b", "-F", "%e", "-B", bias, line.chip, String(line.offset)],
      line,
      onEnd,
    );
    createInterface({ input: proc.stdout as NodeJS.ReadableStream }).on("line", (text) => {
      const t = text.trim();
      if (t === "1" || t === "0") onEdge(t === "1" ? 1 : 0);
    });
    return { release: () => this.#end(proc) };
  }

  #bin(tool: string): string {
    return this.#o.binDir ? join(this.#o.binDir, tool) : tool;
  }

  /** Runs a one-shot tool; its stderr (gpiod's own one line) is the error message. */
  #run(tool: string, args: string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      execFile(this.#bin(tool), args, { timeout: this.#o.toolTimeoutMs ?? 5000 }, (err, stdout, stderr) => {
        if (!err) return resolve(stdout);
        reject(toolError(tool, err, stderr));
      });
    });
  }

  /**
   * Starts a tool that holds `line` while it runs and resolves once gpioinfo shows it as the
   * holder; rejects with the tool's own message if it exits first. After that, an exit nobody
   * asked for is `onEnd`.
   */
  async #hold(
    tool: "gpioset" | "gpiomon",
    args: string[],
    line: ChardevLineRef,
    onEnd: (err: Error) => void,
  ): Promise<ChildProcess> {
    const proc = spawn(this.#bin(tool), args, { stdio: ["pipe", "pipe", "pipe"] });
    let stderr = "";
    proc.stderr?.setEncoding("utf8").on("data", (d: string) => {
      stderr = (stderr + d).slice(-2000);
    });
    // A holder that died has a closed stdin: writing to it must not throw.
    proc.stdin?.on("error", () => {});
    const exited = new Promise<Error>((resolve) => {
      proc.once("error", (err) => resolve(toolError(tool, err, stderr)));
      proc.once("exit", (code, signal) => resolve(exitError(tool, code, signal, stderr)));
    });
    let settled = false;
    void exited.then((err) => {
      if (settled && !ended.has(proc)) onEnd(err);
    });
    const deadline = this.#o.holdTimeoutMs ?? 2000;
    for (let waited = 0; ; waited += 10) {
      const early = await Promise.race([exited, this.#sleep(10).then(() => undefined)]);
      if (early) throw early;
      let holder: string | undefined;
      try {
        holder = (await this.info(line.chip)).find((l) => l.offset === line.offset)?.consumer;
      } catch (err) {
        // The tool's own message says more (a missing chip fails both), if it has exited by now.
        const own = await Promise.race([exited, this.#sleep(100).then(() => undefined)]);
        proc.kill("SIGKILL");
        throw own ?? err;
      }
      if (holder === tool) {
        // Another gpioset/gpiomon (an orphan, a technician's) has the same name: ours, refused the busy line,
        // exits at once with gpiod's own message, so it must still be running a moment later to be the holder.
        const refused = await Promise.race([exited, this.#sleep(50).then(() => undefined)]);
        if (refused) throw refused;
        break;
      }
      if (waited >= deadline) {
        proc.kill("SIGKILL");
        throw new Error(
          `${tool} did not hold ${line.chip} ${line.offset} within ${deadline} ms (gpioinfo shows ${holder ? `"${holder}"` : "unused"})`,
        );
      }
    }
    settled = true;
    return proc;
  }

  /** Ends a holder and waits for it to exit (the kernel frees the line then). */
  async #end(proc: ChildProcess): Promise<void> {
    ended.add(proc);
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
    // gpioset --mode=wait exits on a newline or on its stdin closing; gpiomon on SIGTERM.
    proc.stdin?.end("\n");
    proc.kill("SIGTERM");
    const timer = this.#o.timers.setTimeout(() => proc.kill("SIGKILL"), 2000);
    await gone;
    this.#o.timers.clearTimeout(timer);
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.#o.timers.setTimeout(resolve, ms));
  }
}

/** Holders this process ended on purpose: their exit is not a crash. */
const ended = new WeakSet<ChildProcess>();

interface ToolError extends Error {
  code?: number | string;
}

function toolError(tool: string, err: Error & { code?: number | string | null }, stderr: string): ToolError {
  const e: ToolError =
    err.code === "ENOENT"
      ? new Error(`${tool} not found: install Debian's gpiod package (apt install gpiod)`)
      : new Error(stderr.trim().split("\n").at(-1) || `${tool}: ${err.message}`);
  e.code = err.code ?? undefined;
  return e;
}

function exitError(tool: string, code: number | null, signal: NodeJS.Signals | null, stderr: string): Error {
  const said = stderr.trim().split("\n").at(-1);
  return new Error(`${tool} exited (${signal ? `killed by ${signal}` : `code ${code}`})${said ? `: ${said}` : ""}`);
}
