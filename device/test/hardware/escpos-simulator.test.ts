/**
 * The printer simulator's streaming ESC/POS decoder: what a customer would hold
 * in their hand, the status bits it sends back, and that no byte stream —
 * random, corrupted, split anywhere — makes it throw or grow without bound.
 */
import fc from "fast-check";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { EscPosBuilder, realtimePaperStatusByte, requestPaperStatus } from "../../src/hardware/printer/escpos.ts";
import { renderReceipt } from "../../src/hardware/printer/receipt.ts";
import { MAX_COMMAND_DATA, type PrintedReceipt, PrinterSimulator } from "../../src/hardware/printer/simulator.ts";

const test = suite("escpos-simulator");
const b = () => new EscPosBuilder().initialize();
const bytes = (...xs: number[]) => Uint8Array.from(xs);

function decode(data: Uint8Array, columns = 42): { sim: PrinterSimulator; receipts: PrintedReceipt[] } {
  const sim = new PrinterSimulator({ columns });
  sim.write(data);
  return { sim, receipts: [...sim.receipts] };
}

const sampleReceipt = renderReceipt({
  kind: "payment",
  venue: "Aqua Centre",
  kiosk: "k-07",
  at: new Date("2024-05-01T09:00:00Z"),
  timeZone: "Europe/Paris",
  memberName: "Jo Lee",
  transactionId: "tx-5f2c",
  item: "Swim",
  amount: { minor: 450, currency: "EUR" },
  newBalance: { minor: 1050, currency: "EUR" },
});

test("a line keeps the justification of its first character and a style per run", () => {
  const data = b()
    .align("center")
    .emphasis(true)
    .size({ doubleWidth: true, doubleHeight: true })
    .line("BIG")
    .size({})
    .emphasis(false)
    .align("right")
    .line("right")
    .cut({ feed: 0 })
    .bytes();
  const { receipts } = decode(data);
  assert.is(receipts.length, 1);
  assert.equal(receipts[0]?.lines, [
    {
      text: "BIG",
      align: "center",
      bold: true,
      doubleWidth: true,
      doubleHeight: true,
      runs: [{ text: "BIG", bold: true, width: 2, height: 2 }],
    },
    { text: "right", align: "right", bold: false, doubleWidth: false, doubleHeight: false, runs: [{ text: "right" }] },
  ]);
  assert.is(receipts[0]?.cut, true);
});

test("text longer than the paper wraps like the printer does; double width halves the columns", () => {
  const { sim } = decode(b().line("abcdefghij").size({ doubleWidth: true }).line("abcdef").bytes(), 8);
  assert.equal(
    sim.pending.lines.map((l) => l.text),
    ["abcdefgh", "ij", "abcd", "ef"],
  );
});

test("ESC d n prints the buffer and feeds: n-1 blank lines after it", () => {
  const { sim } = decode(b().text("x").feed(3).bytes());
  assert.equal(
    sim.pending.lines.map((l) => l.text),
    ["x", "", ""],
  );
});

test("ESC @ drops an unprinted partial line and resets styles and code page", () => {
  const data = b().emphasis(true).text("lost").initialize().line("kept €").bytes();
  const { sim } = decode(data);
  assert.equal(sim.pending.lines, [
    { text: "kept €", align: "left", bold: false, doubleWidth: false, doubleHeight: false, runs: [{ text: "kept €" }] },
  ]);
});

test("QR store then print gives the stored contents; print mid-line is ignored and counted", () => {
  const { sim, receipts } = decode(b().qr("TX-1").text("oops").qr("TX-2").line().cut().bytes());
  assert.equal(receipts[0]?.qr, ["TX-1"]);
  assert.ok(sim.stats.skipped >= 8, "the mid-line QR print was skipped");
});

test("GS V: function A and B both cut; one receipt per cut; a cut mid-line is ignored", () => {
  const data = b()
    .line("one")
    .cut({ partial: false })
    .line("two")
    .cut({ partial: true, feed: 5 })
    .text("three")
    .cut()
    .line()
    .cut()
    .bytes();
  const { receipts } = decode(data);
  assert.equal(
    receipts.map((r) => r.lines.map((l) => l.text)),
    [["one"], ["two"], ["three"]],
  );
});

