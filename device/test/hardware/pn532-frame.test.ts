/**
 * PN532 frames and commands, byte for byte. Frame layouts are NXP UM0701-02
 * §6.2.1 (pp. 28–31); command and response layouts §7.2.2 GetFirmwareVersion
 * (p. 73), §7.2.10 SAMConfiguration (p. 89), §7.3.1 RFConfiguration (p. 101),
 * §7.3.5 InListPassiveTarget (p. 115), §7.3.11 InRelease (p. 140). Every
 * LCS/DCS below was checked by hand: lower byte of LEN + LCS = 0, lower byte
 * of TFI + PD0..PDn + DCS = 0.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import {
  firmwareVersionResponse,
  getFirmwareVersion,
  HSU_WAKEUP,
  inListPassiveTarget,
  inListPassiveTargetResponse,
  inRelease,
  inReleaseResponse,
  parseFirmwareVersion,
  parseInListPassiveTarget,
  parseInRelease,
  parseUid,
  rfConfigurationMaxRetries,
  rfConfigurationResponse,
  samConfiguration,
  samConfigurationResponse,
  toHex,
} from "../../src/hardware/pn532/commands.ts";
import {
  ACK_FRAME,
  type DecodeEvent,
  ERROR_FRAME,
  encodeCommand,
  encodeInfoFrame,
  encodeResponse,
  FrameDecoder,
  NACK_FRAME,
  Pn532FrameError,
} from "../../src/hardware/pn532/frame.ts";
import { hex, show } from "./bytes.ts";

function frames(events: DecodeEvent[]) {
  return events.flatMap((e) => (e.type === "frame" ? [e.frame] : []));
}

function info(events: DecodeEvent[]): string[] {
  return frames(events).map((f) => (f.kind === "info" ? `${f.tfi.toString(16)}:${show(f.data)}` : f.kind));
}

// Host → PN532 commands.
const VECTORS: [string, Uint8Array, string][] = [
  // §7.2.2: GetFirmwareVersion, no parameters.
  ["GetFirmwareVersion", encodeCommand(getFirmwareVersion()), "00 00 FF 02 FE D4 02 2A 00"],
  // §7.2.10: Mode 01 (normal), Timeout 14 (= 1 s), IRQ 01.
  ["SAMConfiguration", encodeCommand(samConfiguration()), "00 00 FF 05 FB D4 14 01 14 01 02 00"],
  // §7.3.1: CfgItem 05 MaxRetries: MxRtyATR FF, MxRtyPSL 01, MxRtyPassiveActivation 01.
  ["RFConfiguration", encodeCommand(rfConfigurationMaxRetries()), "00 00 FF 06 FA D4 32 05 FF 01 01 F4 00"],
  // §7.3.5: MaxTg 01, BrTy 00 (106 kbps Type A).
  ["InListPassiveTarget", encodeCommand(inListPassiveTarget()), "00 00 FF 04 FC D4 4A 01 00 E1 00"],
  // §7.3.11: Tg 01.
  ["InRelease", encodeCommand(inRelease(1)), "00 00 FF 03 FD D4 52 01 D9 00"],
];

// PN532 → host responses.
const RESPONSES: [string, Uint8Array, string][] = [
  // §7.2.2: IC 32 (PN532), Ver 01, Rev 06, Support 07 — the manual's v1.6 answer.
  ["GetFirmwareVersion", encodeResponse(firmwareVersionResponse()), "00 00 FF 06 FA D5 03 32 01 06 07 E8 00"],
  ["SAMConfiguration", encodeResponse(samConfigurationResponse()), "00 00 FF 02 FE D5 15 16 00"],
  ["RFConfiguration", encodeResponse(rfConfigurationResponse()), "00 00 FF 02 FE D5 33 F8 00"],
  [
    "InListPassiveTarget, empty field",
    encodeResponse(inListPassiveTargetResponse(null)),
    "00 00 FF 03 FD D5 4B 00 E0 00",
  ],
  // NbTg 01, Tg 01, SENS_RES 00 04, SEL_RES 08 (MIFARE Classic 1K), NFCIDLength 04, NFCID1.
  [
    "InListPassiveTarget, 4-byte UID",
    encodeResponse(inListPassiveTargetResponse({ tg: 1, sensRes: 0x0004, selRes: 0x08, uid: hex("9A 3B 5C 01") })),
    "00 00 FF 0C F4 D5 4B 01 01 00 04 08 04 9A 3B 5C 01 9C 00",
  ],
  // SENS_RES 00 44, SEL_RES 00 (MIFARE Ultralight), NFCIDLength 07.
  [
    "InListPassiveTarget, 7-byte UID",
    encodeResponse(
      inListPassiveTargetResponse({ tg: 1, sensRes: 0x0044, selRes: 0x00, uid: hex("04 5E 2A 72 91 6C 80") }),
    ),
    "00 00 FF 0F F1 D5 4B 01 01 00 44 00 07 04 5E 2A 72 91 6C 80 18 00",
  ],
  ["InRelease", encodeResponse(inReleaseResponse()), "00 00 FF 03 FD D5 53 00 D8 00"],
];

for (const [name, encoded, expected] of [...VECTORS, ...RESPONSES]) {
  test(`${name} encodes byte for byte and decodes back`, () => {
    assert.is(show(encoded), expected);
    const d = new FrameDecoder();
    const out = frames(d.push(hex(expected)));
    assert.is(out.length, 1);
    const f = out[0];
    if (f?.kind !== "info") throw new Error(`expected an information frame, got ${f?.kind}`);
    assert.is(show(encodeInfoFrame(f.tfi, f.data)), expected);
  });
}

test("ACK, NACK and error frames are the manual's fixed sequences (§6.2.1.3–5)", () => {
  assert.is(show(ACK_FRAME), "00 00 FF 00 FF 00");
  assert.is(show(NACK_FRAME), "00 00 FF FF 00 00");
  assert.is(show(ERROR_FRAME), "00 00 FF 01 FF 7F 81 00");
  const d = new FrameDecoder();
  assert.equal(frames(d.push(Uint8Array.from([...ACK_FRAME, ...NACK_FRAME, ...ERROR_FRAME]))), [
    { kind: "ack" },
    { kind: "nack" },
    { kind: "error" },
  ]);
});

test("the HSU wake-up is 55 55 followed by a long run of 00", () => {
  assert.is(show(HSU_WAKEUP), "55 55 00 00 00 00 00 00 00 00 00 00 00 00 00 00");
});

test("an extended frame (LENM LENL, §6.2.1.2) round-trips, and the decoder takes a short one too", () => {
  const data = Uint8Array.from({ length: 264 }, (_, i) => (i * 7 + 3) & 0xff);
  const encoded = encodeInfoFrame(0xd5, data);
  // 265 bytes incl. TFI (the firmware's maximum) = 0x0109; LCS = 0x100 - (0x01 + 0x09) = 0xF6.
  assert.is(show(encoded.subarray(0, 8)), "00 00 FF FF FF 01 09 F6");
  assert.is(encoded.length, 8 + 265 + 2);
  const d = new FrameDecoder();
  const [f] = frames(d.push(encoded));
  assert.equal(f, { kind: "info", tfi: 0xd5, data, extended: true });

  // The host may use the extended form for short frames as well.
  const short = encodeInfoFrame(0xd4, getFirmwareVersion(), { extended: true });
  assert.is(show(short), "00 00 FF FF FF 00 02 FE D4 02 2A 00");
  assert.equal(frames(d.push(short)), [{ kind: "info", tfi: 0xd4, data: hex("02"), extended: true }]);
});

test("the encoder refuses what the PN532 cannot take, naming the problem", () => {
  assert.throws(
    () => encodeInfoFrame(0xd4, new Uint8Array(265)),
    (e: unknown) => {
      return e instanceof Pn532FrameError && /at most 265/.test(e.message);
    },
  );
  assert.throws(() => encodeInfoFrame(0x1d4, []), /TFI must be a byte/);
  assert.throws(() => encodeCommand([0x02, 256]), /data byte 1 must be a byte/);
});

test("a frame split across many chunks decodes once it is whole", () => {
  const d = new FrameDecoder();
  const bytes = hex("00 00 FF 06 FA D5 03 32 01 06 07 E8 00");
  const got: DecodeEvent[] = [];
  for (const b of bytes) got.push(...d.push(Uint8Array.of(b)));
  assert.equal(info(got), ["d5:03 32 01 06 07"]);
  assert.equal(d.discarded.garbage, 0, "preamble and postamble zeros are not garbage");
});

test("garbage before a frame is dropped and counted by byte", () => {
  const d = new FrameDecoder();
  const out = d.push(hex("55 55 13 37 00 00 FF 02 FE D5 15 16 00"));
  assert.equal(info(out), ["d5:15"]);
  assert.is(d.discarded.garbage, 4);
});

test("a bad LCS or DCS is discarded, counted, and the next frame is still read", () => {
  const d = new FrameDecoder();
  const badLcs = hex("00 00 FF 06 FB D5 03 32 01 06 07 E8 00");
  const badDcs = hex("00 00 FF 06 FA D5 03 32 01 06 07 E9 00");
  const good = hex("00 00 FF 02 FE D5 15 16 00");
  const out = d.push(Uint8Array.from([...badLcs, ...badDcs, ...good]));
  assert.equal(info(out), ["d5:15"]);
  assert.is(d.discarded.lcs, 1);
  assert.is(d.discarded.dcs, 1);
  assert.ok(
    out.some((e) => e.type === "discard" && e.reason === "dcs"),
    "the discard is reported in the event stream too",
  );
});

test("a truncated frame followed by a whole one: the whole one wins, the cut one is counted", () => {
  const d = new FrameDecoder();
  // A 7-byte-UID response (LEN 0F) cut after NbTg, then a complete InRelease response.
  const cut = hex("00 00 FF 0F F1 D5 4B 01");
  const whole = hex("00 00 FF 03 FD D5 53 00 D8 00");
  assert.equal(info(d.push(cut)), [], "nothing to decide until more arrives");
  assert.equal(info(d.push(whole)), ["d5:53 00"]);
  assert.is(d.discarded.truncated, 1);
});

test("a cut frame whose LEN reaches past the next frame fails its DCS; the next frame is still read", () => {
  const d = new FrameDecoder();
  // A 4-byte-UID response (LEN 0C) cut after SEL_RES swallows the next frame's bytes as its own.
  const cut = hex("00 00 FF 0C F4 D5 4B 01 01 00 04 08");
  const whole = hex("00 00 FF 03 FD D5 53 00 D8 00");
  assert.equal(info(d.push(Uint8Array.from([...cut, ...whole]))), ["d5:53 00"]);
  assert.is(d.discarded.dcs, 1);
  assert.is(d.discarded.garbage, 0, "the rejected frame's own bytes are not counted again as garbage");
});

test("a cut-off frame at the end of a burst is discarded as truncated on flush", () => {
  const d = new FrameDecoder();
  d.push(hex("00 00 FF 06 FA D5 03 32"));
  assert.ok(d.buffered > 0);
  const out = d.flush();
  assert.equal(info(out), []);
  assert.is(d.discarded.truncated, 1);
  assert.is(d.buffered, 0);
});

test("LEN 0 with LCS 0 and an oversized extended LEN are rejected as bad lengths", () => {
  const d = new FrameDecoder();
  d.push(hex("00 00 FF 00 00 00"));
  d.push(hex("00 00 FF FF FF 02 00 FE"));
  assert.is(d.discarded.length, 2);
  assert.equal(info(d.push(hex("00 00 FF 00 FF 00"))), ["ack"], "and the decoder carries on");
});

test("InListPassiveTarget responses parse into Tg, SENS_RES, SEL_RES and the UID", () => {
  const four = parseInListPassiveTarget(hex("4B 01 01 00 04 08 04 9A 3B 5C 01"));
  assert.equal(four, { tg: 1, sensRes: 0x0004, selRes: 0x08, uid: hex("9A 3B 5C 01") });
  const seven = parseInListPassiveTarget(hex("4B 01 01 00 44 00 07 04 5E 2A 72 91 6C 80"));
  assert.is(toHex(seven?.uid ?? new Uint8Array()), "045E2A72916C80");
  assert.is(parseInListPassiveTarget(hex("4B 00")), null);
  assert.throws(() => parseInListPassiveTarget(hex("4B 01 01 00 04 08 04 9A 3B")), /only 2 present/);
  assert.throws(() => parseInListPassiveTarget(hex("4B 01 01 00 04 08 05 9A 3B 5C 01 02")), /NFCIDLength/);
  assert.throws(() => parseInListPassiveTarget(hex("03 32 01 06 07")), /must start with 0x4B, got 0x03/);
});

test("firmware version and InRelease status parse; UIDs parse from hex and print upper-case", () => {
  assert.equal(parseFirmwareVersion(hex("03 32 01 06 07")), { ic: 0x32, ver: 1, rev: 6, support: 7 });
  assert.is(parseInRelease(hex("53 00")), 0);
  assert.is(parseInRelease(hex("53 27")), 0x27);
  assert.is(toHex(parseUid("04:5e:2a:72:91:6c:80")), "045E2A72916C80");
  assert.throws(() => parseUid("04A1B2"), /4, 7 or 10 bytes, got 3/);
  assert.throws(() => parseUid("zz"), /hex bytes/);
});

test.run();
