/**
 * Issue 4: "A model-based property test (fast-check `commands`) over random
 * interleavings of append / disconnect / reconnect / duplicate / broker
 * restart / cloud restart, with the set of acknowledged entries as the model:
 * after quiescence, every acknowledged entry is in Postgres exactly once and
 * the journal is drained."
 *
 * The system under test is real: the aedes gateway, the cloud on Postgres, a
 * kiosk daemon (k1) whose broker link runs through a FaultProxy, and a probe
 * device (raw MQTT, its own stream) that also delivers duplicates on purpose.
 * The model is what each device journaled (seq -> entry id) and the highest
 * seq each has seen acknowledged (k1: its journal's ackedUpTo; the probe: the
 * acks it received).
 *
 * After every command: each acknowledged entry is in the inbox, applied,
 * under its own id, and the inbox holds nothing a device did not journal.
 * After the commands, everything is healed and the test waits (on events)
 * until both devices are acked to their last seq; then each device's inbox
 * rows are exactly seqs 1..last with the journaled ids, one check-in each,
 * nothing quarantined, and k1's journal backlog is 0.
 *
 *   MODEL_SEED=n      replay the command sequences of a run (the seed is printed
 *                     either way; the timing of a real system is not replayed)
 *   MODEL_PATH=p      with MODEL_SEED, only the run at fast-check's path `p`
 *   MODEL_RUNS=n      runs (default 20)
 *   MODEL_COMMANDS=n  most commands per run (default 25)
 *   MODEL_SHRINK=1    shrink a failure (slow: every step rebuilds a site)
 *   MODEL_TRACE=1     print each command as it runs
 */

import type { KioskDaemon } from "@paylane/device";
import type { CheckinBody } from "@paylane/protocol";
import fc from "fast-check";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { intEnv } from "../support/env.ts";
import { FaultProxy } from "../support/fault-proxy.ts";
import { ModelProbe } from "../support/model-probe.ts";
import { TestSite } from "../support/site.ts";
import { within } from "../support/within.ts";

const SEED = intEnv("MODEL_SEED", Math.floor(Math.random() * 2 ** 31), 0);
/** fast-check's path to one run (printed with a failure): with the seed, replays just that run. */
const PATH = process.env.MODEL_PATH || undefined;
const RUNS = intEnv("MODEL_RUNS", 20, 0);
const MAX_COMMANDS = intEnv("MODEL_COMMANDS", 25, 0);
const SHRINK = process.env.MODEL_SHRINK === "1";
const TRACE = process.env.MODEL_TRACE === "1";
/** Both devices resend what is unacked after this long without ack progress. */
const ACK_TIMEOUT_MS = 500;
/** A safety net for quiescence, not a wait: the kiosk's reconnect backoff (up to 30 s) may be in it. */
const SETTLE_MS = 45_000;
/** A safety net for one step (a restart, a stop): one that never finishes fails the run instead of hanging it. */
const STEP_MS = 10_000;
/** The same for building a run's site (Postgres schema, gateway, cloud, kiosk). */
const SETUP_MS = 30_000;
const KIOSK = "k1";
const PROBE = "probe";

interface Model {
  /** Per device: the entry id journaled under each seq (seq n at index n - 1). */
  journaled: Map<string, string[]>;
  /** Per device: the highest seq the device has been told is committed. */
  acked: Map<string, number>;
  /** The kiosk's path to the broker is open (the proxy forwards). */
  linkUp: boolean;
  cloudUp: boolean;
}

interface Real {
  site: TestSite;
  proxy: FaultProxy;
  kiosk: KioskDaemon;
  probe: ModelProbe;
  /** Commands run, by kind. */
  ran: Map<string, number>;
}

type Cmd = fc.AsyncCommand<Model, Real>;

const note = (r: Real, kind: string) => {
  r.ran.set(kind, (r.ran.get(kind) ?? 0) + 1);
  if (TRACE) console.log(`    ${performance.now().toFixed(0)} ms: ${kind}`);
};

