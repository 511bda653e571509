/**
 * Kiosk footprint benchmark: the daemon's idle RSS and its cold start to
 * ready, next to a bare Node process and to a Node process that loads only
 * the daemon's dependencies. Targets: idle RSS <= 70 MiB, cold start <= 1.5 s.
 *
 *   npm run bench:footprint        (needs the UI bundle: npm run build)
 *
 * The kiosk: `paylane-device --config kiosk.json` (device/src/main.ts) as a
 * systemd unit would start it, with the PN532 reader, the printer and the
 * GPIO roles simulated (the `npm start` kiosk's hardware) and its touch UI
 * served. Its broker and cloud URLs point at a closed port: a kiosk starts
 * offline and is ready without them (its /healthz answers 200, "degraded").
 * One data folder for all runs, made by the first (untimed) run, so the timed
 * runs are a kiosk booting on its existing journal and replica.
 *
 * Ready = the first 200 from GET /healthz, polled every 10 ms from spawn;
 * cold start = the wall time to it. Then GET / must serve the kiosk page;
 * after BENCH_FOOTPRINT_SETTLE_MS idle, VmRSS is read from /proc (no GC
 * forced), and the process is stopped with SIGTERM. The daemon's log clock
 * splits its start: spawn -> first log line (mostly module loading) ->
 * "kiosk daemon started".
 *
 * Beside it, each answering GET /healthz the same way once it has loaded:
 * - bare node -e: a tiny http server, no loader;
 * - node + tsx loader: the same server (lib/footprint-idle.mjs) through
 *   `--import tsx`, the loader the daemon runs under: tsx's own cost is this
 *   row minus the first (its hooks run in a thread of their own);
 * - deps-only: that process importing exactly the modules the daemon's own
 *   files imported in the first run (packages and Node built-ins, traced by
 *   lib/footprint-trace.mjs), each timed, then idle; once on plain node, once
 *   through tsx. The daemon (tsx) minus deps-only (tsx) is the kiosk's own
 *   code and state, both through the same loader;
 * - kiosk daemon (esbuild, plain node): the project ships no build of the
 *   daemon, so the bench makes one (lib/footprint-build.ts: its sources
 *   bundled, packages external) to show the daemon without tsx; compare it
 *   with deps-only (plain node). If the build fails the row is left out and
 *   the reason printed.
 *
 * RSS is split as the kernel counts it: anon (the process's own heaps) and
 * files (mostly the node binary's pages: shared by every Node process on the
 * board, clean, dropped first under memory pressure).
 *
 * The first run also warms tsx's transform cache and the OS file cache, so
 * "cold" means a fresh process on a machine that has run it before (every
 * boot after the first). Runs take turns, subject by subject, so a machine
 * that gets busier during the run weighs on all alike; medians of
 * BENCH_FOOTPRINT_RUNS count.
 *
 * Environment: BENCH_FOOTPRINT_RUNS (5), BENCH_FOOTPRINT_SETTLE_MS (2000),
 * BENCH_FOOTPRINT_TIMEOUT_MS (60000 to ready), BENCH_FOOTPRINT_REPO (the
 * checkout whose daemon runs; default this one), LOG_LEVEL (the daemon's).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { join, relative, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import type { DeviceConfigInput } from "@paylane/device";
import { kioskDist } from "@paylane/ui/dist";
import { DEMO_HARDWARE } from "../scripts/site/demo-hardware.ts";
import { intEnv } from "../test/support/env.ts";
import { bundleDaemon } from "./lib/footprint-build.ts";
import { descendants, type ProcMemory, procMemory } from "./lib/proc-memory.ts";
import { fmtMs, progress, runBench, table } from "./lib/stats.ts";

const TARGET_RSS_MIB = 70;
const TARGET_COLD_MS = 1500;
const POLL_MS = 10;
const HERE = resolve(import.meta.dirname, "..");

const cfg = {
  runs: intEnv("BENCH_FOOTPRINT_RUNS", 5),
  settleMs: intEnv("BENCH_FOOTPRINT_SETTLE_MS", 2000, 0),
  timeoutMs: intEnv("BENCH_FOOTPRINT_TIMEOUT_MS", 60_000, 1000),
  repo: resolve(process.env.BENCH_FOOTPRINT_REPO || HERE),
};
const IDLE = join(HERE, "bench/lib/footprint-idle.mjs");
/** Where the daemon's plain-JS build goes: under device/, so Node finds its packages by climbing, as from its sources. */
const BUILD_DIR = join(cfg.repo, "device/node_modules/.cache/paylane-footprint");
const TRACE = join(HERE, "bench/lib/footprint-trace.mjs");
const MAIN = join(cfg.repo, "device/src/main.ts");

