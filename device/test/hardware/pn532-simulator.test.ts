/**
 * The PN532 simulator command by command, as a host on an in-memory link sees
 * it (fake timers): the answers UM0701-02 gives, the card models behind
 * InDataExchange, and the readable lines `paylane-sim pn532` prints.
 */
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { KEY_DEFAULT, KEY_MAD, KEY_NDEF, NTAG213_VERSION } from "../../src/hardware/pn532/cards.ts";
import { Command, HSU_WAKEUP } from "../../src/hardware/pn532/commands.ts";
import { describeEvent } from "../../src/hardware/pn532/describe.ts";
import { encodeCommand, type Frame, FrameDecoder } from "../../src/hardware/pn532/frame.ts";
import { Pn532Simulator } from "../../src/hardware/pn532/simulator.ts";
import { createLinkPair } from "../../src/hardware/serial/link-pair.ts";
import { FakeTimers } from "../fake-timers.ts";

const test = suite("pn532 simulator");

async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise<void>((r) => setImmediate(r));
}

class Host {
  readonly timers = new FakeTimers();
  readonly lines: string[] = [];
  readonly sim = new Pn532Simulator({
    timers: this.timers,
    onEvent: (e) => {
      const l = describeEvent(e);
      if (l) this.lines.push(l);
    },
  });
  readonly pair = createLinkPair();
  readonly frames: Frame[] = [];
  readonly #decoder = new FrameDecoder();