/** The kiosk journals `n` check-ins (what its check-in desk does for each tap) and wakes its uplink. */
class Append implements Cmd {
  constructor(readonly n: number) {}
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    note(r, "append");
    const ids = m.journaled.get(KIOSK)!;
    const at = new Date();
    for (let i = 0; i < this.n; i++) {
      const body: CheckinBody = {
        memberId: `${KIOSK}-${ids.length + 1}`,
        credential: { type: "card", uid: "04A2B3C4" },
        replicaVersion: 1,
        offline: !m.linkUp || !m.cloudUp,
      };
      const entry = await r.kiosk.journal.append("checkin", body, at);
      assert.is(entry.seq, ids.length + 1, "the journal hands out the next seq");
      ids.push(entry.id);
    }
    r.kiosk.uplink.notifyAppended();
    await checkAcknowledged(m, r);
  }
  toString = () => `append(${this.n})`;
}

/** The kiosk's uplink is cut: open connections reset, new ones refused. */
class Disconnect implements Cmd {
  check = (m: Readonly<Model>) => m.linkUp;
  async run(m: Model, r: Real): Promise<void> {
    note(r, "disconnect");
    r.proxy.refuse(true);
    r.proxy.reset();
    m.linkUp = false;
    await r.site.signal.until(() => !r.kiosk.uplink.brokerConnected, "the kiosk sees the cut", 5000);
    await checkAcknowledged(m, r);
  }
  toString = () => "disconnect";
}

/** The network heals; the kiosk comes back on its own reconnect backoff. */
class Reconnect implements Cmd {
  check = (m: Readonly<Model>) => !m.linkUp;
  async run(m: Model, r: Real): Promise<void> {
    note(r, "reconnect");
    r.proxy.heal();
    m.linkUp = true;
    await checkAcknowledged(m, r);
  }
  toString = () => "reconnect";
}

/** The probe journals and publishes `n` new entries. */
class ProbeAppend implements Cmd {
  constructor(readonly n: number) {}
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    note(r, "probe-append");
    await bounded("the probe's publish", r.probe.publishNew(this.n, new Date()));
    m.journaled.set(
      PROBE,
      r.probe.entries.map((e) => e.id),
    );
    await checkAcknowledged(m, r);
  }
  toString = () => `probeAppend(${this.n})`;
}

/**
 * The probe delivers entries it already published again: one earlier batch
 * as it was, or a replay from one of them to its last seq (overlapping
 * whatever was acked), with or without the DUP flag.
 */
class Duplicate implements Cmd {
  constructor(
    readonly pick: number,
    readonly replay: boolean,
    readonly dup: boolean,
  ) {}
  check = (m: Readonly<Model>) => m.journaled.get(PROBE)!.length > 0;
  async run(m: Model, r: Real): Promise<void> {
    note(r, "duplicate");
    const earlier = r.probe.batches[this.pick % r.probe.batches.length]!;
    const range = this.replay ? { from: earlier.from, to: r.probe.lastSeq } : earlier;
    await bounded("the probe's publish", r.probe.publish(range, this.dup));
    await checkAcknowledged(m, r);
  }
  toString = () => `duplicate(${this.replay ? "replay from " : ""}batch #${this.pick}${this.dup ? ", DUP" : ""})`;
}

/** The broker restarts in place: every connection drops, whatever it held in flight is gone. */
class BrokerRestart implements Cmd {
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    note(r, "broker-restart");
    await bounded("restarting the broker", r.site.restartBroker());
    await checkAcknowledged(m, r);
  }
  toString = () => "brokerRestart";
}

