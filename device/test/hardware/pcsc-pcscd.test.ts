/**
 * The PC/SC reader end to end against the real pcscd (Debian's) with
 * vsmartcard's vpcd as the reader and our virtual card on vpcd's socket:
 * the same path as an ACR122U on a kiosk, from pcscd up. Real time; every
 * wait is on an event (a log line, a state change, a message from vpcd),
 * bounded by a timeout that only fails the test.
 */
import { pino } from "pino";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { PCSCD_MISSING, PcscReader } from "../../src/hardware/pcsc/pcsc-reader.ts";
import { VirtualCard } from "../../src/hardware/pcsc/virtual-card.ts";
import type { ReaderState } from "../../src/hardware/pn532/pn532-reader.ts";
import { type PrivatePcscd, pcscScan, privatePcscd } from "./pcscd-harness.ts";

const test = suite("PC/SC reader through the real pcscd and vpcd");
const WAIT_MS = 8000;
const UID = "04A1B2C3D4E5F6";

interface Ctx {
  pcscd: PrivatePcscd;
  reader: PcscReader | undefined;
  card: VirtualCard;
  taps: string[];
  states: ReaderState[];
  lines: { msg: string; level: number; [k: string]: unknown }[];
  waiters: (() => void)[];
}
const ctx = { taps: [], states: [], lines: [], waiters: [] } as unknown as Ctx;

/** Re-checks every waiter once the event's own work is done. */
function notify(): void {
  setImmediate(() => {
    for (const w of ctx.waiters.splice(0)) w();
  });
}

/** Resolves once `cond()` holds, re-checked on every event; fails after WAIT_MS with pcscd's log. */
function until(cond: () => boolean, what: string, ms = WAIT_MS): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      const logs = ctx.lines.map((l) => `${l.msg} ${JSON.stringify(l)}`).join("\n");
      reject(
        new Error(
          `${what}: not within ${ms} ms\n--- our log ---\n${logs}\n--- pcscd ---\n${ctx.pcscd.log().slice(-2000)}`,
        ),
      );
    }, ms);
    const check = () => {
      if (cond()) {
        clearTimeout(timer);
        resolve();
      } else ctx.waiters.push(check);
    };
    check();
  });
}

const reader = () => ctx.reader as PcscReader;
const state = (s: ReaderState, ms?: number) => until(() => reader().state === s, `reader ${s}`, ms);
const taps = (n: number) => until(() => ctx.taps.length >= n, `${n} tap(s)`);
const logged = (msg: string) => until(() => ctx.lines.some((l) => l.msg === msg), `log line "${msg}"`);

function newReader(): PcscReader {
  const logger = pino(
    { level: "debug" },
    {
      write: (s: string) => {
        ctx.lines.push(JSON.parse(s));
        if (process.env.PCSC_TEST_DEBUG) process.stderr.write(s);
        notify();
      },
    },
  );
  ctx.reader = new PcscReader({
    logger,
    reconnectMinMs: 100,
    reconnectMaxMs: 400,
    onStateChange: (s) => {
      ctx.states.push(s);
      notify();
    },
  });
  return ctx.reader;
}

async function startReader(): Promise<void> {
  await newReader().start(async (uid) => {
    ctx.taps.push(uid);
    notify();
  });
}

test.before(async () => {
  ctx.pcscd = await privatePcscd();
  ctx.card = new VirtualCard({ port: ctx.pcscd.port, uid: UID });
  ctx.card.onMessage = notify;
});

test.after.each(async () => {
  const held = ctx.card.present;
  await ctx.card.remove();
  // pcscd must see the card gone before the next test places it again (it polls every ~400 ms).
  if (held && ctx.reader?.state !== "disconnected") await until(() => !reader().cardPresent, "card seen leaving");
  await ctx.reader?.stop();
  ctx.reader = undefined;
  ctx.taps.length = 0;
  ctx.states.length = 0;
  ctx.lines.length = 0;
});