  constructor() {
    this.sim.start(this.pair.device);
    this.pair.host.onData((c) => {
      for (const e of this.#decoder.push(c)) if (e.type === "frame") this.frames.push(e.frame);
    });
  }

  async wake(): Promise<void> {
    await this.pair.host.write(HSU_WAKEUP);
    assert.equal(await this.send([Command.SAMConfiguration, 0x01]), [0x15]);
  }

  async raw(bytes: Uint8Array): Promise<Frame[]> {
    await this.pair.host.write(bytes);
    await settle();
    return this.frames.splice(0);
  }

  /** Sends a command; returns the response's packet data, "error" for the syntax-error frame, or undefined for none yet. */
  async send(pd: number[]): Promise<number[] | "error" | undefined> {
    const got = await this.raw(encodeCommand(pd));
    assert.equal(got[0], { kind: "ack" }, `ACK for 0x${pd[0]?.toString(16)}`);
    return answer(got[1]);
  }
}

function answer(f: Frame | undefined): number[] | "error" | undefined {
  if (!f) return undefined;
  if (f.kind === "error") return "error";
  assert.is(f.kind, "info");
  return f.kind === "info" ? Array.from(f.data) : undefined;
}

test("asleep at power-up: frames are ignored until the HSU wake-up, and again after PowerDown", async () => {
  const h = new Host();
  assert.equal(await h.raw(encodeCommand([Command.GetFirmwareVersion])), [], "a C106 starts in low-VBat");
  await h.wake();
  assert.equal(await h.send([Command.PowerDown, 0xf0]), [0x17, 0x00]);
  assert.equal(await h.raw(encodeCommand([Command.GetFirmwareVersion])), [], "asleep after PowerDown");
  await h.wake();
  assert.equal(await h.send([Command.GetFirmwareVersion]), [0x03, 0x32, 0x01, 0x06, 0x07]);
  assert.is(h.sim.stats.wakeUps, 2);
});

test("Diagnose echoes the communication test, passes ROM/RAM tests; unknown tests and commands get the error frame", async () => {
  const h = new Host();
  await h.wake();
  const libnfc = [0x00, 0x00, ...new TextEncoder().encode("libnfc")];
  assert.equal(await h.send(libnfc), [0x01, ...libnfc.slice(1)]);
  assert.equal(await h.send([Command.Diagnose, 0x01]), [0x01, 0x00]);
  assert.equal(await h.send([Command.Diagnose, 0x09]), "error");
  assert.equal(await h.send([0x7a]), "error");
  assert.equal(await h.send([Command.GetFirmwareVersion]), [0x03, 0x32, 0x01, 0x06, 0x07], "still in sync");
  assert.is(h.sim.stats.errors, 2);
});

test("registers keep what is written; SetParameters, RFConfiguration and GetGeneralStatus answer", async () => {
  const h = new Host();
  await h.wake();
  assert.equal(await h.send([Command.ReadRegister, 0x63, 0x02, 0xff, 0xb0]), [0x07, 0x00, 0xff]);
  assert.equal(await h.send([Command.WriteRegister, 0x63, 0x02, 0x80, 0x63, 0x3d, 0x07]), [0x09]);
  assert.equal(await h.send([Command.ReadRegister, 0x63, 0x02, 0x63, 0x3d]), [0x07, 0x80, 0x07]);
  assert.equal(await h.send([Command.SetParameters, 0x14]), [0x13]);
  assert.is(h.sim.parameters, 0x14);
  assert.equal(await h.send([Command.RFConfiguration, 0x01, 0x01]), [0x33]);
  assert.equal(await h.send([Command.RFConfiguration, 0x05, 0xff, 0x01, 0x02]), [0x33]);
  assert.equal(await h.send([Command.RFConfiguration, 0x05, 0xff]), "error", "MaxRetries takes 3 bytes");
  assert.equal(await h.send([Command.GetGeneralStatus]), [0x05, 0x00, 0x01, 0x00, 0x00]);
});

test("InListPassiveTarget at every BrTy: the type A card at 106 A, no target elsewhere, an error for BrTy 5", async () => {
  const h = new Host();
  await h.wake();
  await h.send([Command.RFConfiguration, 0x05, 0xff, 0x01, 0x01]);
  h.sim.placeCard("04A1B2C3D4E5F6");
  const card = [0x4b, 0x01, 0x01, 0x00, 0x44, 0x00, 0x07, 0x04, 0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6];
  assert.equal(await h.send([Command.InListPassiveTarget, 0x01, 0x00]), card);
  const felica = [0x00, 0xff, 0xff, 0x01, 0x00];
  assert.equal(await h.send([Command.InListPassiveTarget, 0x01, 0x01, ...felica]), [0x4b, 0x00]);
  assert.equal(await h.send([Command.InListPassiveTarget, 0x01, 0x02, ...felica]), [0x4b, 0x00]);
  assert.equal(await h.send([Command.InListPassiveTarget, 0x01, 0x03, 0x00]), [0x4b, 0x00]);
  assert.equal(await h.send([Command.InListPassiveTarget, 0x01, 0x04]), [0x4b, 0x00]);
  assert.equal(await h.send([Command.InListPassiveTarget, 0x01, 0x05]), "error");
  // Initiator data on type A names the UID wanted: another card is not found.
  assert.equal(await h.send([Command.InListPassiveTarget, 0x01, 0x00, 0xde, 0xad, 0xbe, 0xef]), [0x4b, 0x00]);
  h.sim.removeCard();
  assert.equal(await h.send([Command.InListPassiveTarget, 0x01, 0x00]), [0x4b, 0x00]);
  assert.ok(h.lines.includes("→ 1 target: ATQA 0044 SAK 00 UID 04A1B2C3D4E5F6"), h.lines.join("\n"));
  assert.ok(h.lines.includes("← InListPassiveTarget max 1, 106 kbps type A"));
});

test("with endless retries (the reset value) InListPassiveTarget waits for a card; the host's ACK aborts it", async () => {
  const h = new Host();
  await h.wake();
  assert.equal(await h.send([Command.InListPassiveTarget, 0x01, 0x00]), undefined, "waiting");
  h.sim.placeCard("9A3B5C01");
  await settle();
  assert.equal(answer(h.frames.shift()), [0x4b, 0x01, 0x01, 0x00, 0x04, 0x08, 0x04, 0x9a, 0x3b, 0x5c, 0x01]);
  h.sim.removeCard();
  assert.equal(await h.send([Command.InListPassiveTarget, 0x01, 0x00]), undefined);
  await h.raw(Uint8Array.of(0x00, 0x00, 0xff, 0x00, 0xff, 0x00));
  h.sim.placeCard("9A3B5C01");
  await settle();
  assert.equal(h.frames, [], "aborted: no late answer");
});

test("InAutoPoll answers a card at once, waits PollNr × Period × 150 ms per type for one, then reports none", async () => {
  const h = new Host();
  await h.wake();
  h.sim.placeCard("9A3B5C01");
  const found = [0x61, 0x01, 0x10, 0x09, 0x01, 0x00, 0x04, 0x08, 0x04, 0x9a, 0x3b, 0x5c, 0x01];
  assert.equal(await h.send([Command.InAutoPoll, 0x14, 0x02, 0x20, 0x10, 0x04]), found);
  h.sim.removeCard();
  assert.equal(await h.send([Command.InAutoPoll, 0x02, 0x01, 0x10, 0x04]), undefined);
  h.timers.advance(2 * 150 * 2 - 1);
  await settle();
  assert.equal(h.frames, []);
  h.timers.advance(1);
  await settle();
  assert.equal(answer(h.frames.shift()), [0x61, 0x00]);
  // FeliCa only: the type A card does not count.
  h.sim.placeCard("9A3B5C01");
  assert.equal(await h.send([Command.InAutoPoll, 0x01, 0x01, 0x11]), undefined);
  h.timers.advance(150);
  await settle();
  assert.equal(answer(h.frames.shift()), [0x61, 0x00]);
});

test("MIFARE Classic 1K: auth with key A or B, READ a block; a wrong key is an auth error; key A reads as zeros", async () => {
  const h = new Host();
  await h.wake();
  h.sim.placeCard("9A3B5C01");
  await h.send([Command.InListPassiveTarget, 0x01, 0x00]);
  const uid = [0x9a, 0x3b, 0x5c, 0x01];
  const x = (...c: number[]) => h.send([Command.InDataExchange, 0x01, ...c]);
  assert.equal(await x(0x30, 0x04), [0x41, 0x01], "no auth, no data");
  assert.equal(await x(0x60, 0x04, ...KEY_DEFAULT, ...uid), [0x41, 0x14], "wrong key A");
  assert.equal(await x(0x60, 0x04, ...KEY_NDEF, ...uid), [0x41, 0x00]);
  const block4 = await x(0x30, 0x04);
  assert.ok(Array.isArray(block4));
  assert.equal(block4.slice(0, 4), [0x41, 0x00, 0x03, 0x19], "NDEF TLV");
  const trailer = await x(0x30, 0x07);
  assert.equal(Array.isArray(trailer) && trailer.slice(2, 8), [0, 0, 0, 0, 0, 0]);
  assert.equal(await x(0x30, 0x08), [0x41, 0x01], "block 8 is in another sector");
  assert.equal(await x(0x61, 0x00, ...KEY_DEFAULT, ...uid), [0x41, 0x00], "key B of the MAD sector");
  const block0 = await x(0x30, 0x00);
  assert.equal(Array.isArray(block0) && block0.slice(2, 7), [...uid, 0x9a ^ 0x3b ^ 0x5c ^ 0x01]);
  assert.equal(await x(0x60, 0x00, ...KEY_MAD, ...uid), [0x41, 0x00]);
  assert.ok(
    h.lines.includes("← InDataExchange Tg 1: MIFARE auth key A block 0 (key A0A1A2A3A4A5)"),
    h.lines.join("\n"),
  );
});

test("NTAG213: GET_VERSION, READ returns four pages and rolls over past the last; no target, no exchange", async () => {
  const h = new Host();
  await h.wake();
  h.sim.placeCard("04A1B2C3D4E5F6");
  assert.equal(await h.send([Command.InDataExchange, 0x01, 0x60]), [0x41, 0x27], "not listed yet");
  await h.send([Command.InListPassiveTarget, 0x01, 0x00]);
  assert.equal(await h.send([Command.InDataExchange, 0x01, 0x60]), [0x41, 0x00, ...NTAG213_VERSION]);
  const page3 = await h.send([Command.InDataExchange, 0x01, 0x30, 0x03]);
  assert.equal(Array.isArray(page3) && page3.slice(2, 6), [0xe1, 0x10, 0x12, 0x00], "capability container");
  const last = await h.send([Command.InDataExchange, 0x01, 0x30, 0x2c]);
  assert.equal(Array.isArray(last) && last.slice(6, 9), [0x04, 0xa1, 0xb2], "page 0 after page 2Ch");
  assert.equal(await h.send([Command.InDataExchange, 0x01, 0x30, 0x2d]), [0x41, 0x01], "NAK past the end");
  // InCommunicateThru reaches the same card; after InDeselect nothing answers it.
  assert.equal(await h.send([Command.InCommunicateThru, 0x60]), [0x43, 0x00, ...NTAG213_VERSION]);
  assert.equal(await h.send([Command.InDeselect, 0x00]), [0x45, 0x00]);
  assert.equal(await h.send([Command.InCommunicateThru, 0x60]), [0x43, 0x01]);
  assert.equal(await h.send([Command.InSelect, 0x01]), [0x55, 0x00]);
  assert.equal(await h.send([Command.InCommunicateThru, 0x60]), [0x43, 0x00, ...NTAG213_VERSION]);
  assert.equal(await h.send([Command.InRelease, 0x01]), [0x53, 0x00]);
  assert.equal(await h.send([Command.InSelect, 0x01]), [0x55, 0x27]);
});

test("a cut-off host frame is dropped when the line goes idle, and the next command is answered", async () => {
  const h = new Host();
  await h.wake();
  const frame = encodeCommand([Command.GetFirmwareVersion]);
  assert.equal(await h.raw(frame.subarray(0, 5)), []);
  h.timers.advance(50);
  assert.equal(await h.send([Command.GetFirmwareVersion]), [0x03, 0x32, 0x01, 0x06, 0x07]);
  assert.ok(
    h.lines.some((l) => /dropped \(truncated\)/.test(l)),
    h.lines.join("\n"),
  );
});

test.run();
