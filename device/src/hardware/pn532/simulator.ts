/**
 * A PN532 on the far end of a serial link: decodes host frames with the same
 * frame module as the reader, ACKs them and answers GetFirmwareVersion,
 * SAMConfiguration, RFConfiguration, InListPassiveTarget and InRelease the
 * way UM0701-02 describes. Tests (and the `npm start` site) place and remove
 * cards by UID and can make it misbehave: go silent, corrupt the next
 * response, inject garbage.
 *
 * It attaches to any SerialLink: a serialport on a pty's peer path, the peer
 * of a SerialPortMock, or the device end of an in-memory pair.
 */
import type { Logger } from "pino";
import { type SerialLink, send } from "../serial/serial-link.ts";
import {
  abbreviateUid,
  Command,
  type FirmwareVersion,
  firmwareVersionResponse,
  hex,
  inListPassiveTargetResponse,
  inReleaseResponse,
  type PassiveTarget,
  PN532_V1_6,
  parseUid,
  rfConfigurationResponse,
  samConfigurationResponse,
  toHex,
} from "./commands.ts";
import { ACK_FRAME, ERROR_FRAME, encodeResponse, type Frame, FrameDecoder, TFI_HOST_TO_PN532 } from "./frame.ts";

export type Corruption = "dcs" | "lcs" | "truncate";

export interface Pn532SimulatorOptions {
  logger?: Logger;
  firmware?: FirmwareVersion;
  /**
   * A C106 powers up in low-VBat mode and ignores frames until the HSU
   * wake-up preamble (0x55 …) arrives. Set true to skip that.
   */
  startAwake?: boolean;
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
}

interface Card {
  uid: Uint8Array;
  sensRes: number;
  selRes: number;
}

export class Pn532Simulator {
  readonly #o: Pn532SimulatorOptions;
  readonly #decoder = new FrameDecoder();
  #link: SerialLink | undefined;
  #unsubscribe: (() => void)[] = [];
  #awake = false;
  #silent = false;
  #corrupt: Corruption | undefined;
  #card: Card | undefined;
  #lastResponse: Uint8Array | undefined;
  #pollWaiters: Array<() => void> = [];
  readonly #stats: Pn532SimulatorStats = {
    commands: {},
    acksSent: 0,
    nacksReceived: 0,
    retransmissions: 0,
    wakeUps: 0,
    ignored: 0,
  };

  constructor(opts: Pn532SimulatorOptions = {}) {
    this.#o = opts;
  }

  /** Attaches to a link: like powering up a PN532 on it. A previous link is let go. */
  start(link: SerialLink): void {
    this.stop();
    this.#link = link;
    this.#awake = this.#o.startAwake === true;
    this.#lastResponse = undefined;
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

  /**
   * Puts a card in the field. 4-byte UIDs answer as a MIFARE Classic 1K
   * (SENS_RES 0x0004, SEL_RES 0x08), 7-byte ones as a MIFARE Ultralight
   * (SENS_RES 0x0044, SEL_RES 0x00) — NXP AN10833 type identification.
   */
  placeCard(uid: string): void {
    const bytes = parseUid(uid);
    if (bytes.length === 10) throw new Error(`the simulator places 4- or 7-byte UIDs, got 10 bytes ("${uid}")`);
    this.#card =
      bytes.length === 4
        ? { uid: bytes, sensRes: 0x0004, selRes: 0x08 }
        : { uid: bytes, sensRes: 0x0044, selRes: 0x00 };
    this.#o.logger?.debug({ uid: abbreviateUid(toHex(bytes)) }, "card placed on simulated PN532");
  }

  removeCard(): void {
    this.#card = undefined;
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
    this.#link = undefined;
  }

  #onData(chunk: Uint8Array): void {
    if (!this.#awake && chunk.includes(0x55)) {
      this.#awake = true;
      this.#stats.wakeUps++;
    }
    for (const e of this.#decoder.push(chunk)) {
      if (e.type === "frame") this.#onFrame(e.frame);
    }
  }

  #onFrame(frame: Frame): void {
    if (!this.#awake || this.#silent) {
      this.#stats.ignored++;
      return;
    }
    switch (frame.kind) {
      case "nack":
        // §6.2.1.4: the host asks for the last response frame again.
        this.#stats.nacksReceived++;
        if (this.#lastResponse) {
          this.#stats.retransmissions++;
          this.#write(this.#lastResponse);
        }
        return;
      case "ack":
        // §6.2.2: an ACK from the host aborts the command in progress; ours answer at once.
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
    this.#write(ACK_FRAME);
    this.#stats.acksSent++;
    const response = tfi === TFI_HOST_TO_PN532 ? this.#answer(pd) : undefined;
    // An unknown command or bad parameters: the application-level error frame (§6.2.1.5).
    const frame = response ? encodeResponse(response) : ERROR_FRAME;
    this.#lastResponse = frame;
    this.#write(this.#damage(frame));
    if (code === Command.InListPassiveTarget) for (const w of this.#pollWaiters.splice(0)) w();
  }

  #answer(pd: Uint8Array): Uint8Array | undefined {
    switch (pd[0]) {
      case Command.GetFirmwareVersion:
        return firmwareVersionResponse(this.#o.firmware ?? PN532_V1_6);
      case Command.SAMConfiguration:
        // Mode 0x01..0x04 (§7.2.10); the simulator only models normal mode.
        return pd[1] === 0x01 ? samConfigurationResponse() : undefined;
      case Command.RFConfiguration:
        return pd.length >= 2 ? rfConfigurationResponse() : undefined;
      case Command.InListPassiveTarget: {
        // MaxTg 1..2, BrTy 0x00 (106 kbps Type A) is all this simulator speaks.
        if (pd.length < 3 || pd[1] === undefined || pd[1] < 1 || pd[1] > 2 || pd[2] !== 0x00) return undefined;
        const card = this.#card;
        const target: PassiveTarget | null = card ? { tg: 0x01, ...card } : null;
        return inListPassiveTargetResponse(target);
      }
      case Command.InRelease:
        return pd.length >= 2 ? inReleaseResponse(0x00) : undefined;
      default:
        return undefined;
    }
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
