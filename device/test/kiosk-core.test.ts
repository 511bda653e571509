/**
 * The kiosk core's seams: parts start in order and stop in reverse (a failed
 * start undoes what had started), and the journal itself tells its
 * listeners of each durable entry and each write the disk refused.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Entry } from "@paylane/protocol";
import pino from "pino";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { Pn532Simulator } from "../src/hardware/pn532/simulator.ts";
import { Journal } from "../src/journal.ts";
import { createKioskBus } from "../src/kiosk/events.ts";
import { Lifecycle, type Part } from "../src/kiosk/lifecycle.ts";
import { SimulatedTaps } from "../src/kiosk/simulated-taps.ts";
import { realTimers } from "../src/timers.ts";

const quiet = pino({ level: "silent" });

/** Resolves once `work` rejected with a message matching `message`; fails the test if it resolved. */
async function rejects(work: () => Promise<unknown>, message: RegExp): Promise<void> {
  try {
    await work();
  } catch (err) {
    assert.match((err as Error).message, message);
    return;
  }
  assert.unreachable("expected a rejection");
}

const lifecycle = suite("kiosk lifecycle");

/** A part that records its start and stop in `log`, and can be told to fail either. */
function recorded(name: string, log: string[], fail?: "start" | "stop"): Part {
  return {
    name,
    start: async () => {
      if (fail === "start") throw new Error(`${name} cannot start`);
      log.push(`start ${name}`);
    },
    stop: async () => {
      log.push(`stop ${name}`);
      if (fail === "stop") throw new Error(`${name} cannot stop`);
    },
  };
}

lifecycle("parts start in the order given and stop in reverse, stores closed last", async () => {
  const log: string[] = [];
  const life = new Lifecycle(quiet);
  const store = await life.open(
    "store",
    async () => ({ closed: false }),
    async (s) => {
      s.closed = true;
      log.push("close store");
    },
  );
  await life.start([recorded("a", log), recorded("b", log), recorded("c", log)]);
  await life.stop();
  assert.equal(log, ["start a", "start b", "start c", "stop c", "stop b", "stop a", "close store"]);
  assert.ok(store.closed);
});

lifecycle("a stop that hangs names the part it waits for, and nothing once it is done", async () => {
  const life = new Lifecycle(quiet);
  let release = () => {};
  const held = new Promise<void>((r) => (release = r));
  await life.start([recorded("a", []), { name: "b", start: () => {}, stop: () => held }, recorded("c", [])]);
  assert.is(life.stoppingPart, undefined);
  const stopped = life.stop();
  await new Promise((r) => setImmediate(r));
  assert.is(life.stoppingPart, "b", "c stopped, b holds the stop");
  release();
  await stopped;
  assert.is(life.stoppingPart, undefined);
});

lifecycle("a part that fails to start: what had started is stopped by the owner, the rest never starts", async () => {
  const log: string[] = [];
  const life = new Lifecycle(quiet);
  await life.open(
    "store",
    async () => 1,
    async () => void log.push("close store"),
  );
  await rejects(
    () => life.start([recorded("a", log), recorded("b", log, "start"), recorded("c", log)]),
    /b cannot start/,
  );
  await life.stop();
  assert.equal(
    log,
    ["start a", "stop b", "stop a", "close store"],
    "b failed half-way and is stopped too; c never started",
  );
});

lifecycle("a part that fails to stop does not keep the others running; the first failure is reported", async () => {
  const log: string[] = [];
  const life = new Lifecycle(quiet);
  await life.start([recorded("a", log), recorded("b", log, "stop"), recorded("c", log)]);
  await rejects(() => life.stop(), /b cannot stop/);
  assert.equal(log, ["start a", "start b", "start c", "stop c", "stop b", "stop a"]);
  await life.stop(); // nothing left to stop
  assert.is(log.length, 6);
});

