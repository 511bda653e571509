/**
 * A PN532 on the far end of a serial link, far enough for libnfc's pn532_uart
 * driver (nfc-scan-device, nfc-list, nfc-poll) and for our reader: it decodes
 * host frames with the same frame module as the reader, ACKs each one and
 * answers as NXP UM0701-02 §7 describes — Diagnose, GetFirmwareVersion,
 * GetGeneralStatus, Read/WriteRegister (a register file), Read/WriteGPIO,
 * SetParameters, SAMConfiguration, PowerDown (asleep until the HSU wake-up),
 * RFConfiguration, InListPassiveTarget at every BrTy, InAutoPoll, InSelect,
 * InDeselect, InRelease, InDataExchange and InCommunicateThru to the card in
 * the field (./cards.ts). A command it does not know, or bad parameters, get
 * the syntax-error frame (§6.2.1.5) after the ACK, as on the chip.
 *
 * Tests (and `paylane-sim pn532`) place and remove cards by UID and can make
 * it misbehave: go silent, corrupt the next response, inject garbage.
 * It attaches to any SerialLink: a serialport on a pty's peer path, the peer
 * of a SerialPortMock, or the device end of an in-memory pair.
 */
import type { Logger } from "pino";
import { realTimers, type Timers } from "../../timers.ts";
import { type SerialLink, send } from "../serial/serial-link.ts";
import { createCard, type SimCard, Status } from "./cards.ts";
import {
  abbreviateUid,
  BaudRateType,
  Command,
  type FirmwareVersion,
  firmwareVersionResponse,
  hex,
  inListPassiveTargetResponse,
  PN532_V1_6,
  responseCode,
  toHex,
} from "./commands.ts";
import {
  ACK_FRAME,
  type DiscardReason,
  ERROR_FRAME,
  encodeResponse,
  type Frame,
  FrameDecoder,
  IdleFlush,
  TFI_HOST_TO_PN532,
} from "./frame.ts";

export type Corruption = "dcs" | "lcs" | "truncate";

/** What the chip saw and did, in wire order: for `paylane-sim pn532`'s readable log. */
export type Pn532SimEvent =
  | { type: "command"; pd: Uint8Array }
  | { type: "response"; command: Uint8Array; pd: Uint8Array }
  /** Answered with the syntax-error frame: why, for the log. */
  | { type: "error"; command: Uint8Array; reason: string }
  /** A command still running (InAutoPoll or an endless InListPassiveTarget) waits for a card. */
  | { type: "waiting"; command: Uint8Array }
  | { type: "nack" }
  /** The host's ACK: aborts the command in progress (§6.2.2). */
  | { type: "abort"; aborted: boolean }
  | { type: "wake" }
  | { type: "sleep" }
  | { type: "ignored"; why: "asleep" | "silent" }
  | { type: "discard"; reason: DiscardReason; bytes: number };

export interface Pn532SimulatorOptions {
  logger?: Logger;
  firmware?: FirmwareVersion;
  /**
   * A C106 powers up in low-VBat mode and ignores frames until the HSU
   * wake-up preamble (0x55 …) arrives. Set true to skip that.
   */
  startAwake?: boolean;
  /** For the idle-line flush and the timed commands (InAutoPoll). */
  timers?: Timers;
  /** Silence after which a partial host frame is dropped. */
  idleMs?: number;
  onEvent?: (event: Pn532SimEvent) => void;
}

export interface Pn532SimulatorStats {
  /** Host frames received, by command code (hex, e.g. "4A"). */
  commands: Record<string, number>;
  acksSent: number;
  nacksReceived: number;
  retransmissions: number;
  wakeUps: number;
  /** Frames ignored because the chip was asleep or silent. */
  ignored: number;
  /** Commands answered with the syntax-error frame. */
  errors: number;
}

/** A command that answers later: InAutoPoll, or InListPassiveTarget with endless retries. */
interface Pending {
  command: Uint8Array;
  /** Answers if the card in the field now fits; otherwise undefined (keep waiting). */
  tryAnswer(): Uint8Array | undefined;
  /** Answer when the time is up, or undefined to wait for ever. */
  onTimeout: (() => Uint8Array) | undefined;
  timer: unknown;
}

