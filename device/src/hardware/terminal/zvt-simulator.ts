/**
 * A payment terminal speaking ZVT the way a real one does, for tests, demos,
 * `npm start` and `paylane-sim terminal`: on a TCP port (start()) or on a
 * serial line (attach(), with ZVT's serial transport, ./zvt-serial.ts). It
 * ACKs each ECR command, sends its own
 * messages one at a time (each waits for the ECR's ACK), and answers
 * Registration, Authorization, Abort and End-of-Day.
 *
 * An Authorization ends the way the next queued outcome says:
 *   approve     04 FF (insert card) → 04 0F result 00 → 06 0F
 *   decline     04 FF → 04 0F result code → 06 1E result code
 *   timeout     04 FF, then nothing (a card that never comes); an ECR Abort ends it with 06 1E 6C
 *   disconnect  04 FF, then the connection is closed: mid-transaction
 *
 * End-of-Day (06 50, with the Registration password) answers 04 FF (please
 * wait) → 04 0F result 00 with the batch total (BMP 04) and the single totals
 * per card group (BMP 60) of the charges approved since the last End-of-Day →
 * 06 0F, and starts a new batch.
 *
 * The simulated card's full PAN stays in this object: on the wire it goes
 * masked ('E' for every digit but the last four), and it is never logged.
 * A real terminal's own timeouts are not modelled; the only timer is the
 * serial transport's wait for the ECR's ACK of a frame.
 */
import { createServer, type Server, type Socket } from "node:net";
import type { Logger } from "pino";
import type { Timers } from "../../timers.ts";
import type { SerialLink } from "../serial/serial-link.ts";
import { cardLabel } from "./terminal.ts";
import { ACK, type Apdu, ApduDecoder, apduName, isAck, isNegativeAck, negativeAck } from "./zvt-frame.ts";
import {
  CARD_TYPES,
  Cmd,
  completion,
  currencyAlpha,
  currencyNumber,
  IntermediateStatus,
  intermediateStatus,
  isCmd,
  maskedPanBody,
  parseAuthorization,
  parseEndOfDay,
  parseRegistration,
  type SingleTotals,
  statusInformation,
  TOTALS_GROUPS,
  terminalAbort,
  totalsGroup,
} from "./zvt-messages.ts";
import { zvtSerialLink } from "./zvt-serial.ts";

export type SimulatedOutcome = "approve" | "decline" | "timeout" | "disconnect";

export interface SimulatedOutcomeOptions {
  /** For "decline": the result code sent (default 0x05, declined by the issuer). */
  resultCode?: number;
  /** For "timeout": refuse the ECR's Abort too (84 83 00), like a terminal busy with the issuer. */
  ignoreAbort?: boolean;
}

export interface SimulatedCard {
  /** Sent as the card name (BMP 8B), e.g. "VISA". */
  brand: string;
  /** A full test PAN such as 4242424242424242; only its last four digits ever leave the simulator. */
  pan: string;
}

export interface ZvtSimulatorOptions {
  /** The 6-digit password Registration must carry. */
  password?: string;
  card?: SimulatedCard;
  /** Eight digits, sent in BMP 29. */
  terminalId?: string;
  /** The terminal's clock, for the time and date in Status information. */
  now?: () => Date;
  logger?: Logger;
  /** Called after anything in `stats` or `lastCharge` changed (tests wait on it). */
  onChange?: () => void;
  /**
   * Every APDU as it is received ("in") or sent ("out"), for a readable trace
   * (`paylane-sim terminal`). The caller must not print passwords or PANs:
   * ./zvt-describe.ts does not.
   */
  onApdu?: (direction: "in" | "out", apdu: Apdu) => void;
  /** For the serial transport's ACK wait (attach()); real timers by default. */
  timers?: Timers;
}

export interface ZvtSimulatorStats {
  connections: number;
  registrations: number;
  /** Registrations refused (wrong password or malformed). */
  refused: number;
  /** Authorizations received. */
  charges: number;
  approved: number;
  declined: number;
  /** Abort (06 B0) requests received. */
  aborts: number;
  /** End-of-Day (06 50) batches closed. */
  endOfDays: number;
  /** ACKs received from the ECR. */
  acks: number;
  /** Bytes from the ECR that were not APDUs. */
  garbageBytes: number;
}

export interface SimulatedCharge {
  amount: number;
  /** ISO 4217 alphabetic when known, else the numeric code as digits. */
  currency: string;
}

type Queued = { kind: "send"; bytes: Uint8Array; final: boolean } | { kind: "drop" };

