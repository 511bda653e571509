/**
 * Check-in and payment receipts rendered to ESC/POS and read back by the
 * printer simulator: what the member would see on the slip.
 */
import { suite } from "uvu";
import * as assert from "uvu/assert";
import {
  type CheckInReceipt,
  formatMoney,
  maskUid,
  type PaymentReceipt,
  receiptLayout,
  renderReceipt,
  wrap,
} from "../../src/hardware/printer/receipt.ts";
import { type PrintedLine, type PrintedReceipt, PrinterSimulator } from "../../src/hardware/printer/simulator.ts";

const test = suite("printer-receipt");

const checkin: CheckInReceipt = {
  kind: "checkin",
  venue: "Riverside Pool",
  kiosk: "k-03",
  at: new Date("2024-05-01T09:05:00Z"),
  timeZone: "Europe/Berlin",
  memberName: "Zoë Müller",
  transactionId: "ci_7Q2M9XK4",
  cardUid: "04A1B2C3D4E5F6",
};

const payment: PaymentReceipt = {
  kind: "payment",
  venue: "Riverside Pool",
  kiosk: "k-03",
  at: new Date("2024-12-31T23:30:00Z"),
  timeZone: "America/New_York",
  memberName: "Sam O'Neil",
  transactionId: "pay_01HX3Z9Q8K",
  cardUid: "A1B2C3D4",
  item: "Sauna day pass",
  amount: { minor: 1250, currency: "EUR" },
  newBalance: { minor: 300, currency: "EUR" },
};

function printOut(bytes: Uint8Array, columns = 42): { receipts: PrintedReceipt[]; sim: PrinterSimulator } {
  const sim = new PrinterSimulator({ columns });
  sim.write(bytes);
  return { receipts: [...sim.receipts], sim };
}

const find = (r: PrintedReceipt, re: RegExp): PrintedLine | undefined => r.lines.find((l) => re.test(l.text));

test("check-in receipt: venue centred and emphasised, member, site time, masked card, QR of the transaction, one cut", () => {
  const { receipts, sim } = printOut(renderReceipt(checkin));
  assert.is(receipts.length, 1, "one cut");
  const r = receipts[0] as PrintedReceipt;
  assert.is(r.cut, true);
  const venue = r.lines[0] as PrintedLine;
  assert.is(venue.text, "Riverside Pool");
  assert.is(venue.align, "center");
  assert.is(venue.bold, true);
  assert.ok(find(r, /^CHECK-IN$/)?.doubleWidth, "title in double size");
  assert.is(find(r, /^Member/)?.text, `Member${" ".repeat(42 - 6 - 10)}Zoë Müller`);
  assert.ok(find(r, /^Time .*2024-05-01 11:05$/), "Berlin wall clock (UTC+2 in May)");
  assert.ok(find(r, /^Kiosk k-03$/));
  assert.equal(r.qr, ["ci_7Q2M9XK4"]);
  assert.ok(find(r, /^ci_7Q2M9XK4$/), "transaction id printed in words too");
  const card = find(r, /^Card/);
  assert.ok(card?.text.endsWith("**********E5F6"), card?.text);
  const all = r.lines.map((l) => l.text).join("\n");
  assert.not.match(all, /04A1B2C3D4/);
  assert.is(sim.stats.skipped, 0, "every byte was a command the printer understands");
});

test("payment receipt: item, amount and new balance as 'EUR 12.50', in the site's time zone", () => {
  const r = printOut(renderReceipt(payment)).receipts[0] as PrintedReceipt;
  assert.ok(find(r, /^PAYMENT$/));
  assert.ok(find(r, /^Item +Sauna day pass$/));
  const amount = find(r, /^Amount +EUR 12\.50$/);
  assert.ok(amount, "amount line");
  assert.is(amount?.bold, true);
  assert.ok(find(r, /^New balance +EUR 3\.00$/));
  assert.ok(find(r, /^Time .*2024-12-31 18:30$/), "New York is UTC-5 in December");
  assert.equal(r.qr, ["pay_01HX3Z9Q8K"]);
  assert.ok(find(r, /^Card +\*\*\*\*C3D4$/));
  for (const l of r.lines) assert.ok(l.text.length <= 42);
});

test("the card UID never reaches the printer in full, not even as raw bytes", () => {
  const raw = Buffer.from(renderReceipt(checkin)).toString("latin1");
  assert.not.ok(raw.includes("04A1B2C3D4E5F6"));
  assert.ok(raw.includes("E5F6"));
});

