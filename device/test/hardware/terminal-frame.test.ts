/**
 * ZVT APDUs and messages byte for byte: framing with the one-byte and the
 * extended (FF LL HH) length, a decoder fed TCP chunks cut anywhere, and the
 * Status information parser, which must keep no more of the card than the
 * last four digits.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { findPans } from "../../../test/support/pan-scan.ts";
import {
  ACK,
  type ApduDecodeEvent,
  ApduDecoder,
  encodeApdu,
  negativeAck,
} from "../../src/hardware/terminal/zvt-frame.ts";
import {
  authorization,
  completion,
  decodeBcd,
  ECR_ABORT,
  encodeBcd,
  intermediateStatus,
  maskedPanBody,
  parseAuthorization,
  parseRegistration,
  parseStatusInformation,
  registration,
  resultText,
  statusInformation,
  summarisePan,
  terminalAbort,
} from "../../src/hardware/terminal/zvt-messages.ts";
import { hex, show } from "./bytes.ts";

function apdus(events: ApduDecodeEvent[]): string[] {
  return events.flatMap((e) =>
    e.type === "apdu" ? [`${show(Uint8Array.of(e.apdu.cls, e.apdu.ins))}: ${show(e.apdu.data)}`] : [],
  );
}

test("commands the ECR sends, byte for byte", () => {
  assert.is(show(ACK), "80 00 00");
  assert.is(show(negativeAck(0x83)), "84 83 00");
  // Password 123456 as 3 BCD bytes, config byte, EUR = 978 as 09 78.
  assert.is(show(registration("123456", 0x18, 978)), "06 00 06 12 34 56 18 09 78");
  // €2.50: BMP 04 with 6 BCD bytes, BMP 49 with the currency.
  assert.is(show(authorization(250, 978)), "06 01 0A 04 00 00 00 00 02 50 49 09 78");
  assert.is(show(authorization(123_456_789_012, 826)), "06 01 0A 04 12 34 56 78 90 12 49 08 26");
  assert.is(show(ECR_ABORT), "06 B0 00");
  assert.throws(() => authorization(0, 978), /amount/);
  assert.throws(() => authorization(2.5, 978), /amount/);
  assert.throws(() => registration("12345", 0x18, 978), /6 digits/);
});

test("messages the terminal sends, byte for byte", () => {
  assert.is(show(intermediateStatus(0x0a)), "04 FF 01 0A");
  assert.is(show(terminalAbort(0x6c)), "06 1E 01 6C");
  assert.is(show(completion()), "06 0F 00");
  assert.is(show(completion({ terminalId: "52500038", currency: 978 })), "06 0F 08 29 52 50 00 38 49 09 78");
});

test("registration and authorization parse back", () => {
  assert.equal(parseRegistration(registration("000000", 0x18, 756).subarray(3)), {
    password: "000000",
    config: 0x18,
    currency: 756,
  });
  assert.equal(parseAuthorization(authorization(1999, 840).subarray(3)), { amount: 1999, currency: 840 });
});

test("BCD", () => {
  assert.is(show(encodeBcd(978, 2)), "09 78");
  assert.is(show(encodeBcd("000000", 3)), "00 00 00");
  assert.is(decodeBcd(hex("12 34")), "1234");
  assert.is(decodeBcd(hex("1A 34")), undefined);
  assert.throws(() => encodeBcd(12345, 2), /does not fit/);
});

test("extended length: 255 data bytes and more use FF + 2-byte little-endian length", () => {
  assert.is(show(encodeApdu(0x06, 0xd3, new Uint8Array(254)).subarray(0, 3)), "06 D3 FE");
  assert.is(show(encodeApdu(0x06, 0xd3, new Uint8Array(255)).subarray(0, 5)), "06 D3 FF FF 00");
  const big = encodeApdu(0x06, 0xd3, new Uint8Array(300).fill(0x41));
  assert.is(show(big.subarray(0, 5)), "06 D3 FF 2C 01");
  assert.is(big.length, 305);
  const events = new ApduDecoder().push(big);
  assert.is(events.length, 1);
  const e = events[0];
  assert.ok(e?.type === "apdu" && e.apdu.data.length === 300 && e.apdu.data.every((b) => b === 0x41));
});

test("decoder: APDUs split across TCP chunks at every possible cut", () => {
  const stream = new Uint8Array([
    ...ACK,
    ...intermediateStatus(0x0a),
    ...encodeApdu(0x06, 0xd3, new Uint8Array(300).fill(7)),
    ...completion(),
  ]);
  const want = ["80 00: ", "04 FF: 0A", `06 D3: ${show(new Uint8Array(300).fill(7))}`, "06 0F: "];
  for (let cut = 0; cut <= stream.length; cut++) {
    const d = new ApduDecoder();
    const got = [...apdus(d.push(stream.subarray(0, cut))), ...apdus(d.push(stream.subarray(cut)))];
    assert.equal(got, want, `cut at ${cut}`);
    assert.is(d.buffered, 0);
  }
  // One byte at a time.
  const d = new ApduDecoder();
  const got: string[] = [];
  for (const b of stream) got.push(...apdus(d.push(Uint8Array.of(b))));
  assert.equal(got, want);
});

test("decoder: garbage between APDUs is dropped and counted", () => {
  const d = new ApduDecoder();
  const events = d.push(new Uint8Array([0xde, 0xad, 0xbe, 0xef, ...ACK, 0x13, 0x37, ...intermediateStatus(0x0e)]));
  assert.equal(apdus(events), ["80 00: ", "04 FF: 0E"]);
  assert.equal(
    events.filter((e) => e.type === "discard"),
    [
      { type: "discard", bytes: 4 },
      { type: "discard", bytes: 2 },
    ],
  );
  assert.is(d.discarded, 6);
  // An ACK class with a length is not an ACK.
  assert.equal(apdus(new ApduDecoder().push(hex("80 00 05 04 FF 01 0A"))), ["04 FF: 0A"]);
});

test("decoder: random bytes never throw and never hold more than one APDU's worth", () => {
  let seed = 42;
  const rand = () => {
    seed = (seed * 1_103_515_245 + 12_345) & 0x7fffffff;
    return seed;
  };
  const d = new ApduDecoder();
  for (let i = 0; i < 2000; i++) {
    const chunk = Uint8Array.from({ length: rand() % 64 }, () => rand() & 0xff);
    d.push(chunk);
    assert.ok(d.buffered <= 5 + 0xffff + 64);
  }
  d.reset();
  assert.is(d.buffered, 0);
  assert.equal(apdus(d.push(ACK)), ["80 00: "]);
});

test("status information: every field this driver reads, and only the last four of the PAN", () => {
  const bytes = statusInformation({
    resultCode: 0,
    amount: 250,
    currency: 978,
    traceNumber: 123,
    receiptNumber: 42,
    turnoverNumber: 7,
    terminalId: "52500038",
    at: new Date(Date.UTC(2024, 4, 1, 9, 30, 15)),
    maskedPan: maskedPanBody("4242424242424242"),
    approvalCode: "A1B2C3",
    cardType: 10,
    cardName: "VISA",
  });
  // BMP 22: LLVAR F0 F8, then 12 masked digits (E) and 4242.
  assert.ok(show(bytes).includes("22 F0 F8 EE EE EE EE EE EE 42 42"), show(bytes));
  const s = parseStatusInformation(bytes.subarray(3));
  assert.equal(s, {
    complete: true,
    resultCode: 0,
    amount: 250,
    currency: 978,
    traceNumber: "000123",
    terminalId: "52500038",
    panLast4: "4242",
    panBrand: undefined,
    receiptNumber: "0042",
    turnoverNumber: "000007",
    approvalCode: "A1B2C3",
    cardType: 10,
    cardName: "VISA",
  });
});

test("status information from a terminal that shows the first six: brand only, digits dropped", () => {
  // 27 00 | 22 LLVAR 8 bytes: 411111 EEEEEE 1111 | 06 TLV (BER length 3) | 3C LLLVAR "OK" | 0B trace
  const data = hex("27 00 22 F0 F8 41 11 11 EE EE EE 11 11 06 03 1F 10 00 3C F0 F0 F2 4F 4B 0B 00 00 09");
  const s = parseStatusInformation(data);
  assert.is(s.complete, true);
  assert.is(s.panLast4, "1111");
  assert.is(s.panBrand, "VISA");
  assert.is(s.traceNumber, "000009");
  assert.not.ok(JSON.stringify(s).includes("411111"));
});

test("status information from a misconfigured terminal sending the clear PAN: nothing but the last four is kept", () => {
  const data = hex("27 00 22 F0 F8 42 42 42 42 42 42 42 42 87 00 01");
  const s = parseStatusInformation(data);
  assert.is(s.panLast4, "4242");
  assert.is(s.panBrand, "VISA");
  assert.equal(findPans(JSON.stringify(s)), []);
  assert.not.ok(JSON.stringify(s).includes("42424242"));
});

test("status information: an unknown BMP or a truncated field stops parsing, what came before is kept", () => {
  const unknown = parseStatusInformation(hex("27 00 0B 00 00 01 FE 01 02 87 00 01"));
  assert.equal(unknown, { complete: false, resultCode: 0, traceNumber: "000001" });
  const truncated = parseStatusInformation(hex("27 05 04 00 00 00"));
  assert.equal(truncated, { complete: false, resultCode: 5 });
  const badLlvar = parseStatusInformation(hex("27 00 22 0F F8 00"));
  assert.equal(badLlvar, { complete: false, resultCode: 0 });
  assert.equal(parseStatusInformation(new Uint8Array()), { complete: true });
});

test("a card name that carries digits is not shown", () => {
  const data = hex("8B F0 F8 34 32 34 32 34 32 34 32");
  assert.is(parseStatusInformation(data).cardName, undefined);
});

test("masked PANs: E for hidden digits, F pad for an odd length", () => {
  assert.is(show(maskedPanBody("4242424242424242")), "EE EE EE EE EE EE 42 42");
  assert.is(show(maskedPanBody("378282246310005")), "EE EE EE EE EE E0 00 5F");
  assert.equal(summarisePan(maskedPanBody("378282246310005")), { last4: "0005" });
  // Fully masked: nothing to show.
  assert.equal(summarisePan(hex("EE EE EE EE EE EE EE EE")), {});
  assert.equal(summarisePan(hex("12 3A")), {});
});

test("result codes in words", () => {
  assert.is(resultText(0x05), "card declined by issuer (result code 0x05)");
  assert.is(resultText(0x6c), "aborted (result code 0x6C)");
  assert.is(resultText(0x64), "card not readable (result code 0x64)");
  assert.is(resultText(0x78), "card expired (result code 0x78)");
  assert.is(resultText(0xd7), "terminal error (result code 0xD7)");
  assert.is(resultText(undefined), "no result code");
});

test.run();