/** The cloud is stopped (drained, goodbye) or killed (no drain, the broker fires its Will), then started. */
class CloudRestart implements Cmd {
  constructor(readonly how: "stop" | "kill") {}
  check = (m: Readonly<Model>) => m.cloudUp;
  async run(m: Model, r: Real): Promise<void> {
    note(r, "cloud-restart");
    await bounded(`the cloud's ${this.how}`, r.site.stopCloud(this.how));
    await bounded("starting the cloud", r.site.startCloud());
    await checkAcknowledged(m, r);
  }
  toString = () => `cloudRestart(${this.how})`;
}

/** The cloud goes away and stays away until a later `cloudUp` (or quiescence). */
class CloudDown implements Cmd {
  constructor(readonly how: "stop" | "kill") {}
  check = (m: Readonly<Model>) => m.cloudUp;
  async run(m: Model, r: Real): Promise<void> {
    note(r, "cloud-down");
    await bounded(`the cloud's ${this.how}`, r.site.stopCloud(this.how));
    m.cloudUp = false;
    await checkAcknowledged(m, r);
  }
  toString = () => `cloudDown(${this.how})`;
}

class CloudUp implements Cmd {
  check = (m: Readonly<Model>) => !m.cloudUp;
  async run(m: Model, r: Real): Promise<void> {
    note(r, "cloud-up");
    await bounded("starting the cloud", r.site.startCloud());
    m.cloudUp = true;
    await checkAcknowledged(m, r);
  }
  toString = () => "cloudUp";
}

const how = fc.constantFrom<"stop" | "kill">("stop", "kill");
const COMMANDS: fc.Arbitrary<Cmd>[] = [
  // appends twice over: entries are what everything else acts on
  fc.integer({ min: 1, max: 30 }).map((n) => new Append(n)),
  fc.integer({ min: 1, max: 30 }).map((n) => new Append(n)),
  fc.constant(new Disconnect()),
  fc.constant(new Reconnect()),
  fc.integer({ min: 1, max: 10 }).map((n) => new ProbeAppend(n)),
  fc.tuple(fc.nat(20), fc.boolean(), fc.boolean()).map(([pick, replay, dup]) => new Duplicate(pick, replay, dup)),
  fc.constant(new BrokerRestart()),
  how.map((h) => new CloudRestart(h)),
  how.map((h) => new CloudDown(h)),
  fc.constant(new CloudUp()),
];

const bounded = <T>(what: string, step: Promise<T>, ms = STEP_MS) => within(step, ms, what);

interface InboxRow {
  device_id: string;
  seq: number;
  entry_id: string | null;
  outcome: string;
}

async function inbox(site: TestSite): Promise<InboxRow[]> {
  const { rows } = await site.db.query<InboxRow>(
    "SELECT device_id, seq::int AS seq, entry_id, outcome FROM inbox WHERE site_id = $1 ORDER BY device_id, seq",
    [site.site],
  );
  return rows;
}

/**
 * The invariant, at any moment: every entry a device was told is committed is
 * in the inbox, applied, under its own id; and every inbox row is an entry a
 * device journaled, under that seq (so no id is there twice). Acks never go
 * back and never pass what was journaled.
 */
async function checkAcknowledged(m: Model, r: Real): Promise<void> {
  const kioskAcked = (await r.kiosk.journal.stats()).ackedUpTo;
  for (const [device, acked] of [
    [KIOSK, kioskAcked],
    [PROBE, r.probe.ackedUpTo],
  ] as const) {
    const before = m.acked.get(device) ?? 0;
    assert.ok(acked >= before, `${device}: ack went back from ${before} to ${acked}`);
    assert.ok(acked <= m.journaled.get(device)!.length, `${device}: acked ${acked} beyond its journal`);
    m.acked.set(device, acked);
  }
  const present = new Map<string, Set<number>>([...m.journaled.keys()].map((d) => [d, new Set()]));
  for (const row of await inbox(r.site)) {
    const id = m.journaled.get(row.device_id)?.[row.seq - 1];
    assert.ok(id !== undefined, `inbox holds ${row.device_id} seq ${row.seq}, which was never journaled`);
    assert.is(row.entry_id, id, `${row.device_id} seq ${row.seq}: the inbox holds the journaled entry`);
    assert.is(row.outcome, "applied", `${row.device_id} seq ${row.seq} applied, not quarantined`);
    present.get(row.device_id)!.add(row.seq);
  }
  for (const [device, acked] of m.acked) {
    for (let seq = 1; seq <= acked; seq++) {
      assert.ok(present.get(device)!.has(seq), `${device} seq ${seq} was acknowledged but is not in the inbox`);
    }
  }
}