/** Where one ECR's bytes go: a TCP socket or a serial line with ZVT's transport. */
interface Peer {
  write(bytes: Uint8Array): void;
  /** Ends the connection (a pulled cable); the session ends with it. */
  destroy(): void;
  readonly destroyed: boolean;
}

/** One ECR connection. */
interface Session {
  peer: Peer;
  decoder: ApduDecoder;
  outbox: Queued[];
  awaitingAck: boolean;
  /** The Authorization in progress: "card" while waiting for a card that may never come. */
  txn: { phase: "card" | "answering"; ignoreAbort: boolean } | undefined;
}

export const DEFAULT_SIMULATED_CARD: SimulatedCard = { brand: "VISA", pan: "4242424242424242" };

export class ZvtSimulator {
  readonly #o: ZvtSimulatorOptions;
  readonly #server: Server;
  readonly #sessions = new Set<Session>();
  readonly #queue: { outcome: SimulatedOutcome; opts: SimulatedOutcomeOptions }[] = [];
  #card: SimulatedCard;
  #last: SimulatedCharge | undefined;
  #trace = 0;
  /** The charges approved since the last End-of-Day: what the next one totals. */
  #batch: { amount: number; currency: number; cardType: number | undefined; receipt: number }[] = [];
  #address: { host: string; port: number } | undefined;
  readonly #stats: ZvtSimulatorStats = {
    connections: 0,
    registrations: 0,
    refused: 0,
    charges: 0,
    approved: 0,
    declined: 0,
    aborts: 0,
    endOfDays: 0,
    acks: 0,
    garbageBytes: 0,
  };

  constructor(opts: ZvtSimulatorOptions = {}) {
    this.#o = opts;
    this.#card = checkCard(opts.card ?? DEFAULT_SIMULATED_CARD);
    this.#server = createServer((socket) => this.#accept(socket));
  }

  /** Listens on 127.0.0.1 (port 0: any free port); resolves with where. */
  async start(port = 0): Promise<{ host: string; port: number }> {
    if (this.#address) return this.#address;
    await new Promise<void>((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen({ host: "127.0.0.1", port }, () => {
        this.#server.off("error", reject);
        resolve();
      });
    });
    const a = this.#server.address();
    if (!a || typeof a === "string") throw new Error("ZVT simulator: no TCP address");
    this.#address = { host: "127.0.0.1", port: a.port };
    this.#o.logger?.info(this.#address, "ZVT terminal simulator listening");
    return this.#address;
  }

  /** Closes every connection and the listening port. */
  async stop(): Promise<void> {
    this.dropConnections();
    if (!this.#address) return;
    this.#address = undefined;
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  get address(): { host: string; port: number } | undefined {
    return this.#address;
  }

  get stats(): ZvtSimulatorStats {
    return { ...this.#stats };
  }

  /** The amount and currency of the last Authorization received. */
  get lastCharge(): SimulatedCharge | undefined {
    return this.#last ? { ...this.#last } : undefined;
  }

  /** The charges approved since the last End-of-Day, as the next one will total them. */
  get batch(): { count: number; total: number } {
    return { count: this.#batch.length, total: this.#batch.reduce((n, c) => n + c.amount, 0) };
  }

  /** ECR connections open now. */
  get connections(): number {
    return this.#sessions.size;
  }

  /** Queues how the next Authorization ends; with nothing queued, charges are approved. */
  nextOutcome(outcome: SimulatedOutcome, opts: SimulatedOutcomeOptions = {}): void {
    this.#queue.push({ outcome, opts });
  }

  /** The card presented to the following charges. */
  setCard(card: SimulatedCard): void {
    this.#card = checkCard(card);
  }

  /** The brand and last four of the simulated card: all a test may compare against. */
  get cardLabel(): string {
    return cardLabel(this.#card.brand, this.#card.pan.slice(-4));
  }

  /** Writes raw bytes to every connection now, as line noise between messages (framed as an APDU on serial). */
  injectGarbage(bytes: Uint8Array): void {
    for (const s of this.#sessions) s.peer.write(bytes);
  }

  /** Closes every ECR connection now, like a pulled cable. */
  dropConnections(): void {
    for (const s of [...this.#sessions]) s.peer.destroy();
  }

  /**
   * Serves one ECR on a serial line (a pty's far end, a UART), with ZVT's
   * serial transport: DLE/STX frames, CRC, ACK/NAK. Returns the detach
   * function; the session also ends when the line closes.
   */
  attach(line: SerialLink): () => void {
    // A terminal keeps its line: a frame the ECR never takes is dropped, the next ECR session is served.
    const link = zvtSerialLink(line, { timers: this.#o.timers, onGiveUp: "drop" });
    let destroyed = false;
    const session = this.#open({
      write: (bytes) => {
        link.write(bytes).catch(() => {}); // a frame the ECR never takes ends the link: onClose below
      },
      destroy: () => {
        destroyed = true;
        void link.close();
      },
      get destroyed() {
        return destroyed || !link.isOpen;
      },
    });
    link.onData((apdu) => this.#onData(session, apdu));
    link.onClose(() => this.#end(session));
    return () => session.peer.destroy();
  }

  #accept(socket: Socket): void {
    socket.setNoDelay(true);
    const session = this.#open({
      write: (bytes) => socket.write(bytes),
      destroy: () => socket.destroy(),
      get destroyed() {
        return socket.destroyed;
      },
    });
    socket.on("data", (chunk: Buffer) => this.#onData(session, chunk));
    // A reset ECR connection is routine for a terminal; "close" follows and ends the session.
    socket.on("error", () => {});
    socket.on("close", () => this.#end(session));
  }

  #open(transport: Peer): Session {
    const peer: Peer = {
      write: (bytes) => {
        this.#tell("out", bytes);
        transport.write(bytes);
      },
      destroy: () => transport.destroy(),
      get destroyed() {
        return transport.destroyed;
      },
    };
    const session: Session = { peer, decoder: new ApduDecoder(), outbox: [], awaitingAck: false, txn: undefined };
    this.#sessions.add(session);
    this.#stats.connections++;
    this.#changed();
    return session;
  }

  #end(session: Session): void {
    if (!this.#sessions.delete(session)) return;
    this.#changed();
  }

  /** Tells onApdu of an APDU sent (bytes as written; raw garbage is not an APDU and is not told). */
  #tell(direction: "out", bytes: Uint8Array): void {
    const onApdu = this.#o.onApdu;
    if (!onApdu) return;
    for (const e of new ApduDecoder().push(bytes)) if (e.type === "apdu") onApdu(direction, e.apdu);
  }

  #onData(s: Session, chunk: Uint8Array): void {
    for (const e of s.decoder.push(chunk)) {
      if (e.type === "discard") {
        this.#stats.garbageBytes += e.bytes;
        continue;
      }
      this.#onApdu(s, e.apdu);
    }
    this.#changed();
  }

  #onApdu(s: Session, a: Apdu): void {
    this.#o.onApdu?.("in", a);
    if (isAck(a) || isNegativeAck(a)) {
      // The ECR refusing a message (84 XX 00) also lets the next one go; only an ACK is counted.
      if (isAck(a)) this.#stats.acks++;
      s.awaitingAck = false;
      this.#pump(s);
      return;
    }
    if (isCmd(a, Cmd.registration)) this.#register(s, a.data);
    else if (isCmd(a, Cmd.authorization)) this.#authorize(s, a.data);
    else if (isCmd(a, Cmd.ecrAbort)) this.#abort(s);
    else if (isCmd(a, Cmd.endOfDay)) this.#endOfDay(s, a.data);
    else {
      this.#o.logger?.debug({ apdu: apduName(a) }, "ZVT simulator: command not supported");
      s.peer.write(negativeAck(0x83));
    }
  }

  #register(s: Session, data: Uint8Array): void {
    // Registration opens an ECR session afresh: on a serial line an ECR that reopened its port looks
    // like this, and whatever was waiting for the old session's ACK is dropped.
    s.outbox.length = 0;
    s.awaitingAck = false;
    s.txn = undefined;
    const reg = parseRegistration(data);
    if (!reg || reg.password !== (this.#o.password ?? "000000")) {
      this.#stats.refused++;
      s.peer.write(negativeAck(0x83));
      return;
    }
    this.#stats.registrations++;
    s.peer.write(ACK);
    this.#send(s, completion({ terminalId: this.#terminalId, currency: reg.currency }), false);
  }

  #authorize(s: Session, data: Uint8Array): void {
    const req = parseAuthorization(data);
    if (s.txn || req.amount === undefined || req.currency === undefined) {
      s.peer.write(negativeAck(s.txn ? 0x9c : 0x9a));
      return;
    }
    const { amount, currency } = req;
    this.#stats.charges++;
    this.#last = { amount, currency: currencyAlpha(currency) ?? String(currency) };
    s.peer.write(ACK);
    const { outcome, opts } = this.#queue.shift() ?? { outcome: "approve" as const, opts: {} };
    s.txn = { phase: outcome === "timeout" ? "card" : "answering", ignoreAbort: opts.ignoreAbort === true };
    this.#send(s, intermediateStatus(IntermediateStatus.insertCard), false);
    const trace = ++this.#trace;
    const common = {
      amount,
      currency,
      traceNumber: trace,
      terminalId: this.#terminalId,
      at: (this.#o.now ?? (() => new Date()))(),
      maskedPan: maskedPanBody(this.#card.pan),
      cardType: cardTypeId(this.#card.brand),
      cardName: this.#card.brand,
    };
    switch (outcome) {
      case "approve":
        this.#stats.approved++;
        this.#batch.push({ amount, currency, cardType: common.cardType, receipt: trace % 10_000 });
        this.#send(
          s,
          statusInformation({
            ...common,
            resultCode: 0x00,
            receiptNumber: trace % 10_000,
            turnoverNumber: trace,
            approvalCode: String(100_000 + ((trace * 7919) % 900_000)),
          }),
          false,
        );
        this.#send(s, completion(), true);
        return;
      case "decline": {
        const code = opts.resultCode ?? 0x05;
        this.#stats.declined++;
        this.#send(s, statusInformation({ ...common, resultCode: code }), false);
        this.#send(s, terminalAbort(code), true);
        return;
      }
      case "timeout":
        return;
      case "disconnect":
        s.outbox.push({ kind: "drop" });
        this.#pump(s);
        return;
    }
  }

  #abort(s: Session): void {
    this.#stats.aborts++;
    if (s.txn?.phase !== "card" || s.txn.ignoreAbort) {
      s.peer.write(negativeAck(0x83));
      return;
    }
    s.peer.write(ACK);
    s.txn.phase = "answering";
    this.#send(s, terminalAbort(0x6c), true);
  }

  #endOfDay(s: Session, data: Uint8Array): void {
    const req = parseEndOfDay(data);
    if (!req || req.password !== (this.#o.password ?? "000000")) {
      s.peer.write(negativeAck(0x83));
      return;
    }
    if (s.txn) {
      s.peer.write(negativeAck(0x9c));
      return;
    }
    s.peer.write(ACK);
    s.txn = { phase: "answering", ignoreAbort: true };
    const batch = this.#batch;
    this.#batch = [];
    this.#stats.endOfDays++;
    const groups = Object.fromEntries(TOTALS_GROUPS.map((g) => [g, { count: 0, amount: 0 }])) as SingleTotals["groups"];
    for (const c of batch) {
      const g = groups[totalsGroup(c.cardType)];
      g.count++;
      g.amount += c.amount;
    }
    const receipt = (n: number | undefined) => String(n ?? 0).padStart(4, "0");
    this.#send(s, intermediateStatus(IntermediateStatus.pleaseWait), false);
    this.#send(
      s,
      statusInformation({
        resultCode: 0x00,
        amount: batch.reduce((n, c) => n + c.amount, 0),
        currency: batch[0]?.currency ?? currencyNumber("EUR") ?? 978,
        traceNumber: ++this.#trace,
        terminalId: this.#terminalId,
        at: (this.#o.now ?? (() => new Date()))(),
        totals: { receiptFrom: receipt(batch[0]?.receipt), receiptTo: receipt(batch.at(-1)?.receipt), groups },
      }),
      false,
    );
    this.#send(s, completion(), true);
  }

  get #terminalId(): string {
    return this.#o.terminalId ?? "52500038";
  }

  /** Queues a message; it goes once the ECR has ACKed the one before. */
  #send(s: Session, bytes: Uint8Array, final: boolean): void {
    s.outbox.push({ kind: "send", bytes, final });
    this.#pump(s);
  }

  #pump(s: Session): void {
    while (!s.awaitingAck && !s.peer.destroyed) {
      const next = s.outbox.shift();
      if (!next) return;
      if (next.kind === "drop") {
        s.txn = undefined;
        s.outbox.length = 0;
        s.peer.destroy();
        return;
      }
      s.peer.write(next.bytes);
      s.awaitingAck = true;
      if (next.final) s.txn = undefined;
    }
  }

  #changed(): void {
    try {
      this.#o.onChange?.();
    } catch (err) {
      this.#o.logger?.error({ err: (err as Error).message }, "ZVT simulator change listener failed");
    }
  }
}

function checkCard(card: SimulatedCard): SimulatedCard {
  if (!/^\d{12,19}$/.test(card.pan)) throw new RangeError("a simulated card's pan must be 12 to 19 digits");
  if (!card.brand.trim()) throw new RangeError("a simulated card needs a brand");
  return { ...card };
}

function cardTypeId(brand: string): number | undefined {
  const b = brand.toLowerCase();
  for (const [id, name] of CARD_TYPES) if (name.toLowerCase() === b) return id;
  return undefined;
}