test("DLE EOT 4 answers the roll paper sensor bits; GS r 1 too, except while offline for paper end", () => {
  const sim = new PrinterSimulator();
  const gsr = bytes(0x1d, 0x72, 0x01);
  assert.equal([...sim.write(requestPaperStatus())], [0x12]);
  assert.equal([...sim.write(gsr)], [0x00]);
  sim.setPaper("near-end");
  assert.equal([...sim.write(requestPaperStatus())], [0x1e]);
  assert.equal([...sim.write(gsr)], [0x03]);
  sim.setPaper("out");
  assert.equal([...sim.write(requestPaperStatus())], [realtimePaperStatusByte("out")]);
  assert.equal([...sim.write(gsr)], [], "GS r is not processed while the printer is offline");
  // DLE EOT 1 (printer status): bit 3 offline. DLE EOT 2 (offline cause): bit 5 paper-end stop.
  assert.equal([...sim.write(bytes(0x10, 0x04, 0x01, 0x10, 0x04, 0x02))], [0x1a, 0x32]);
});

test("out of paper: nothing prints, output is counted as dropped; after reload it prints again", () => {
  const sim = new PrinterSimulator();
  sim.setPaper("out");
  sim.write(sampleReceipt);
  assert.is(sim.receipts.length, 0);
  assert.ok(sim.stats.dropped > 0);
  sim.setPaper("ok");
  sim.write(sampleReceipt);
  assert.is(sim.receipts.length, 1);
  assert.equal(sim.receipts[0]?.qr, ["tx-5f2c"]);
});

test("a stream split at every byte decodes the same as in one piece", () => {
  const whole = decode(sampleReceipt).receipts;
  const sim = new PrinterSimulator();
  for (const x of sampleReceipt) sim.write(bytes(x));
  assert.equal(sim.receipts, whole);
  assert.is(sim.stats.skipped, 0);
});

test("unknown commands and unsupported GS ( functions are skipped whole and counted, not printed", () => {
  const graphics = bytes(0x1d, 0x28, 0x4c, 0x04, 0x00, 0x41, 0x42, 0x43, 0x44); // GS ( L, 4-byte payload
  const data = Uint8Array.from([...bytes(0x1b, 0x7a), ...graphics, ...bytes(0x01, 0x1b), ...b().line("ok").bytes()]);
  const { sim } = decode(data);
  assert.equal(
    sim.pending.lines.map((l) => l.text),
    ["ok"],
  );
  assert.is(sim.stats.skipped, 2 + 9 + 1 + 1);
});

test("attach(): decodes from the printer's end of a link and answers on it", () => {
  const listeners = new Set<(c: Uint8Array) => void>();
  const sent: number[] = [];
  const end = {
    onData: (l: (c: Uint8Array) => void) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    write: async (c: Uint8Array) => {
      sent.push(...c);
    },
  };
  const sim = new PrinterSimulator();
  const detach = sim.attach(end);
  for (const l of listeners) l(requestPaperStatus());
  assert.equal(sent, [0x12]);
  detach();
  assert.is(listeners.size, 0);
});

test("FS commands (Kanji mode, code system, NV image) are consumed whole: no stray text, the NV image is an image", () => {
  const data = Uint8Array.from([
    ...b().bytes(),
    ...[0x1c, 0x2e, 0x1c, 0x26, 0x1c, 0x43, 0x01, 0x1c, 0x21, 0x00, 0x1c, 0x53, 0x01, 0x02], // FS . & C ! S
    ...[0x1c, 0x70, 0x01, 0x00], // FS p 1 0: print NV image 1
    ...b().line("after").cut().bytes(),
  ]);
  const { sim, receipts } = decode(data);
  assert.equal(receipts[0]?.items, [
    { type: "image", width: 0, height: 0, ref: "NV 1" },
    {
      type: "text",
      line: {
        text: "after",
        align: "left",
        bold: false,
        doubleWidth: false,
        doubleHeight: false,
        runs: [{ text: "after" }],
      },
    },
  ]);
  assert.is(sim.stats.skipped, 0);
});