/** The bare process: the same readiness answer as the others, in plain JavaScript. */
const BARE_SERVER = `require("node:http").createServer((q, s) => s.writeHead(q.url === "/healthz" ? 200 : 404).end())
  .listen(Number(process.env.FOOTPRINT_PORT), "127.0.0.1")`;

interface Load {
  url: string;
  ms: number;
  rssKb: number;
}

/** One run: its memory after settling, and its start. */
interface Sample extends ProcMemory {
  coldMs: number;
  /** The process's children (the simulated reader's socat) and theirs: RSS, KiB. */
  childrenKb: number;
  children: string[];
  /** Daemon: spawn -> its first log line, and -> "kiosk daemon started" (by the log's own clock). */
  firstLogMs?: number;
  startedMs?: number;
  /** Deps-only: each import's time and RSS growth. */
  loads?: Load[];
}

/** A module the daemon's own files import: as written, and as resolved. */
interface Traced {
  specifier: string;
  url: string;
}

interface Launch {
  args: string[];
  env?: Record<string, string>;
}

interface Subject {
  name: string;
  launch(port: number): Promise<Launch>;
  /** Checked once ready, before settling. */
  afterReady?(port: number): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once("error", rej);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => res(port));
    });
  });
}

/** The kiosk of `npm start` with its hardware simulated, offline (broker and cloud on a closed port). */
async function kioskConfig(dir: string, port: number, closedPort: number, secret: string): Promise<string> {
  const config: DeviceConfigInput = {
    site: "bench",
    device: "k1",
    secret,
    mqttUrl: `mqtt://127.0.0.1:${closedPort}`,
    cloudUrl: `http://127.0.0.1:${closedPort}`,
    dataDir: join(dir, "data"),
    http: { host: "127.0.0.1", port },
    ...DEMO_HARDWARE,
  };
  const path = join(dir, `kiosk-${port}.json`);
  await writeFile(path, JSON.stringify(config, null, 2), { mode: 0o600 });
  return path;
}

async function untilHealthy(port: number, proc: ChildProcess, log: () => string): Promise<void> {
  const deadline = performance.now() + cfg.timeoutMs;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(`exited (${proc.signalCode ?? `code ${proc.exitCode}`}) before ready:\n${log()}`);
    }
    try {
      const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    if (performance.now() > deadline) throw new Error(`no 200 from /healthz within ${cfg.timeoutMs} ms:\n${log()}`);
    await sleep(POLL_MS);
  }
}

async function stop(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((res) => proc.once("exit", res));
  proc.kill("SIGTERM");
  const timer = setTimeout(() => proc.kill("SIGKILL"), 5000);
  await exited;
  clearTimeout(timer);
}

