/**
 * Tools this project did not write against `paylane-sim pn532`, run as a user
 * would: the simulator is spawned through its bin on a pty (socat), and
 * Debian's libnfc tools open it as LIBNFC_DEFAULT_DEVICE=pn532_uart:<path>.
 * nfc-poll comes from libnfc-examples (.ci/run installs it with libnfc-bin).
 * Every tool is bounded by a timeout; every wait is on output, bounded by a
 * timeout that only fails.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { Signal } from "../../../test/support/signal.ts";
import { Command } from "../../src/hardware/pn532/commands.ts";
import {
  encodeCommand,
  encodeInfoFrame,
  type Frame,
  FrameDecoder,
  TFI_HOST_TO_PN532,
} from "../../src/hardware/pn532/frame.ts";
import { openSerialPort, type SerialLink } from "../../src/hardware/serial/serial-link.ts";

const test = suite("libnfc against paylane-sim pn532");
const BIN = join(import.meta.dirname, "../../bin/paylane-sim.mjs");
const TOOL_MS = 15_000;
const WAIT_MS = 10_000;

const ctx = {} as { dir: string; path: string; sim: ChildProcess; lines: string[]; signal: Signal };

test.before(async () => {
  ctx.dir = await mkdtemp(join(tmpdir(), "paylane-libnfc-"));
  ctx.path = join(ctx.dir, "pn532");
  ctx.lines = [];
  ctx.signal = new Signal();
  ctx.sim = spawn(process.execPath, [BIN, "pn532", "--link", ctx.path, "--card", "04A1B2C3D4E5F6"], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  let rest = "";
  const onText = (text: string) => {
    const parts = (rest + text).split("\n");
    rest = parts.pop() ?? "";
    ctx.lines.push(...parts);
    // nfc_initiator_target_is_present polls in a tight loop: keep the log bounded.
    ctx.lines.splice(0, Math.max(0, ctx.lines.length - 5000));
    ctx.signal.notify();
  };
  ctx.sim.stdout?.setEncoding("utf8").on("data", onText);
  ctx.sim.stderr?.setEncoding("utf8").on("data", onText);
  ctx.sim.on("exit", ctx.signal.notify);
  await line(/^PN532 v1\.6 on /, "the simulator's ready line");
});

test.after(async () => {
  if (ctx.sim.exitCode === null) {
    const exited = new Promise((resolve) => ctx.sim.once("exit", resolve));
    ctx.sim.kill("SIGINT");
    await exited;
  }
  await rm(ctx.dir, { recursive: true, force: true });
});

/** Waits for a line of the simulator's log matching `re` (checked from `from` on). */
function line(re: RegExp, what: string, from = 0): Promise<string> {
  return ctx.signal.until(
    () => {
      if (ctx.sim.exitCode !== null) throw new Error(`simulator exited (${ctx.sim.exitCode}): ${ctx.lines.join("\n")}`);
      return ctx.lines.slice(from).find((l) => re.test(l));
    },
    what,
    WAIT_MS,
  );
}

/** Types a line on the simulator's stdin and waits for its answer. */
async function type(text: string, answer: RegExp): Promise<void> {
  const from = ctx.lines.length;
  ctx.sim.stdin?.write(`${text}\n`);
  await line(answer, `the simulator to take "${text}"`, from);
}

interface Run {
  code: number | null;
  out: string;
}