test("58 mm paper (32 columns): nothing overflows, so the printer never wraps a line on its own", () => {
  const long: PaymentReceipt = {
    ...payment,
    venue: "Städtisches Hallenbad Nord und Saunalandschaft am Stadtpark mit Außenbecken",
    memberName: "Maximiliane Alexandra von Hohenzollern-Sigmaringen",
    item: "Ten-visit pass, adult, off-peak, including locker and towel",
    transactionId: "pay_01HX3Z9Q8K7M6N5P4R3S2T1V0WXYZ",
  };
  const layout = receiptLayout(long, { columns: 32 }).filter((i) => i.type === "text");
  const r = printOut(renderReceipt(long, { columns: 32 }), 32).receipts[0] as PrintedReceipt;
  // Layout lines plus the blank line after the QR and the 3 lines of ESC d 3.
  assert.is(r.lines.length, layout.length + 4, "no line was wrapped by the printer");
  assert.is(r.lines.filter((l) => l.bold && l.doubleHeight && !l.doubleWidth).length, 2, "venue wraps to two lines");
  assert.match(r.lines[1]?.text ?? "", /\.\.\.$/, "and says it was cut short");
  const member = r.lines.slice(
    r.lines.findIndex((l) => l.text === "Member") + 1,
    r.lines.findIndex((l) => l.text.startsWith("Card")),
  );
  assert.equal(
    member.map((l) => l.text),
    ["  Maximiliane Alexandra von", "  Hohenzollern-Sigmaringen"],
    "a long name goes under its label",
  );
  assert.equal(r.qr, ["pay_01HX3Z9Q8K7M6N5P4R3S2T1V0WXYZ"], "the QR always holds the whole transaction id");
  assert.is(r.lines.find((l) => l.text.startsWith("pay_"))?.text, "pay_01HX3Z9Q8K7M6N5P4R3S2T1V0WXY");
  assert.ok(
    r.lines.some((l) => l.text === "Z"),
    "the id wraps, it is not truncated",
  );
});

test("names the code page cannot print come out as '?', and control characters cannot inject commands", () => {
  const r = printOut(renderReceipt({ ...checkin, memberName: "李小龍 \x1bd\x09x\x1dV\x00" })).receipts;
  assert.is(r.length, 1, "the injected GS V did not cut early");
  assert.ok(find(r[0] as PrintedReceipt, /^Member +\?\?\? d x V$/));
});

test("formatMoney: ISO code then the currency's own minor digits", () => {
  assert.is(formatMoney({ minor: 1250, currency: "EUR" }), "EUR 12.50");
  assert.is(formatMoney({ minor: 5, currency: "EUR" }), "EUR 0.05");
  assert.is(formatMoney({ minor: -300, currency: "GBP" }), "GBP -3.00");
  assert.is(formatMoney({ minor: 1250, currency: "JPY" }), "JPY 1250");
  assert.is(formatMoney({ minor: 1250, currency: "BHD" }), "BHD 1.250");
  assert.throws(
    () => formatMoney({ minor: 1, currency: "eur" }),
    /currency must be an ISO 4217 code like "EUR", got "eur"/,
  );
  assert.throws(
    () => formatMoney({ minor: 12.5, currency: "EUR" }),
    /amount must be an integer of minor units, got 12.5/,
  );
});

test("maskUid shows only the last 4 characters (and never more than half)", () => {
  assert.is(maskUid("04A1B2C3D4E5F6"), "**********E5F6");
  assert.is(maskUid("A1B2C3D4"), "****C3D4");
  assert.is(maskUid("A1B2C3"), "***2C3");
  assert.is(maskUid("AB"), "*B");
});

test("wrap: words kept whole where they fit, long words split, overflow marked", () => {
  assert.equal(wrap("the quick brown fox", 10), ["the quick", "brown fox"]);
  assert.equal(wrap("abcdefghijkl", 5), ["abcde", "fghij", "kl"]);
  assert.equal(wrap("one two three four", 8, 2), ["one two", "three..."]);
  assert.equal(wrap("", 8), [""]);
});

test("bad input is refused with the field named", () => {
  assert.throws(() => renderReceipt({ ...checkin, timeZone: "Mars/Olympus" }), /timeZone must be an IANA zone/);
  assert.throws(() => renderReceipt({ ...checkin, transactionId: " " }), /transactionId must not be empty/);
  assert.throws(() => renderReceipt(checkin, { columns: 8 }), /columns must be an integer from 16 to 255, got 8/);
});

test.run();