test("GS k: function A up to NUL and function B by length; CODE128 code set C digits and '{{' decoded; mid-line ignored", () => {
  const code128 = [0x7b, 0x42, 0x41, 0x7b, 0x7b, 0x7b, 0x43, 12, 34, 5]; // {B A {{ {C 12 34 05
  const data = Uint8Array.from([
    ...b().bytes(),
    ...[0x1d, 0x6b, 0x04, ...Buffer.from("PAY-42"), 0x00], // CODE39, function A
    ...[0x1d, 0x6b, 0x49, code128.length, ...code128], // CODE128, function B
    ...[0x78, 0x1d, 0x6b, 0x45, 0x02, 0x41, 0x42, 0x0a], // "x" then CODE39: not at the start of a line
    ...b().cut().bytes(),
  ]);
  const { sim, receipts } = decode(data);
  assert.equal(
    receipts[0]?.items.filter((i) => i.type !== "text"),
    [
      { type: "barcode", symbology: "CODE39", data: "PAY-42" },
      { type: "barcode", symbology: "CODE128", data: "A{123405" },
    ],
  );
  assert.equal(
    receipts[0]?.lines.map((l) => l.text),
    ["x"],
    "the barcode's data did not print as text",
  );
  assert.is(sim.stats.skipped, 6, "the mid-line GS k was skipped whole");
});

test("GS ( L raster graphics and ESC * 8-dot columns print as images with their dots; GS v 0 mid-line is ignored", () => {
  // GS ( L fn 112: a=48 bx=1 by=1 c=49, 16 x 2 dots; then fn 50 prints it.
  const store = [0x1d, 0x28, 0x4c, 14, 0, 48, 112, 48, 1, 1, 49, 16, 0, 2, 0, 0xf0, 0x0f, 0xaa, 0x55];
  const print = [0x1d, 0x28, 0x4c, 2, 0, 48, 50];
  const column = [0x1b, 0x2a, 0x00, 2, 0, 0x80, 0x01, 0x0a]; // two columns: top dot, bottom dot
  const raster = [0x79, 0x1d, 0x76, 0x30, 0x00, 0x01, 0x00, 0x01, 0x00, 0xff, 0x0a];
  const data = Uint8Array.from([...b().bytes(), ...store, ...print, ...column, ...raster, ...b().cut().bytes()]);
  const { receipts } = decode(data);
  assert.equal(
    receipts[0]?.items.filter((i) => i.type !== "text"),
    [
      { type: "image", width: 16, height: 2, bits: bytes(0xf0, 0x0f, 0xaa, 0x55) },
      { type: "image", width: 2, height: 8, bits: bytes(0x80, 0, 0, 0, 0, 0, 0, 0x40) },
    ],
  );
  assert.equal(
    receipts[0]?.lines.map((l) => l.text),
    ["y"],
    "no image byte printed as text",
  );
});

test("ESC t: PC437, PC858 and WPC1252 bytes print as their characters; HT goes to the next 8-column stop", () => {
  const data = Uint8Array.from([
    ...b().bytes(),
    ...[0x1b, 0x74, 0, 0x81, 0xe1, 0x09, 0x1b, 0x74, 19, 0xd5, 0x9d, 0x1b, 0x74, 16, 0x80, 0xe9, 0x0a],
  ]);
  const { sim } = decode(data);
  assert.equal(
    sim.pending.lines.map((l) => l.text),
    ["üß      €Ø€é"],
  );
});

// --- property-based ----------------------------------------------------------

const limits = { columns: 42, maxReceipts: 8, maxLines: 50 };

function assertBounded(sim: PrinterSimulator): void {
  assert.ok(sim.receipts.length <= limits.maxReceipts, "receipts capped");
  for (const r of [...sim.receipts, sim.pending]) {
    assert.ok(r.lines.length <= limits.maxLines, "lines capped");
    // Font B fits 4/3 as many characters as font A.
    for (const l of r.lines) assert.ok(l.text.length <= (limits.columns * 4) / 3, "a line never exceeds the paper");
    assert.ok(r.items.length <= limits.maxLines + 48, "items capped");
    for (const i of r.items) if (i.type === "image") assert.ok((i.bits?.length ?? 0) <= 64 * 1024, "image bits capped");
    assert.ok(r.qr.length <= 32);
    for (const q of r.qr) assert.ok(q.length <= 7089);
  }
}