lifecycle("a stop during a start waits for it, then stops everything it started", async () => {
  const log: string[] = [];
  const life = new Lifecycle(quiet);
  let release = () => {};
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  const starting = life.launch(async () => {
    await life.start([recorded("a", log)]);
    await gate; // still composing when the stop comes
    await life.start([recorded("b", log)]);
    return "started";
  });
  const stopping = life.shutdown(() => log.push("reads as stopped"));
  assert.is(
    life.launch(async () => "again"),
    starting,
    "a second start while starting is the same start",
  );
  release();
  assert.is(await starting, "started");
  await stopping;
  assert.equal(log, ["start a", "start b", "reads as stopped", "stop b", "stop a"]);
});

lifecycle("a start that fails is undone before it rejects", async () => {
  const log: string[] = [];
  const life = new Lifecycle(quiet);
  await rejects(
    () =>
      life.launch(async () => {
        await life.start([recorded("a", log)]);
        throw new Error("no config");
      }),
    /no config/,
  );
  assert.equal(log, ["start a", "stop a"]);
});

const taps = suite("simulated taps");

taps("a card's answer is its own decision, not a code typed on screen meanwhile", async () => {
  const bus = createKioskBus();
  const placed: string[] = [];
  const reader = {
    placeCard: (uid: string) => {
      placed.push(uid);
      // Someone types a code while the card is on the reader; then the reader reports the card.
      bus.emit(
        "tap-decided",
        { outcome: "welcome", message: "Welcome, Grace", at: "t" },
        { type: "code", code: "ABCD" },
      );
      bus.emit(
        "tap-decided",
        { outcome: "welcome", message: "Welcome, Ada", at: "t" },
        { type: "card", uid: "04A2B3C4" },
      );
    },
    removeCard: () => {},
    nextPoll: async () => {},
  } as unknown as Pn532Simulator;
  const answer = await new SimulatedTaps({ bus, timers: realTimers }, () => reader).present("04:a2:b3:c4");
  assert.equal(placed, ["04:a2:b3:c4"]);
  assert.is(answer.message, "Welcome, Ada");
});

const journalEvents = suite("journal events");
let dir = "";
journalEvents.before(async () => {
  dir = await mkdtemp(join(tmpdir(), "paylane-kiosk-core-"));
});
journalEvents.after(async () => {
  await rm(dir, { recursive: true, force: true });
});

journalEvents("every durable entry is announced once, with its seq, after it is durable", async () => {
  const journal = await Journal.open(join(dir, "announce.db"));
  const seen: Array<Promise<[number, string, number]>> = [];
  journal.events.on("appended", (entry) => {
    // Read back at once: the listener runs only after the commit, so the entry is already there.
    seen.push(journal.entriesAfter(entry.seq - 1, 1).then((rows) => [entry.seq, entry.kind, rows.length]));
  });
  const first = await journal.append("checkin", { memberId: "m1" }, new Date("2024-05-01T10:00:00Z"));
  const second = await journal.append("staff-call", { source: "button" }, new Date("2024-05-01T10:01:00Z"));
  assert.equal(await Promise.all(seen), [
    [first.seq, "checkin", 1],
    [second.seq, "staff-call", 1],
  ]);
  await journal.close();
});

journalEvents(
  "a write the disk refuses is announced as write-failed, and the writer still sees the error",
  async () => {
    const path = join(dir, "readonly.db");
    const journal = await Journal.open(path);
    const failures: Error[] = [];
    const appended: Entry[] = [];
    journal.events.on("write-failed", (err) => failures.push(err));
    journal.events.on("appended", (e) => appended.push(e));
    // A database the process can no longer write: SQLite refuses the INSERT (SQLITE_READONLY).
    await journal.db.exec("PRAGMA query_only = ON");
    await rejects(() => journal.append("checkin", { memberId: "m1" }, new Date()), /readonly|query_only/i);
    assert.is(failures.length, 1, "one failed write, announced once");
    assert.is(appended.length, 0, "nothing announced as journaled");
    await journal.db.exec("PRAGMA query_only = OFF");
    await journal.append("checkin", { memberId: "m1" }, new Date());
    assert.is(appended.length, 1, "writes announced again once the disk takes them");
    await journal.close();
  },
);

lifecycle.run();
taps.run();
journalEvents.run();