/** Heals everything, waits until both devices are acked to their last seq, and checks the end state. */
async function quiesce(m: Model, r: Real): Promise<number> {
  const started = performance.now();
  r.proxy.heal();
  m.linkUp = true;
  if (!m.cloudUp) {
    await bounded("starting the cloud", r.site.startCloud());
    m.cloudUp = true;
  }
  const probeLast = r.probe.lastSeq;
  await r.probe.resendUnacked();
  try {
    await r.site.signal.until(
      async () => (await r.kiosk.journal.stats()).backlog === 0 && r.probe.ackedUpTo >= probeLast,
      "both devices acked to their last seq",
      SETTLE_MS,
    );
  } catch (err) {
    const stats = await r.kiosk.journal.stats();
    throw new Error(
      `${(err as Error).message}: ${KIOSK} journal ${JSON.stringify(stats)}, broker link ${r.kiosk.uplink.brokerConnected}; ` +
        `${PROBE} acked ${r.probe.ackedUpTo} of ${probeLast}`,
    );
  }
  const settledMs = performance.now() - started;

  await checkAcknowledged(m, r);
  const rows = await inbox(r.site);
  let total = 0;
  for (const [device, ids] of m.journaled) {
    assert.is(m.acked.get(device), ids.length, `${device} acked to its last seq`);
    assert.equal(
      rows.filter((x) => x.device_id === device).map((x) => [x.seq, x.entry_id]),
      ids.map((id, i) => [i + 1, id]),
      `${device}: inbox seqs 1..${ids.length}, each once, with the journaled ids`,
    );
    total += ids.length;
  }
  assert.is(rows.length, total, "nothing else in the inbox");
  assert.is(
    await r.site.count("SELECT count(*)::int AS n FROM checkins WHERE site_id = $1", [r.site.site]),
    total,
    "one check-in per entry",
  );
  assert.is(
    await r.site.count("SELECT count(*)::int AS n FROM quarantine WHERE site_id = $1", [r.site.site]),
    0,
    "nothing quarantined",
  );
  assert.is((await r.kiosk.journal.stats()).backlog, 0, `${KIOSK}'s journal is drained`);
  return settledMs;
}

const totals = { runs: 0, commands: new Map<string, number>(), entries: 0, settledMs: [] as number[] };