/** Streams biased towards command prefixes, so the decoder's states are all reached. */
const noisyBytes = fc
  .array(
    fc.oneof(
      { weight: 6, arbitrary: fc.integer({ min: 0, max: 255 }) },
      { weight: 2, arbitrary: fc.constantFrom(0x1b, 0x1d, 0x10, 0x0a, 0x28, 0x6b, 0x56, 0x04) },
    ),
    { maxLength: 3000 },
  )
  .map((xs) => Uint8Array.from(xs));

test("property: random bytes in random chunks never throw and stay within bounds", () => {
  fc.assert(
    fc.property(
      noisyBytes,
      fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 20 }),
      (data, cuts) => {
        const sim = new PrinterSimulator(limits);
        let at = 0;
        for (let i = 0; at < data.length; i++) {
          const n = cuts[i % cuts.length] as number;
          sim.write(data.subarray(at, at + n));
          at += n;
        }
        assert.is(sim.stats.bytes, data.length);
        assertBounded(sim);
      },
    ),
    { numRuns: 300 },
  );
});

test("property: a corrupted receipt (bytes flipped, dropped, inserted) never throws", () => {
  const edits = fc.array(
    fc.record({
      at: fc.nat({ max: sampleReceipt.length - 1 }),
      op: fc.constantFrom("flip", "drop", "insert"),
      v: fc.nat(255),
    }),
    { maxLength: 20 },
  );
  fc.assert(
    fc.property(edits, (es) => {
      const xs = [...sampleReceipt];
      for (const e of es) {
        const at = Math.min(e.at, xs.length - 1);
        if (e.op === "flip") xs[at] = e.v;
        else if (e.op === "drop") xs.splice(at, 1);
        else xs.splice(at, 0, e.v);
      }
      const sim = new PrinterSimulator(limits);
      sim.write(Uint8Array.from(xs));
      assertBounded(sim);
    }),
    { numRuns: 300 },
  );
});

test("property: a valid receipt after garbage still decodes", () => {
  const clean = decode(sampleReceipt, limits.columns).receipts[0] as PrintedReceipt;
  // ESC/POS has no framing: the longest thing garbage can open is a command's
  // data (at most MAX_COMMAND_DATA) after its header (at most 8 bytes). A host
  // recovering a link sends that much filler (NUL: no effect in standard mode) before ESC @.
  const resync = new Uint8Array(MAX_COMMAND_DATA + 8);
  fc.assert(
    fc.property(noisyBytes, (garbage) => {
      const sim = new PrinterSimulator({ ...limits, maxLines: 5000 });
      sim.write(garbage);
      sim.write(resync);
      sim.write(sampleReceipt);
      const last = sim.receipts.at(-1) as PrintedReceipt;
      // Lines garbage printed without a cut share the receipt; ours are its tail.
      assert.equal(last.lines.slice(-clean.lines.length), clean.lines);
      assert.equal(last.qr.at(-1), "tx-5f2c");
      assert.is(last.cut, true);
    }),
    { numRuns: 100 },
  );
});

test("property: without filler, garbage that leaves no command open does not affect the next receipt", () => {
  const clean = decode(sampleReceipt, limits.columns).receipts[0] as PrintedReceipt;
  // Printable text and line feeds only: the decoder is back at ground after every byte.
  const text = fc.array(fc.oneof(fc.integer({ min: 0x20, max: 0xff }), fc.constant(0x0a)), { maxLength: 500 });
  fc.assert(
    fc.property(text, (garbage) => {
      const sim = new PrinterSimulator({ ...limits, maxLines: 5000 });
      sim.write(Uint8Array.from(garbage));
      sim.write(sampleReceipt);
      const last = sim.receipts.at(-1) as PrintedReceipt;
      assert.equal(last.lines.slice(-clean.lines.length), clean.lines);
      assert.equal(last.qr, ["tx-5f2c"]);
    }),
    { numRuns: 200 },
  );
});

test.run();