/** Runs a tool against the simulator's pty, killed after TOOL_MS; stdout and stderr together. */
function tool(command: string, args: string[], onOut?: (out: string, child: ChildProcess) => void): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: ctx.dir,
      env: { ...process.env, LIBNFC_DEFAULT_DEVICE: `pn532_uart:${ctx.path}`, LIBNFC_LOG_LEVEL: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    const take = (t: string) => {
      out += t;
      onOut?.(out, child);
    };
    child.stdout.setEncoding("utf8").on("data", take);
    child.stderr.setEncoding("utf8").on("data", take);
    const timer = setTimeout(() => child.kill("SIGKILL"), TOOL_MS);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${command} (Debian package libnfc-bin): ${err.message}`));
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      if (code === null) reject(new Error(`${command} ${args.join(" ")} did not finish within ${TOOL_MS} ms:\n${out}`));
      else resolve({ code, out });
    });
  });
}

test("nfc-scan-device finds the simulator on its pty as a PN532 v1.6", async () => {
  const r = await tool("nfc-scan-device", ["-v"]);
  assert.match(r.out, /1 NFC device\(s\) found/, r.out);
  assert.ok(r.out.includes(`pn532_uart:${ctx.path}`), r.out);
  assert.match(r.out, /chip: PN532 v1\.6/, r.out);
});

test("nfc-list lists the card: the 7-byte UID, ATQA 0044 and SAK 00 of an NTAG213", async () => {
  const from = ctx.lines.length;
  const r = await tool("nfc-list", []);
  assert.is(r.code, 0, r.out);
  assert.match(r.out, /1 ISO14443A passive target\(s\) found/, r.out);
  assert.match(r.out, /ATQA \(SENS_RES\): 00 {2}44/, r.out);
  assert.match(r.out, /UID \(NFCID1\): 04 {2}a1 {2}b2 {2}c3 {2}d4 {2}e5 {2}f6/, r.out);
  assert.match(r.out, /SAK \(SEL_RES\): 00/, r.out);
  // The simulator said what it saw, in words.
  await line(/^← Diagnose communication test "libnfc"$/, "the Diagnose line", from);
  await line(/^← InListPassiveTarget max 1, 106 kbps type A$/, "the InListPassiveTarget line", from);
  await line(/^→ 1 target: ATQA 0044 SAK 00 UID 04A1B2C3D4E5F6$/, "the target line", from);
  await line(/^← InListPassiveTarget max 1, 212 kbps FeliCa/, "the FeliCa poll", from);
  await line(/^→ no target$/, "an empty answer for FeliCa", from);
});

test("cards placed and removed on stdin: nfc-list follows, the port opened and closed again and again", async () => {
  for (const [uid, listed] of [
    ["9A3B5C01", /UID \(NFCID1\): 9a {2}3b {2}5c {2}01/],
    ["", undefined],
    ["04A1B2C3D4E5F6", /UID \(NFCID1\): 04 {2}a1 {2}b2 {2}c3 {2}d4 {2}e5 {2}f6/],
    ["DEADBEEF", /UID \(NFCID1\): de {2}ad {2}be {2}ef/],
    ["", undefined],
  ] as const) {
    if (uid) await type(`card ${uid}`, new RegExp(`card ${uid} \\(`));
    else await type("remove", /field empty/);
    const r = await tool("nfc-list", []);
    assert.is(r.code, 0, r.out);
    if (listed) assert.match(r.out, listed, r.out);
    else assert.not.match(r.out, /UID/, `empty field, yet: ${r.out}`);
  }
  assert.is(ctx.sim.exitCode, null, "the simulator is still running");
});

test("nfc-mfclassic and nfc-mfultralight read the NDEF record through InDataExchange", async () => {
  await type("card 9A3B5C01", /MIFARE Classic 1K/);
  const classic = await tool("nfc-mfclassic", ["r", "a", "u", "classic.mfd"]);
  assert.match(classic.out, /64 of 64 blocks read/, classic.out);
  const dump = await readFile(join(ctx.dir, "classic.mfd"));
  assert.equal(Array.from(dump.subarray(0, 4)), [0x9a, 0x3b, 0x5c, 0x01], "block 0 starts with the UID");
  assert.ok(dump.includes("paylane.example/card"), "sector 1 holds the NDEF URI");

  await type("card 04A1B2C3D4E5F6", /NTAG213/);
  const ul = await tool("nfc-mfultralight", ["r", "ul.mfd"]);
  assert.match(ul.out, /16 of 16 pages read/, ul.out);
  const pages = await readFile(join(ctx.dir, "ul.mfd"));
  assert.equal(Array.from(pages.subarray(12, 16)), [0xe1, 0x10, 0x12, 0x00], "capability container");
  assert.ok(pages.includes("paylane.example/card"));
});

test("nfc-poll: a card placed while InAutoPoll waits is found, and its removal is seen", async () => {
  await type("remove", /field empty/);
  const from = ctx.lines.length;
  let placing: Promise<unknown> | undefined;
  let removed = false;
  // stdbuf: nfc-poll block-buffers its stdout into a pipe, and the test acts on its lines as they come.
  const r = await tool("stdbuf", ["-oL", "nfc-poll"], (out) => {
    if (!placing && out.includes("opened")) {
      // Placed once the poll is running: the waiting InAutoPoll answers.
      placing = line(/^… waiting for a card$/, "InAutoPoll waiting", from).then(() =>
        ctx.sim.stdin?.write("card 04A1B2C3D4E5F6\n"),
      );
      // Awaited below, where a timeout says what really went wrong; until then it must not count as unhandled.
      placing.catch(() => {});
    }
    if (!removed && out.includes("Waiting for card removing")) {
      removed = true;
      ctx.sim.stdin?.write("remove\n");
    }
  });
  await placing;
  assert.match(r.out, /UID \(NFCID1\): 04 {2}a1 {2}b2 {2}c3 {2}d4 {2}e5 {2}f6/, r.out);
  assert.match(r.out, /done\./, r.out);
  await line(/^← InAutoPoll 20 polls every 300 ms/, "the InAutoPoll line", from);
});

test("socat ends under the simulator: the pty is made again at the same path and nfc-list finds the card", async () => {
  await type("card DEADBEEF", /MIFARE Classic 1K/);
  // The simulator's socat runs under a small sh guard (pty-pair.ts): simulator → sh → socat.
  const children = (pid: number | undefined, name: string) =>
    execFileSync("pgrep", ["-P", String(pid), name], { encoding: "utf8" })
      .trim()
      .split("\n")
      .map(Number);
  const [guard] = children(ctx.sim.pid, "sh");
  const [socat] = children(guard, "socat");
  const from = ctx.lines.length;
  if (!socat || !guard) throw new Error(`no socat under the simulator (pid ${ctx.sim.pid})`);
  process.kill(socat, "SIGTERM");
  await line(/pty made again at /, "the pty made again", from);
  const r = await tool("nfc-list", []);
  assert.match(r.out, /UID \(NFCID1\): de {2}ad {2}be {2}ef/, r.out);
});

// ---- frames replayed by hand, as a tool would write them ---------------------------

/** A client on the simulator's pty, collecting frames. */
async function client(): Promise<{ link: SerialLink; next(): Promise<Frame> }> {
  const link = await openSerialPort(ctx.path);
  const decoder = new FrameDecoder();
  const frames: Frame[] = [];
  const signal = new Signal();
  link.onData((chunk) => {
    for (const e of decoder.push(chunk)) if (e.type === "frame") frames.push(e.frame);
    signal.notify();
  });
  return { link, next: () => signal.until(() => frames.shift(), "a frame from the simulator", WAIT_MS) };
}

async function exchange(c: Awaited<ReturnType<typeof client>>, frame: Uint8Array): Promise<Frame> {
  await c.link.write(frame);
  assert.equal(await c.next(), { kind: "ack" });
  return c.next();
}

const info = (data: number[]): Frame => ({ kind: "info", tfi: 0xd5, data: Uint8Array.from(data), extended: false });

test("replayed frames with 00 FF inside their data are answered, and an unknown command costs no sync", async () => {
  await type("card 04A1B2C3D4E5F6", /NTAG213/);
  const c = await client();
  try {
    await c.link.write(Uint8Array.of(0x55, 0x55, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0));
    assert.equal(await exchange(c, encodeCommand([Command.SAMConfiguration, 0x01])), info([0x15]));
    // 00 FF 10 F0: a header that checks out, claiming a 16-byte frame that never comes.
    const echo = [0x00, 0x00, 0xff, 0x10, 0xf0, 0x41, 0x42];
    assert.equal(await exchange(c, encodeCommand(echo)), info([0x01, ...echo.slice(1)]));
    // Data ending 00 with DCS FF: 00 FF then the postamble, then silence.
    const tail = encodeInfoFrame(TFI_HOST_TO_PN532, [0x00, 0x00, 0x2d, 0x00]);
    assert.equal(Array.from(tail.subarray(-3)), [0x00, 0xff, 0x00]);
    assert.equal(await exchange(c, tail), info([0x01, 0x00, 0x2d, 0x00]));
    // Unknown command: ACK, then the syntax-error frame; the next command is answered.
    assert.equal(await exchange(c, encodeCommand([0x7a, 0x01])), { kind: "error" });
    const fw = await exchange(c, encodeCommand([Command.GetFirmwareVersion]));
    assert.equal(fw, info([0x03, 0x32, 0x01, 0x06, 0x07]));
    // A page written with 00 FF 10 F0 reads back: the response carries the header-like bytes too.
    const listed = await exchange(c, encodeCommand([Command.InListPassiveTarget, 0x01, 0x00]));
    assert.is(listed.kind === "info" && listed.data[1], 1);
    const write = [Command.InDataExchange, 0x01, 0xa2, 0x05, 0x00, 0xff, 0x10, 0xf0];
    assert.equal(await exchange(c, encodeCommand(write)), info([0x41, 0x00]));
    const read = await exchange(c, encodeCommand([Command.InDataExchange, 0x01, 0x30, 0x05]));
    assert.ok(read.kind === "info" && read.data[1] === 0x00);
    assert.equal(Array.from(read.kind === "info" ? read.data.subarray(2, 6) : []), [0x00, 0xff, 0x10, 0xf0]);
  } finally {
    await c.link.close();
  }
  await line(/^→ echo ".*"$/, "the echo line");
  await line(/^→ syntax error frame: command 0x7A is not implemented/, "the syntax error line");
});

test.run();