/** InAutoPoll's Period unit (§7.3.13). */
const AUTOPOLL_PERIOD_MS = 150;

class CommandRefused extends Error {}
/** Bad parameters: the chip answers the syntax-error frame. */
function refuse(reason: string): never {
  throw new CommandRefused(reason);
}

export class Pn532Simulator {
  readonly #o: Pn532SimulatorOptions;
  readonly #timers: Timers;
  readonly #decoder = new FrameDecoder();
  readonly #idle: IdleFlush;
  #link: SerialLink | undefined;
  #unsubscribe: (() => void)[] = [];
  #awake = false;
  #silent = false;
  #corrupt: Corruption | undefined;
  #card: SimCard | undefined;
  /** The card as the chip's target 1, after InListPassiveTarget / InAutoPoll; `selected` while it may be talked to. */
  #target: { card: SimCard; selected: boolean } | undefined;
  #lastResponse: Uint8Array | undefined;
  #pending: Pending | undefined;
  #pollWaiters: Array<() => void> = [];
  /** CIU registers and SFRs as ReadRegister/WriteRegister address them (§7.2.4); unwritten ones read 00, P3 and P7 FF (pulled up). */
  readonly #registers = new Map<number, number>([
    [0xffb0, 0xff], // P3: GPIO pulled up
    [0xfff7, 0xff], // P7
  ]);
  #parameters = 0x00;
  #rfField = false;
  #maxRetriesPassive = 0xff;
  readonly #stats: Pn532SimulatorStats = {
    commands: {},
    acksSent: 0,
    nacksReceived: 0,
    retransmissions: 0,
    wakeUps: 0,
    ignored: 0,
    errors: 0,
  };

  constructor(opts: Pn532SimulatorOptions = {}) {
    this.#o = opts;
    this.#timers = opts.timers ?? realTimers;
    this.#idle = new IdleFlush(this.#decoder, {
      timers: this.#timers,
      idleMs: opts.idleMs ?? 50,
      onEvents: (events) => {
        for (const e of events) {
          if (e.type === "frame") this.#onFrame(e.frame);
          else this.#emit({ type: "discard", reason: e.reason, bytes: e.bytes });
        }
      },
    });
  }

  /** Attaches to a link: like powering up a PN532 on it. A previous link is let go. */
  start(link: SerialLink): void {
    this.stop();
    this.#link = link;
    this.#awake = this.#o.startAwake === true;
    this.#lastResponse = undefined;
    this.#target = undefined;
    this.#rfField = false;
    this.#maxRetriesPassive = 0xff;
    this.#decoder.reset();
    this.#unsubscribe = [link.onData((chunk) => this.#onData(chunk)), link.onClose(() => this.#detach())];
    this.#o.logger?.debug({ path: link.path }, "PN532 simulator attached");
  }

  /** Lets go of the link (does not close it: whoever opened it does). Cards stay placed. */
  stop(): void {
    this.#detach();
  }

  get attached(): boolean {
    return this.#link !== undefined;
  }

  get awake(): boolean {
    return this.#awake;
  }

  get stats(): Pn532SimulatorStats {
    return { ...this.#stats, commands: { ...this.#stats.commands } };
  }

  /** The UID of the card in the field, upper-case hex, or undefined. */
  get card(): string | undefined {
    return this.#card ? toHex(this.#card.uid) : undefined;
  }

  /** The Flags of the last SetParameters (§7.2.9). */
  get parameters(): number {
    return this.#parameters;
  }

  /** What the card in the field is ("MIFARE Classic 1K", "NTAG213"), or undefined. */
  get cardKind(): SimCard["kind"] | undefined {
    return this.#card?.kind;
  }

  /**
   * Puts a card in the field, replacing any other: a 4-byte UID is a MIFARE
   * Classic 1K (SENS_RES 0x0004, SEL_RES 0x08), a 7-byte one an NTAG213
   * (SENS_RES 0x0044, SEL_RES 0x00) — NXP AN10833 type identification — each
   * holding an NDEF URI record. A command waiting for a card answers now.
   */
  placeCard(uid: string): void {
    const card = createCard(uid);
    this.#card = card;
    this.#target = undefined;
    this.#o.logger?.debug({ uid: abbreviateUid(toHex(card.uid)) }, "card placed on simulated PN532");
    const answer = this.#pending?.tryAnswer();
    if (answer) this.#finishPending(answer);
  }

  removeCard(): void {
    this.#card = undefined;
    this.#target = undefined;
  }

  /**
   * Resolves once the reader has polled the field again (the next
   * InListPassiveTarget is answered): after `removeCard()`, the reader has then
   * seen the card leave, so placing the same card triggers again.
   */
  nextPoll(): Promise<void> {
    return new Promise((resolve) => this.#pollWaiters.push(resolve));
  }

  /** A silent PN532 neither ACKs nor answers, like a hung or unpowered chip. */
  setSilent(silent: boolean): void {
    this.#silent = silent;
  }

  /** Damages the next response frame (not its ACK); a NACK gets the intact frame. */
  corruptNextResponse(how: Corruption = "dcs"): void {
    this.#corrupt = how;
  }

  /** Writes raw bytes now, as line noise between frames. */
  injectGarbage(bytes: Uint8Array): void {
    send(this.#link, bytes);
  }

  #detach(): void {
    for (const u of this.#unsubscribe.splice(0)) u();
    this.#idle.stop();
    this.#cancelPending();
    this.#link = undefined;
  }

  #emit(event: Pn532SimEvent): void {
    try {
      this.#o.onEvent?.(event);
    } catch (err) {
      this.#o.logger?.error({ err: (err as Error).message }, "PN532 simulator event listener failed");
    }
  }

  #onData(chunk: Uint8Array): void {
    const at = chunk.indexOf(0x55);
    if (at >= 0 && !this.#awake) {
      // HSU wake-up (§7.2.11): any 0x55 on the line, then the chip needs a moment it gets from the 00 run.
      this.#awake = true;
      this.#stats.wakeUps++;
      this.#emit({ type: "wake" });
    }
    // A wake-up preamble at the head of a chunk is no frame: drop it here rather than count it as garbage.
    if (at === 0) {
      let end = 0;
      while (chunk[end] === 0x55) end++;
      this.#idle.push(chunk.subarray(end));
    } else this.#idle.push(chunk);
  }

  #onFrame(frame: Frame): void {
    if (!this.#awake || this.#silent) {
      this.#stats.ignored++;
      this.#emit({ type: "ignored", why: this.#awake ? "silent" : "asleep" });
      return;
    }
    switch (frame.kind) {
      case "nack":
        // §6.2.1.4: the host asks for the last response frame again.
        this.#stats.nacksReceived++;
        this.#emit({ type: "nack" });
        if (this.#lastResponse) {
          this.#stats.retransmissions++;
          this.#write(this.#lastResponse);
        }
        return;
      case "ack":
        // §6.2.2: an ACK from the host aborts the command in progress.
        this.#emit({ type: "abort", aborted: this.#pending !== undefined });
        this.#cancelPending();
        return;
      case "error":
        return;
      case "info":
        this.#onCommand(frame.tfi, frame.data);
    }
  }

  #onCommand(tfi: number, pd: Uint8Array): void {
    const code = pd[0];
    const name = code === undefined ? "none" : hex(code);
    this.#stats.commands[name] = (this.#stats.commands[name] ?? 0) + 1;
    // A new command ends one still waiting (the host gave up on it).
    this.#cancelPending();
    this.#write(ACK_FRAME);
    this.#stats.acksSent++;
    this.#emit({ type: "command", pd });
    let response: Uint8Array | undefined;
    try {
      if (tfi !== TFI_HOST_TO_PN532) refuse(`TFI 0x${hex(tfi)} is not a host command (D4)`);
      response = this.#answer(pd);
    } catch (err) {
      if (!(err instanceof CommandRefused)) throw err;
      // Unknown command or bad parameters: the application-level error frame (§6.2.1.5).
      this.#stats.errors++;
      this.#emit({ type: "error", command: pd, reason: err.message });
      this.#lastResponse = ERROR_FRAME;
      this.#write(this.#damage(ERROR_FRAME));
      return;
    }
    if (response) this.#respond(pd, response);
    else this.#emit({ type: "waiting", command: pd });
  }

  #respond(command: Uint8Array, pd: Uint8Array): void {
    const frame = encodeResponse(pd);
    this.#lastResponse = frame;
    this.#emit({ type: "response", command, pd });
    this.#write(this.#damage(frame));
    if (command[0] === Command.InListPassiveTarget || command[0] === Command.InAutoPoll) {
      for (const w of this.#pollWaiters.splice(0)) w();
    }
  }

  /** The response's packet data, or undefined when the command answers later (#pending). */
  #answer(pd: Uint8Array): Uint8Array | undefined {
    const code = pd[0] ?? -1;
    const r = (...data: number[]) => Uint8Array.of(responseCode(code), ...data);
    const p = pd.subarray(1);
    switch (code) {
      case Command.Diagnose:
        return this.#diagnose(p);
      case Command.GetFirmwareVersion:
        return firmwareVersionResponse(this.#o.firmware ?? PN532_V1_6);
      case Command.GetGeneralStatus: {
        // Err, Field, NbTg, then per target Tg BrRx BrTx Type (106 kbps, type A), then SAM status.
        const t = this.#target ? [0x01, 0x00, 0x00, 0x00] : [];
        return r(0x00, this.#rfField ? 0x01 : 0x00, this.#target ? 1 : 0, ...t, 0x00);
      }
      case Command.ReadRegister: {
        if (p.length < 2 || p.length % 2 !== 0) refuse("ReadRegister takes address pairs (ADRH ADRL)");
        const values: number[] = [];
        for (let i = 0; i < p.length; i += 2)
          values.push(this.#registers.get(((p[i] ?? 0) << 8) | (p[i + 1] ?? 0)) ?? 0);
        return r(...values);
      }
      case Command.WriteRegister: {
        if (p.length < 3 || p.length % 3 !== 0) refuse("WriteRegister takes address + value triples");
        for (let i = 0; i < p.length; i += 3) this.#registers.set(((p[i] ?? 0) << 8) | (p[i + 1] ?? 0), p[i + 2] ?? 0);
        return r();
      }
      case Command.ReadGPIO:
        return r(this.#registers.get(0xffb0) ?? 0xff, this.#registers.get(0xfff7) ?? 0xff, 0x00);
      case Command.WriteGPIO:
        // Bit 7 of each byte says whether to apply it.
        if ((p[0] ?? 0) & 0x80) this.#registers.set(0xffb0, (p[0] ?? 0) & 0x3f);
        if ((p[1] ?? 0) & 0x80) this.#registers.set(0xfff7, (p[1] ?? 0) & 0x06);
        return r();
      case Command.SetSerialBaudRate:
        // A pty has no baud rate; the chip answers at the old rate, then switches.
        if ((p[0] ?? 0xff) > 0x08) refuse("SetSerialBaudRate BR must be 0x00..0x08");
        return r();
      case Command.SetParameters:
        if (p.length !== 1) refuse("SetParameters takes one Flags byte");
        this.#parameters = p[0] ?? 0;
        return r();
      case Command.SAMConfiguration:
        if ((p[0] ?? 0) < 0x01 || (p[0] ?? 0) > 0x04) refuse("SAMConfiguration Mode must be 0x01..0x04");
        return r();
      case Command.PowerDown:
        if (p.length < 1) refuse("PowerDown needs WakeUpEnable");
        // The response goes out first; the chip sleeps once it is sent (§7.2.11).
        queueMicrotask(() => {
          this.#awake = false;
          this.#target = undefined;
          this.#emit({ type: "sleep" });
        });
        return r(0x00);
      case Command.RFConfiguration:
        return this.#rfConfiguration(p, r);
      case Command.InListPassiveTarget:
        return this.#inListPassiveTarget(pd);
      case Command.InAutoPoll:
        return this.#inAutoPoll(pd);
      case Command.InDataExchange:
      case Command.InCommunicateThru:
        return this.#exchange(code, p);
      case Command.InSelect:
      case Command.InDeselect:
      case Command.InRelease: {
        if (p.length !== 1) refuse(`${code === Command.InSelect ? "InSelect" : "InDeselect/InRelease"} takes Tg`);
        const tg = p[0] ?? 0;
        // Tg 0 means every target (none is fine); we only ever have target 1.
        if (!this.#target) return r(tg === 0x00 ? Status.ok : Status.wrongContext);
        if (tg !== 0x00 && tg !== 0x01) return r(Status.wrongContext);
        this.#target.card.reset();
        if (code === Command.InSelect) this.#target.selected = true;
        else if (code === Command.InDeselect) this.#target.selected = false;
        else this.#target = undefined;
        return r(Status.ok);
      }
      case Command.InJumpForDEP:
      case Command.InJumpForPSL:
        // No NFC-DEP peer in the field: the target does not answer.
        return r(Status.timeout);
      default:
        return refuse(`command 0x${hex(code)} is not implemented by the simulator`);
    }
  }

  #diagnose(p: Uint8Array): Uint8Array {
    const r = (...data: number[]) => Uint8Array.of(responseCode(Command.Diagnose), ...data);
    switch (p[0]) {
      case 0x00:
        // Communication line test: the parameters come back as sent (libnfc sends "\0libnfc").
        return r(...p);
      case 0x01: // ROM test
      case 0x02: // RAM test
      case 0x07: // antenna test
        return r(0x00);
      case 0x04:
        // Polling test to a target: NumFail, the failed polls out of 128.
        return r(this.#card ? 0x00 : 0x80);
      case 0x06:
        // Attention request (is the ISO/IEC 14443-4 card still there?).
        return r(this.#target && this.#card === this.#target.card ? Status.ok : Status.timeout);
      default:
        return refuse(`Diagnose test 0x${hex(p[0] ?? 0)} is not implemented by the simulator`);
    }
  }

  #rfConfiguration(p: Uint8Array, r: (...data: number[]) => Uint8Array): Uint8Array {
    // CfgItem and the length of its ConfigurationData (§7.3.1).
    const lengths: Record<number, number> = { 1: 1, 2: 3, 4: 1, 5: 3, 10: 11, 11: 8, 12: 3, 13: 9 };
    const item = p[0] ?? -1;
    const want = lengths[item];
    if (want === undefined) refuse(`RFConfiguration CfgItem 0x${hex(item & 0xff)} does not exist`);
    if (p.length !== 1 + want) refuse(`RFConfiguration CfgItem 0x${hex(item)} takes ${want} data bytes`);
    if (item === 0x01) {
      this.#rfField = ((p[1] ?? 0) & 0x01) === 1;
      if (!this.#rfField) this.#target = undefined;
    }
    if (item === 0x05) this.#maxRetriesPassive = p[3] ?? 0xff;
    return r();
  }

  #inListPassiveTarget(pd: Uint8Array): Uint8Array | undefined {
    const maxTg = pd[1] ?? 0;
    const brTy = pd[2] ?? -1;
    if (pd.length < 3 || maxTg < 1 || maxTg > 2) refuse("InListPassiveTarget MaxTg must be 1 or 2");
    if (brTy < 0 || brTy > BaudRateType.jewel106) refuse(`InListPassiveTarget BrTy 0x${hex(brTy)} does not exist`);
    // FeliCa needs its 5-byte polling payload (§7.3.5); the others take optional data.
    if ((brTy === BaudRateType.felica212 || brTy === BaudRateType.felica424) && pd.length !== 8)
      refuse("InListPassiveTarget FeliCa needs the 5-byte polling payload");
    const initiator = pd.subarray(3);
    const tryAnswer = () => {
      // Only type A cards in this field: any other modulation finds nothing.
      const card = brTy === BaudRateType.typeA106 ? this.#card : undefined;
      // Initiator data on type A is the UID of the one card wanted.
      if (!card || (initiator.length > 0 && toHex(initiator) !== toHex(card.uid))) return undefined;
      card.reset();
      this.#rfField = true;
      this.#target = { card, selected: true };
      return inListPassiveTargetResponse({ tg: 0x01, uid: card.uid, sensRes: card.sensRes, selRes: card.selRes });
    };
    const empty = inListPassiveTargetResponse(null);
    const now = tryAnswer();
    if (now) return now;
    // MxRtyPassiveActivation 0xFF (the reset value) retries until a card comes (§7.3.1).
    if (this.#maxRetriesPassive !== 0xff || brTy !== BaudRateType.typeA106) return empty;
    this.#pending = { command: pd, tryAnswer, onTimeout: undefined, timer: undefined };
    return undefined;
  }

  #inAutoPoll(pd: Uint8Array): Uint8Array | undefined {
    const pollNr = pd[1] ?? 0;
    const period = pd[2] ?? 0;
    const types = Array.from(pd.subarray(3));
    if (pollNr < 0x01 || period < 0x01 || period > 0x0f || types.length < 1 || types.length > 15)
      refuse("InAutoPoll needs PollNr 0x01..0xFF, Period 0x01..0x0F and 1..15 target types");
    const code = responseCode(Command.InAutoPoll);
    // Type A at 106 kbps: generic (0x00), MIFARE (0x10); 0x20 / 0x40 only for ISO 14443-4 / DEP cards.
    const typeA = types.find((t) => t === 0x00 || t === 0x10);
    const tryAnswer = () => {
      const card = this.#card;
      if (!card || typeA === undefined) return undefined;
      card.reset();
      this.#rfField = true;
      this.#target = { card, selected: true };
      const data = [0x01, (card.sensRes >> 8) & 0xff, card.sensRes & 0xff, card.selRes, card.uid.length, ...card.uid];
      return Uint8Array.of(code, 0x01, typeA, data.length, ...data);
    };
    const now = tryAnswer();
    if (now) return now;
    // Each poll tries every type for Period × 150 ms; PollNr 0xFF polls for ever.
    const ms = pollNr * period * AUTOPOLL_PERIOD_MS * types.length;
    const pending: Pending = {
      command: pd,
      tryAnswer,
      onTimeout: pollNr === 0xff ? undefined : () => Uint8Array.of(code, 0x00),
      timer: undefined,
    };
    if (pending.onTimeout) {
      const onTimeout = pending.onTimeout;
      pending.timer = this.#timers.setTimeout(() => {
        if (this.#pending === pending) this.#finishPending(onTimeout());
      }, ms);
    }
    this.#pending = pending;
    return undefined;
  }

  #exchange(code: number, p: Uint8Array): Uint8Array {
    const r = (status: number, data: ArrayLike<number> = []) =>
      Uint8Array.of(responseCode(code), status, ...Array.from(data));
    let command = p;
    if (code === Command.InDataExchange) {
      if (p.length < 2) refuse("InDataExchange takes Tg and data");
      // Bit 6 of Tg is MI (more information): the simulator takes single frames.
      if (((p[0] ?? 0) & 0x3f) !== 0x01 || !this.#target?.selected) return r(Status.wrongContext);
      command = p.subarray(1);
    }
    const target = this.#target;
    // No selected type A card, or it has left: nothing answers.
    if (!target?.selected || target.card !== this.#card) return r(Status.timeout);
    const answer = target.card.exchange(command);
    return r(answer.status, answer.data);
  }

  #finishPending(pd: Uint8Array): void {
    const pending = this.#pending;
    if (!pending) return;
    this.#timers.clearTimeout(pending.timer);
    this.#pending = undefined;
    this.#respond(pending.command, pd);
  }

  #cancelPending(): void {
    if (!this.#pending) return;
    this.#timers.clearTimeout(this.#pending.timer);
    this.#pending = undefined;
  }

  #damage(frame: Uint8Array): Uint8Array {
    const how = this.#corrupt;
    if (!how) return frame;
    this.#corrupt = undefined;
    const out = Uint8Array.from(frame);
    if (how === "truncate") return out.slice(0, Math.ceil(out.length / 2));
    // Normal frames: LCS at 4, DCS second to last.
    const at = how === "lcs" ? 4 : out.length - 2;
    out[at] = ((out[at] ?? 0) + 1) & 0xff;
    return out;
  }

  #write(bytes: Uint8Array): void {
    send(this.#link, bytes);
  }
}
