/**
 * The PAN scanner other tests use to prove no card number was logged or
 * stored: what it must find, and the look-alikes it must not report.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { findPans, luhnValid, scanFilesForPans } from "../../test/support/pan-scan.ts";

test("Luhn: test card numbers pass, a changed digit fails", () => {
  for (const pan of ["4242424242424242", "4111111111111111", "5555555555554444", "378282246310005"]) {
    assert.ok(luhnValid(pan), pan);
  }
  assert.not.ok(luhnValid("4242424242424241"));
});

test("an unbroken 16-digit PAN is found", () => {
  assert.equal(findPans('{"card":"4242424242424242"}'), ["4242424242424242"]);
});

test("PANs grouped by spaces or dashes are found as written", () => {
  assert.equal(findPans("card 4242 4242 4242 4242 ok"), ["4242 4242 4242 4242"]);
  assert.equal(findPans("card: 4111-1111-1111-1111."), ["4111-1111-1111-1111"]);
  // American Express prints 4-6-5.
  assert.equal(findPans("amex 3782 822463 10005"), ["3782 822463 10005"]);
});

test("a grouped PAN followed by more numbers is still found", () => {
  assert.equal(findPans("4242 4242 4242 4242 12 25"), ["4242 4242 4242 4242"]);
});

test("one number mixing spaces and dashes is not a printed card", () => {
  assert.equal(findPans("4242-4242 4242-4242"), []);
});

test("a Luhn-invalid 16-digit run is not reported", () => {
  assert.equal(findPans("4242424242424241"), []);
  assert.equal(findPans("4242 4242 4242 4241"), []);
});

test("runs shorter than 13 digits are not reported", () => {
  // 424242424242 passes Luhn but is 12 digits.
  assert.ok(luhnValid("424242424242"));
  assert.equal(findPans("id 424242424242 and 4242 4242 4242"), []);
});

test("a run of 20 or more digits is not searched for a PAN inside it", () => {
  const twenty = "42424242424242424242";
  assert.ok(luhnValid(twenty.slice(0, 16)));
  assert.equal(findPans(twenty), []);
  assert.equal(findPans(`x${"4242424242424242".repeat(3)}x`), []);
});

test("UUIDs and ISO timestamps are not PANs", () => {
  const text = [
    "7f1c9a52-3b8e-4d2a-9c1e-5a6b7c8d9e0f",
    "00000000-0000-4000-8000-000000000000",
    "12345678-1234-1234-1234-123456789012",
    "2024-05-01T09:00:00.000Z",
    "2024-05-01 09:00:00",
  ].join("\n");
  assert.equal(findPans(text), []);
});

test("every PAN is reported, in order of appearance", () => {
  assert.equal(findPans("a 5555555555554444 b 4242 4242 4242 4242 c 4111111111111111"), [
    "5555555555554444",
    "4242 4242 4242 4242",
    "4111111111111111",
  ]);
});

test("files are scanned as latin1, binary bytes around the digits included; missing files are skipped", async () => {
  const dir = await mkdtemp(join(tmpdir(), "pan-scan-"));
  try {
    const binary = join(dir, "journal.db");
    await writeFile(
      binary,
      Buffer.concat([Buffer.from([0x00, 0xff, 0x13]), Buffer.from("4242424242424242"), Buffer.from([0x00, 0x80])]),
    );
    const clean = join(dir, "app.log");
    await writeFile(clean, '{"msg":"card payment approved","cardLabel":"VISA •••• 4242"}\n');
    const hits = await scanFilesForPans([binary, clean, join(dir, "journal.db-wal")]);
    assert.equal(hits, [{ file: binary, match: "4242424242424242" }]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test.run();