test.after(async () => {
  await ctx.pcscd.dispose();
});

test("started with no pcscd: disconnected with the line that says how to fix it, never a throw; ready once pcscd starts", async () => {
  await startReader();
  assert.is(reader().state, "disconnected");
  assert.is(reader().reason, PCSCD_MISSING);
  await logged(PCSCD_MISSING);
  await ctx.pcscd.start();
  await state("ok");
  assert.is(reader().readerName, ctx.pcscd.readerName);
  // The outage was said once, however many retries it took.
  assert.is(ctx.lines.filter((l) => l.msg === PCSCD_MISSING).length, 1);
});

test("pcsc_scan (pcsc-tools) sees the vpcd reader, then our card with its ATR", async () => {
  const readers = await pcscScan(["-r"]);
  assert.match(readers, `0: ${ctx.pcscd.readerName}`);
  await startReader();
  await ctx.card.insert();
  // Once our reader has read it, pcscd reports the card to every client.
  await taps(1);
  const cards = await pcscScan(["-c", "-n"]);
  assert.match(cards, /Reader 0: PayLane Virtual 00 00[\s\S]*Card state: Card inserted/);
  assert.match(cards, "ATR: 3B 8F 80 01 80 4F 0C A0 00 00 03 06 03 00 01 00 00 00 00 6A");
});

test("a card tapped gives one tap with its UID, however long it is held", async () => {
  await startReader();
  await state("ok");
  await ctx.card.insert();
  await taps(1);
  assert.equal(ctx.taps, [UID]);
  assert.ok(ctx.card.apdus.includes("FFCA000000"), "the UID came from GET DATA");
  // pcscd keeps polling the held card (one ATR request each ~400 ms): three more polls, still one tap.
  const polls = ctx.card.atrRequests;
  await until(() => ctx.card.atrRequests >= polls + 3, "three more presence polls");
  assert.equal(ctx.taps, [UID]);
  assert.is(reader().counters.reads, 1);
});

test("a card taken off leaves the reader ready, and the next tap of it counts again", async () => {
  await startReader();
  await state("ok");
  await ctx.card.insert();
  await taps(1);
  await ctx.card.remove();
  await until(() => !reader().cardPresent, "card seen leaving");
  assert.is(reader().state, "ok");
  await ctx.card.insert();
  await taps(2);
  assert.equal(ctx.taps, [UID, UID]);
});

test("a card that refuses GET DATA: a clear error, the reader degraded until it leaves, no tap", async () => {
  await startReader();
  await state("ok");
  const refusing = new VirtualCard({ port: ctx.pcscd.port, uid: UID, getDataStatus: 0x6a81 });
  refusing.onMessage = notify;
  await refusing.insert();
  await state("degraded");
  assert.match(reader().reason, "GET DATA (FF CA 00 00 00) answered SW 6A 81: function not supported");
  assert.ok(ctx.lines.some((l) => l.msg === "card on the PC/SC reader could not be read"));
  await refusing.remove();
  await state("ok");
  assert.equal(ctx.taps, []);
  assert.is(reader().counters.readErrors, 1);
});

test("pcscd stopped and started again (and once killed): disconnected, then ready, taps work, no restart", async () => {
  await startReader();
  await state("ok");
  for (const signal of ["SIGTERM", "SIGKILL"] as const) {
    const stoppedAt = Date.now();
    await ctx.pcscd.stop(signal);
    await state("disconnected", 2000);
    assert.ok(Date.now() - stoppedAt < 2000, "disconnected within 2 s");
    await ctx.pcscd.start();
    const startedAt = Date.now();
    await state("ok", 2000);
    assert.ok(Date.now() - startedAt < 2000, "ready within 2 s of pcscd's return");
  }
  assert.equal(ctx.states, ["ok", "disconnected", "ok", "disconnected", "ok"]);
  assert.is(reader().counters.reconnects, 2);
  await ctx.card.insert();
  await taps(1);
  assert.equal(ctx.taps, [UID]);
});

test.run();