/** One run of `subject`: spawn, ready, settle, read memory, stop. */
async function measure(subject: Subject): Promise<Sample> {
  const port = await freePort();
  const { args, env } = await subject.launch(port);
  const lines: string[] = [];
  let loads: Load[] | undefined;
  let firstLogAt: number | undefined;
  let startedAt: number | undefined;
  const spawnedAt = performance.timeOrigin + performance.now();
  const t0 = performance.now();
  const proc = spawn(process.execPath, args, {
    cwd: cfg.repo,
    // No NODE_OPTIONS: the bare process must be bare.
    env: { ...process.env, NODE_OPTIONS: "", FOOTPRINT_PORT: String(port), ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  try {
    createInterface({ input: proc.stdout! }).on("line", (line) => {
      lines.push(line);
      if (lines.length > 40) lines.shift();
      if (!line.startsWith("{")) return;
      try {
        const m = JSON.parse(line) as { type?: string; loads?: Load[]; time?: string | number; msg?: string };
        if (m.type === "loaded") loads = m.loads;
        const time = typeof m.time === "string" ? Date.parse(m.time) : m.time;
        if (time !== undefined) {
          firstLogAt ??= time;
          if (m.msg === "kiosk daemon started") startedAt = time;
        }
      } catch {
        // not one of ours
      }
    });
    createInterface({ input: proc.stderr! }).on("line", (line) => {
      lines.push(line);
      if (lines.length > 40) lines.shift();
    });
    await untilHealthy(port, proc, () => lines.join("\n"));
    const coldMs = performance.now() - t0;
    await subject.afterReady?.(port);
    await sleep(cfg.settleMs);
    const mem = procMemory(proc.pid!);
    if (!mem) throw new Error(`${subject.name}: the process went away while idle:\n${lines.join("\n")}`);
    const kids = descendants(proc.pid!);
    const childrenKb = kids.reduce((sum, k) => sum + (procMemory(k.pid)?.rssKb ?? 0), 0);
    return {
      coldMs,
      ...mem,
      childrenKb,
      children: [...new Set(kids.map((k) => k.comm))],
      ...(firstLogAt !== undefined && { firstLogMs: firstLogAt - spawnedAt }),
      ...(startedAt !== undefined && { startedMs: startedAt - spawnedAt }),
      ...(loads && { loads }),
    };
  } finally {
    await stop(proc);
  }
}

/** Runs the daemon once with the module trace: the modules its own files import, as URLs, in first-use order. */
async function traceDaemonModules(dir: string, daemon: Subject): Promise<Traced[]> {
  const file = join(dir, "trace.tsv");
  const sample = await measure({
    ...daemon,
    async launch(port) {
      const { args, env } = await daemon.launch(port);
      // After tsx's hooks: the trace asks them to resolve, so it sees the .ts files by their real URLs.
      const afterTsx = args.indexOf("tsx") + 1;
      return {
        args: [...args.slice(0, afterTsx), "--import", TRACE, ...args.slice(afterTsx)],
        env: { ...env, FOOTPRINT_TRACE: file, FOOTPRINT_ROOT: cfg.repo },
      };
    },
  });
  progress(`first run (untimed, with the module trace): ready in ${fmtMs(sample.coldMs)}`);
  const text = await readFile(file, "utf8").catch(() => "");
  const modules = text
    .split("\n")
    .filter(Boolean)
    .map((l) => {
      const [specifier, url] = l.split("\t") as [string, string];
      return { specifier, url };
    });
  if (modules.length === 0) throw new Error(`the module trace recorded nothing: is ${MAIN} under ${cfg.repo}?`);
  return modules;
}

const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
const mib = (kb: number) => kb / 1024;
const fmtMib = (kb: number) => `${mib(kb).toFixed(1)} MiB`;

/** The processes compared, by role. */
interface Subjects {
  bare: Subject;
  loader: Subject;
  depsPlain: Subject;
  deps: Subject;
  daemon: Subject;
  built?: Subject;
}

function report(all: Subject[], who: Subjects, samples: Map<Subject, Sample[]>, modules: Traced[]): string {
  const s = (x: Subject) => samples.get(x)!;
  const med = (x: Subject, f: (v: Sample) => number) => median(s(x).map(f));
  const rss = (x: Subject) => med(x, (v) => v.rssKb);
  const cold = (x: Subject) => med(x, (v) => v.coldMs);
  const rows = all.map((x) => [
    x.name,
    fmtMib(rss(x)),
    s(x)
      .map((v) => mib(v.rssKb).toFixed(1))
      .join(" / "),
    fmtMib(med(x, (v) => v.anonKb)),
    fmtMib(med(x, (v) => v.fileKb)),
    fmtMib(med(x, (v) => v.peakKb)),
    fmtMs(cold(x)),
    s(x)
      .map((v) => v.coldMs.toFixed(0))
      .join(" / "),
  ]);
  const { bare, loader, depsPlain, deps, daemon, built } = who;
  const verdict = (x: Subject) =>
    `${x.name}: idle RSS ${fmtMib(rss(x))} (target <= ${TARGET_RSS_MIB} MiB: ` +
    `${mib(rss(x)) <= TARGET_RSS_MIB ? "met" : "NOT met"}), cold start ${fmtMs(cold(x))} ` +
    `(target <= ${TARGET_COLD_MS} ms: ${cold(x) <= TARGET_COLD_MS ? "met" : "NOT met"})`;
  const step = (label: string, from: Subject, to: Subject) =>
    `${label} +${fmtMib(rss(to) - rss(from))} / ${fmtMs(cold(to) - cold(from))}`;
  const out = [
    "",
    `PayLane kiosk footprint benchmark: ${cfg.runs} runs each, taking turns; idle = ${cfg.settleMs} ms after ready; ` +
      `Node ${process.version}; ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, ` +
      `load average ${loadavg()[0]!.toFixed(2)}`,
    `kiosk: ${relative(process.cwd(), MAIN) || MAIN} --config (PN532 reader, printer and GPIO simulated, UI served, ` +
      "broker and cloud unreachable: it starts offline)",
    "",
    table(
      [
        "process",
        "idle RSS (median)",
        "runs, MiB",
        "of it anon",
        "of it files",
        "peak RSS",
        "cold start to /healthz",
        "runs, ms",
      ],
      rows,
    ),
    "RSS = VmRSS; anon (RssAnon) is the process's own memory; files (RssFile) mostly the node binary's pages, " +
      "shared with every Node process and reclaimable",
    "",
    verdict(daemon),
    ...(built ? [verdict(built)] : []),
    `where the daemon's RSS / start go (differences of medians): node ${fmtMib(rss(bare))} / ${fmtMs(cold(bare))}; ` +
      [
        step("tsx loader", bare, loader),
        step("its dependencies", loader, deps),
        step("the kiosk's own code, start and state", deps, daemon),
      ].join("; "),
    `without tsx: ${step("the dependencies on bare node", bare, depsPlain)}` +
      (built ? `; ${step("the kiosk's own code, start and state", depsPlain, built)}` : ""),
  ];
  const firstLog = s(daemon).flatMap((v) => (v.firstLogMs === undefined ? [] : [v.firstLogMs]));
  const started = s(daemon).flatMap((v) => (v.startedMs === undefined ? [] : [v.startedMs]));
  if (firstLog.length > 0 && started.length > 0) {
    out.push(
      `${daemon.name}, its start by its log's clock (medians): spawn -> first log line (modules loaded, config ` +
        `read) ${fmtMs(median(firstLog))}; -> "kiosk daemon started" ${fmtMs(median(started))}; -> /healthz 200 ` +
        fmtMs(cold(daemon)),
    );
  }
  const kids = s(daemon).flatMap((v) => v.children);
  out.push(
    `not counted above: the daemon's child processes (${[...new Set(kids)].join(", ") || "none"}; the simulated ` +
      `reader's pty pair, absent on a kiosk with a real reader): ${fmtMib(med(daemon, (v) => v.childrenKb))}`,
  );
  // Each import's median time and RSS growth, over the plain deps-only runs (no loader in the figures).
  const byUrl = new Map<string, { ms: number[]; kb: number[] }>();
  for (const v of s(depsPlain)) {
    for (const l of v.loads ?? []) {
      const e = byUrl.get(l.url) ?? { ms: [], kb: [] };
      e.ms.push(l.ms);
      e.kb.push(l.rssKb);
      byUrl.set(l.url, e);
    }
  }
  const heavy = modules
    .filter((m) => byUrl.has(m.url))
    .map((m) => ({ name: m.specifier, ms: median(byUrl.get(m.url)!.ms), kb: median(byUrl.get(m.url)!.kb) }))
    .sort((a, b) => b.ms - a.ms);
  out.push(
    "",
    `the ${modules.length} modules the daemon's own files import, loaded in its order by ${depsPlain.name}, ` +
      "heaviest first (medians; each counts what it is first to load):",
    table(
      ["module", "load", "RSS growth"],
      heavy.slice(0, 10).map((h) => [h.name, fmtMs(h.ms), `${mib(h.kb).toFixed(1)} MiB`]),
    ),
    `the rest: ${heavy
      .slice(10)
      .map((h) => h.name)
      .join(", ")}`,
  );
  return out.join("\n");
}

async function main(): Promise<number> {
  const dist = join(cfg.repo, relative(HERE, kioskDist));
  if (!existsSync(join(dist, "app.js"))) {
    throw new Error(`the kiosk UI is not built (${join(dist, "app.js")} is missing): run npm run build first`);
  }
  const dir = await mkdtemp(join(tmpdir(), "paylane-footprint-"));
  const notes: string[] = [];
  try {
    const closedPort = await freePort();
    const secret = randomBytes(16).toString("hex");
    const bare: Subject = { name: "bare node -e", launch: async () => ({ args: ["-e", BARE_SERVER] }) };
    const loader: Subject = {
      name: "node + tsx loader",
      launch: async () => ({ args: ["--import", "tsx", IDLE], env: { FOOTPRINT_MODULES: "[]" } }),
    };
    const daemon: Subject = {
      name: "kiosk daemon (tsx)",
      launch: async (port) => ({
        args: ["--import", "tsx", MAIN, "--config", await kioskConfig(dir, port, closedPort, secret)],
      }),
      async afterReady(port) {
        const res = await fetch(`http://127.0.0.1:${port}/`);
        const page = await res.text();
        if (res.status !== 200 || !page.includes("<script")) {
          throw new Error(`the kiosk did not serve its UI on GET /: ${res.status} ${page.slice(0, 200)}`);
        }
      },
    };
    progress("kiosk daemon, first run: makes its data folder, warms caches, traces the modules it imports");
    const modules = await traceDaemonModules(dir, daemon);
    const deps: Subject = {
      name: "deps-only (tsx)",
      launch: async () => ({
        args: ["--import", "tsx", IDLE],
        env: { FOOTPRINT_MODULES: JSON.stringify(modules.map((m) => m.url)) },
      }),
    };
    const depsPlain: Subject = {
      name: "deps-only (plain node)",
      launch: async () => ({ args: [IDLE], env: { FOOTPRINT_MODULES: JSON.stringify(modules.map((m) => m.url)) } }),
    };
    const who: Subjects = { bare, loader, depsPlain, deps, daemon };
    const subjects = [bare, loader, depsPlain, deps, daemon];
    const built = join(BUILD_DIR, "main.mjs");
    try {
      await bundleDaemon(MAIN, built);
      who.built = {
        name: "kiosk daemon (esbuild, plain node)",
        launch: async (port) => ({
          args: [built, "--config", await kioskConfig(dir, port, closedPort, secret)],
        }),
        afterReady: daemon.afterReady,
      };
      subjects.push(who.built);
    } catch (err) {
      notes.push(`kiosk daemon built to plain JavaScript: not measured, the build failed: ${(err as Error).message}`);
    }
    const samples = new Map<Subject, Sample[]>(subjects.map((x) => [x, []]));
    for (let run = 0; run < cfg.runs; run++) {
      for (let i = 0; i < subjects.length; i++) {
        const subject = subjects[(i + run) % subjects.length]!;
        const sample = await measure(subject);
        samples.get(subject)!.push(sample);
        progress(
          `run ${run + 1}/${cfg.runs}: ${subject.name}: ready in ${fmtMs(sample.coldMs)}, idle RSS ${fmtMib(sample.rssKb)}`,
        );
      }
    }
    process.stdout.write(`${report(subjects, who, samples, modules)}\n${notes.map((n) => `${n}\n`).join("")}`);
    return 0;
  } finally {
    await rm(dir, { recursive: true, force: true });
    await rm(BUILD_DIR, { recursive: true, force: true });
  }
}

runBench(main);
