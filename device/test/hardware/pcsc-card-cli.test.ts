/**
 * `paylane-sim pcsc-card` run as a user would, against a stand-in for vpcd's
 * socket (the real pcscd + vpcd path is in pcsc-pcscd.test.ts): the card goes
 * on the reader, answers the ATR request and GET DATA with its UID, says so in
 * words, and `remove` on stdin takes it off (vpcd sees the socket close).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { Signal } from "../../../test/support/signal.ts";

const test = suite("paylane-sim pcsc-card");
const BIN = join(import.meta.dirname, "../../bin/paylane-sim.mjs");
const WAIT_MS = 10_000;

test("the card answers vpcd's ATR request and GET DATA with its UID, and remove takes it off", async () => {
  const signal = new Signal();
  const answers: Buffer[] = [];
  let card: Socket | undefined;
  let closed = false;
  let rx = Buffer.alloc(0);
  const vpcd: Server = createServer((socket) => {
    card = socket;
    socket.on("data", (chunk: Buffer) => {
      rx = Buffer.concat([rx, chunk]);
      while (rx.length >= 2 && rx.length >= 2 + rx.readUInt16BE(0)) {
        answers.push(rx.subarray(2, 2 + rx.readUInt16BE(0)));
        rx = rx.subarray(2 + rx.readUInt16BE(0));
      }
      signal.notify();
    });
    socket.on("close", () => {
      closed = true;
      signal.notify();
    });
    signal.notify();
  });
  await new Promise<void>((resolve) => vpcd.listen(0, "127.0.0.1", resolve));
  const port = (vpcd.address() as { port: number }).port;
  const lines: string[] = [];
  const sim: ChildProcess = spawn(
    process.execPath,
    [BIN, "pcsc-card", "--vpcd", `127.0.0.1:${port}`, "--card", "04A1B2C3"],
    {
      stdio: ["pipe", "pipe", "pipe"],
    },
  );
  for (const stream of [sim.stdout, sim.stderr]) {
    stream?.setEncoding("utf8").on("data", (t: string) => {
      lines.push(...t.split("\n").filter(Boolean));
      signal.notify();
    });
  }
  try {
    await signal.until(() => card, "the card on the reader", WAIT_MS);
    const send = (payload: number[]) =>
      card?.write(Buffer.from([payload.length >> 8, payload.length & 0xff, ...payload]));
    send([4]); // vpcd: "send your ATR"
    await signal.until(() => answers.length === 1, "the ATR", WAIT_MS);
    assert.is(answers[0]?.toString("hex"), "3b8f8001804f0ca000000306030001000000006a", "MIFARE Classic 1K's ATR");
    send([0xff, 0xca, 0x00, 0x00, 0x00]); // GET DATA
    await signal.until(() => answers.length === 2, "the GET DATA answer", WAIT_MS);
    assert.is(answers[1]?.toString("hex"), "04a1b2c39000");
    await signal.until(
      () => lines.find((l) => l === "← GET DATA FF CA 00 00 00 → UID 04A1B2C3 90 00"),
      "the GET DATA line",
      WAIT_MS,
    );
    // vpcd drops the card (pcscd stopped): said at once, and the card goes back on once the reader listens.
    const dropped = card;
    closed = false;
    dropped?.destroy();
    await signal.until(() => lines.find((l) => l.includes("the reader went away")), "the drop said", WAIT_MS);
    await signal.until(() => card !== dropped && lines.includes("  card 04A1B2C3 on the reader"), "back on", WAIT_MS);
    closed = false;
    sim.stdin?.write("remove\n");
    await signal.until(() => closed, "the card taken off (socket closed)", WAIT_MS);
    await signal.until(() => lines.includes("  card taken off"), "said so", WAIT_MS);
  } finally {
    const exited = new Promise((resolve) => sim.once("exit", resolve));
    sim.kill("SIGINT");
    await exited;
    await new Promise((resolve) => vpcd.close(resolve));
  }
  assert.match(lines[0] ?? "", /^card 04A1B2C3 on the vpcd reader at 127\.0\.0\.1:\d+; type `card <uid>`/);
  assert.is(lines.at(-1), "stopped; the card is off the reader");
});

test("no vpcd listening: one line saying what to install and start", async () => {
  const r = await new Promise<{ code: number | null; err: string }>((resolve) => {
    const p = spawn(process.execPath, [BIN, "pcsc-card", "--vpcd", "127.0.0.1:1"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let err = "";
    p.stderr.setEncoding("utf8").on("data", (t: string) => {
      err += t;
    });
    p.on("exit", (code) => resolve({ code, err }));
  });
  assert.is(r.code, 1);
  assert.is(r.err.trim().split("\n").length, 1, r.err);
  assert.match(
    r.err,
    /no vpcd reader listens on 127\.0\.0\.1:1: .*apt-get install pcscd vsmartcard-vpcd; systemctl restart pcscd/,
  );
});

test.run();
