/**
 * The drain benchmark's kiosk, in its own process as on a Pi. First it fills
 * its journal while no daemon runs (the kiosk was cut off), then it starts
 * the real `KioskDaemon` on that journal and reports the drain: a tick each
 * second, the daemon's own backlog log lines, and the timings once the
 * journal's backlog is 0. For the what-if it drains with the daemon's own
 * `Uplink` built with a larger window than the daemon gives it.
 */
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import {
  DEVICE_VERSION,
  type DeviceConfigInput,
  Journal,
  KioskDaemon,
  parseDeviceConfig,
  realTimers,
  Uplink,
} from "@paylane/device";
import pino, { type Logger } from "pino";
import { reportFailures } from "./child.ts";
import { type FillResult, fillJournal, journalIdDigest } from "./drain-journal.ts";
import { DrainProbe, type DrainTimings } from "./drain-probe.ts";

export type DrainKioskIn =
  | { type: "fill"; dataDir: string; entries: number; inFlight: number }
  | { type: "drain"; config: DeviceConfigInput; lastSeq: number }
  | { type: "drain-uplink"; options: UplinkWhatIf; lastSeq: number }
  | { type: "stop" };

export interface DrainResult extends DrainTimings {
  /** daemon.start() call -> resolved, ms. */
  startMs: number;
  /** daemon.start() call -> the journal's backlog is 0, ms. */
  drainedMs: number;
  lastSeq: number;
  backlogAfter: number;
  /** "resending unacked" lines of the daemon's log, by reason. */
  resends: Record<string, number>;
  /** Warnings and errors the daemon logged during the drain. */
  problems: string[];
  /** Entry ids in seq order, for the exactly-once check against the inbox. */
  digest: { count: number; md5: string };
}

export type DrainKioskOut =
  | { type: "filling"; appended: number }
  | { type: "filled"; result: FillResult }
  | { type: "started"; ms: number }
  | { type: "tick"; ackedUpTo: number; backlog: number }
  | { type: "log"; line: string }
  | { type: "drained"; result: DrainResult }
  | { type: "error"; message: string }
  | { type: "exit" };

const send = (m: DrainKioskOut) => process.send?.(m);

interface LogRecord {
  level?: number;
  msg?: string;
  reason?: string;
  [key: string]: unknown;
}

/**
 * The daemon's log at info level, read line by line: backlog progress is
 * forwarded, resends are counted, warnings and errors are kept.
 */
function drainLog(resends: Record<string, number>, problems: string[]) {
  return pino(
    { level: "info", base: undefined, timestamp: false },
    {
      write(line: string) {
        let r: LogRecord;
        try {
          r = JSON.parse(line) as LogRecord;
        } catch {
          return;
        }
        const { level = 0, msg = "", ...fields } = r;
        if (msg === "resending unacked") {
          const reason = String(r.reason ?? "?");
          resends[reason] = (resends[reason] ?? 0) + 1;
        }
        if (level >= 40) problems.push(`${msg} ${JSON.stringify(fields)}`);
        if (/backlog/i.test(msg) || level >= 40) send({ type: "log", line: `${msg} ${JSON.stringify(fields)}` });
      },
    },
  );
}

/** What drains: the whole daemon, or (the what-if) the daemon's own Uplink on its own journal. */
interface Drainer {
  readonly journal: Journal;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface UplinkWhatIf {
  site: string;
  device: string;
  secret: string;
  mqttUrl: string;
  dataDir: string;
  batchSize: number;
  window: number;
  maxInflightBatches: number;
}

type Build = (probe: DrainProbe, logger: Logger, onAcked: (upTo: number) => void) => Promise<Drainer>;

const daemonDrainer =
  (config: DeviceConfigInput): Build =>
  async (probe, logger, onAcked) => {
    const daemon = new KioskDaemon({
      config: parseDeviceConfig(config),
      logger,
      openJournal: async (path) => probe.instrument(await Journal.open(path)),
    });
    daemon.events.on("entries-acked", onAcked);
    return daemon;
  };

/** The Uplink as the daemon builds it, except for the window: what a larger window would give. */
const uplinkDrainer =
  (o: UplinkWhatIf): Build =>
  async (probe, logger, onAcked) => {
    const journal = probe.instrument(await Journal.open(join(o.dataDir, "journal.db")));
    const uplink = new Uplink({
      address: { site: o.site, device: o.device },
      secret: o.secret,
      url: o.mqttUrl,
      journal,
      version: DEVICE_VERSION,
      bootedAt: new Date(),
      logger,
      timers: realTimers,
      now: () => new Date(),
      batchSize: o.batchSize,
      window: o.window,
      maxInflightBatches: o.maxInflightBatches,
      onAcked,
    });
    return {
      journal,
      start: () => uplink.start(),
      stop: async () => {
        await uplink.stop();
        await journal.close();
      },
    };
  };

let running: Drainer | undefined;

async function drain(build: Build, lastSeq: number): Promise<void> {
  const resends: Record<string, number> = {};
  const problems: string[] = [];
  const t0 = performance.now();
  const probe = new DrainProbe(t0);
  let drained: () => void = () => {};
  const done = new Promise<void>((resolve) => {
    drained = resolve;
  });
  const kiosk = await build(probe, drainLog(resends, problems), (upTo) => {
    probe.onAcked(upTo);
    if (upTo >= lastSeq) drained();
  });
  running = kiosk;
  let ticker: NodeJS.Timeout | undefined;
  let startMs: number;
  try {
    await kiosk.start();
    startMs = performance.now() - t0;
    send({ type: "started", ms: startMs });
    // The journal's own view, once a second (the daemon's backlog gauge reads the same).
    ticker = setInterval(() => {
      void kiosk.journal.stats().then(
        (s) => send({ type: "tick", ackedUpTo: s.ackedUpTo, backlog: s.backlog }),
        () => {},
      );
    }, 1000);
    // A stop during the drain stops the kiosk; this timer must not keep the process alive after it.
    ticker.unref();
    await done;
  } finally {
    clearInterval(ticker);
  }
  const drainedMs = performance.now() - t0;
  const stats = await kiosk.journal.stats();
  send({
    type: "drained",
    result: {
      ...probe.timings(),
      startMs,
      drainedMs,
      lastSeq: stats.lastSeq,
      backlogAfter: stats.backlog,
      resends,
      problems,
      digest: await journalIdDigest(kiosk.journal),
    },
  });
}

reportFailures();
process.on("message", async (m: DrainKioskIn) => {
  if (m.type === "fill") {
    const result = await fillJournal(join(m.dataDir, "journal.db"), m.entries, m.inFlight, (appended) =>
      send({ type: "filling", appended }),
    );
    send({ type: "filled", result });
  } else if (m.type === "drain") {
    await drain(daemonDrainer(m.config), m.lastSeq);
  } else if (m.type === "drain-uplink") {
    await drain(uplinkDrainer(m.options), m.lastSeq);
  } else if (m.type === "stop") {
    await running?.stop();
    running = undefined;
    process.disconnect?.();
  }
});