/** One run on a site of its own: the commands, then quiescence and the end-state check, then teardown. */
async function oneRun(cmds: Iterable<Cmd>): Promise<void> {
  const run = ++totals.runs;
  const site = new TestSite({
    db: "pg",
    presence: "memory",
    broker: "aedes",
    kiosks: [],
    probes: [KIOSK, PROBE],
    ackTimeoutMs: ACK_TIMEOUT_MS,
  });
  let proxy: FaultProxy | undefined;
  const probe = new ModelProbe({ site, device: PROBE, memberPrefix: PROBE, ackTimeoutMs: ACK_TIMEOUT_MS });
  const model: Model = {
    journaled: new Map([
      [KIOSK, []],
      [PROBE, []],
    ]),
    acked: new Map(),
    linkUp: true,
    cloudUp: true,
  };
  const ran = new Map<string, number>();
  let failure: { err: unknown } | undefined;
  try {
    await bounded("starting the site", site.start(), SETUP_MS);
    // between the kiosk and the gateway; a broker restart keeps the gateway's port
    proxy = new FaultProxy({ target: { host: "127.0.0.1", port: site.gateway!.port } });
    await proxy.start();
    const kiosk = await bounded("starting the kiosk", site.startKiosk(KIOSK, { mqttUrl: proxy.url("mqtt") }), SETUP_MS);
    await bounded("starting the probe", probe.start());
    const real: Real = { site, proxy, kiosk, probe, ran };

    await fc.asyncModelRun(() => ({ model, real }), cmds);
    const settledMs = await quiesce(model, real);
    totals.settledMs.push(settledMs);

    const resends = Object.entries(probe.stats.resends)
      .filter(([, n]) => n > 0)
      .map(([why, n]) => `${why} ${n}`)
      .join(", ");
    console.log(
      `  run ${run}: ${sum(ran)} commands (${list(ran) || "none"}); ${model.journaled.get(KIOSK)!.length} ${KIOSK} entries, ` +
        `${probe.lastSeq} ${PROBE} entries in ${probe.stats.messages} messages over ${probe.stats.connections} connections ` +
        `(resends: ${resends || "none"}), ${proxy.stats.resets} resets, ${proxy.stats.refused} refused; ` +
        `quiescent in ${settledMs.toFixed(0)} ms, all exactly once`,
    );
  } catch (err) {
    failure = { err };
  }
  for (const [k, n] of ran) totals.commands.set(k, (totals.commands.get(k) ?? 0) + n);
  totals.entries += [...model.journaled.values()].reduce((a, ids) => a + ids.length, 0);
  let stage = "the probe";
  const stopFailed = await bounded(
    "stopping the site",
    (async () => {
      await probe.stop();
      stage = "the site";
      await site.stop();
      stage = "the proxy";
      await proxy?.stop();
    })(),
  ).then(
    () => undefined,
    // which part hung: the next engineer starts there
    (err: unknown) =>
      new Error(`${(err as Error).message} (stuck on ${stage}${site.stopping ? `: ${site.stopping}` : ""})`),
  );
  if (failure) {
    // the run's own failure is the finding; a site that then cannot stop is only mentioned
    if (stopFailed) console.log(`  run ${run}, cleanup after the failure: ${(stopFailed as Error).message}`);
    throw failure.err;
  }
  // a healed site must stop
  if (stopFailed) throw stopFailed;
}

const sum = (counts: Map<string, number>) => [...counts.values()].reduce((a, b) => a + b, 0);
const list = (counts: Map<string, number>) => [...counts].map(([k, n]) => `${k} ${n}`).join(", ");

test("random interleavings of appends, cuts, duplicates and broker/cloud restarts: every acked entry lands exactly once, journals drain", async () => {
  console.log(
    `  model: seed ${SEED} (MODEL_SEED=${SEED} replays it)${PATH ? `, path ${PATH}` : ""}, ` +
      `${RUNS} runs of up to ${MAX_COMMANDS} commands`,
  );
  const started = performance.now();
  let outcome = "FAILED (counterexample below)";
  try {
    await fc.assert(
      fc.asyncProperty(fc.commands(COMMANDS, { maxCommands: MAX_COMMANDS, size: "max" }), (cmds) => oneRun(cmds)),
      { seed: SEED, path: PATH, numRuns: RUNS, endOnFailure: !SHRINK, includeErrorInReport: true },
    );
    outcome = "no acknowledged entry lost or doubled, every journal drained";
  } finally {
    const restarts = (k: string) => totals.commands.get(k) ?? 0;
    const settled = totals.settledMs.length
      ? `${Math.min(...totals.settledMs).toFixed(0)}-${Math.max(...totals.settledMs).toFixed(0)} ms`
      : "-";
    console.log(
      `  model: ${totals.runs} runs, ${sum(totals.commands)} commands (${list(totals.commands)}), ` +
        `${totals.entries} entries, ${restarts("broker-restart")} broker restarts, ` +
        `${restarts("cloud-restart") + restarts("cloud-down")} cloud stops/kills; quiescence ${settled}; ` +
        `${outcome}, in ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
  }
});

test.run();
