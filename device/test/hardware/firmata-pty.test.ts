/**
 * A Firmata board on a real pty, unplugged and plugged back, as the daemon
 * lives it: Peripherals opens gpio.johnnyFive.path with firmata-io over
 * serialport; a small StandardFirmata stand-in answers on the other end of a
 * socat pty pair. Closing the pair removes the path (a pulled USB cable);
 * opening it again at the same path is the board coming back. Each change
 * must reach Peripherals.health() (telemetry and /healthz) within 2 s, and
 * on return the relay must be set up de-energised before anything is driven.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SerialPort } from "serialport";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { Signal } from "../../../test/support/signal.ts";
import { openPtyPair, type PtyPair } from "../../src/hardware/serial/pty-pair.ts";
import { HEALTH_MS, type PeripheralsRig, peripheralsFor } from "./peripherals-rig.ts";

const test = suite("firmata board replug");
const RELAY = 7;
const BUTTON = 2;

/**
 * Enough of StandardFirmata 2.5 for firmata.js's handshake and digital I/O: it announces its
 * version and firmware until asked for capabilities (a real board does once, after the reset
 * that opening the port causes), answers the capability and analog-mapping queries for an
 * Uno's 20 pins, and records what the host makes of each pin.
 */
class FakeFirmataBoard {
  readonly pins = new Map<number, { mode?: number; value?: number }>();
  /** Every pin change in order, e.g. "mode 7 1", "value 7 0". */
  readonly log: string[] = [];
  #port: SerialPort | undefined;
  #announce: NodeJS.Timeout | undefined;
  #buf: number[] = [];

  constructor(readonly onChange: () => void) {}

  async attach(path: string): Promise<void> {
    const port = new SerialPort({ path, baudRate: 57_600 });
    await new Promise<void>((resolve, reject) => port.once("open", resolve).once("error", reject));
    this.#port = port;
    this.#buf = [];
    // A board that was unplugged starts from reset: nothing set up.
    this.pins.clear();
    this.log.length = 0;
    port.on("data", (d: Buffer) => this.#read(d));
    port.on("error", () => {});
    const name = [..."StandardFirmata.ino"].flatMap((c) => [c.charCodeAt(0) & 0x7f, c.charCodeAt(0) >> 7]);
    const hello = Buffer.from([0xf9, 2, 5, 0xf0, 0x79, 2, 5, ...name, 0xf7]);
    this.#announce = setInterval(() => port.write(hello), 100);
    port.write(hello);
  }

  async detach(): Promise<void> {
    clearInterval(this.#announce);
    const port = this.#port;
    this.#port = undefined;
    if (port?.isOpen) await new Promise<void>((resolve) => port.close(() => resolve()));
  }

  /** A button pin changes: the board reports its port's levels. */
  press(level: 0 | 1): void {
    this.#port?.write(Buffer.from([0x90, level << BUTTON, 0]));
  }

  #read(data: Buffer): void {
    for (const b of data) {
      if (b & 0x80 && this.#buf[0] !== 0xf0) this.#buf = [];
      if (b & 0x80 && this.#buf[0] === 0xf0 && b !== 0xf7) this.#buf = [];
      this.#buf.push(b);
      this.#message();
    }
  }

  #message(): void {
    const m = this.#buf;
    const cmd = m[0] as number;
    if (cmd === 0xf0) {
      if (m.at(-1) !== 0xf7) return;
      if (m[1] === 0x6b) {
        clearInterval(this.#announce);
        this.#port?.write(Buffer.from([0xf0, 0x6c, ...UNO_CAPABILITIES, 0xf7]));
      } else if (m[1] === 0x69) {
        const mapping = Array.from({ length: 20 }, (_, pin) => (pin >= 14 ? pin - 14 : 0x7f));
        this.#port?.write(Buffer.from([0xf0, 0x6a, ...mapping, 0xf7]));
      }
      this.#buf = [];
      return;
    }
    if (cmd === 0xf4 && m.length === 3) this.#set(m[1] as number, "mode", m[2] as number);
    else if (cmd === 0xf5 && m.length === 3) this.#set(m[1] as number, "value", m[2] as number);
    else if ((cmd & 0xf0) === 0x90 && m.length === 3) {
      const bits = (m[1] as number) | ((m[2] as number) << 7);
      // A port message carries all 8 pins' latches; only changes are logged.
      for (let i = 0; i < 8; i++) this.#set((cmd & 0x0f) * 8 + i, "value", (bits >> i) & 1);
    } else if ((cmd === 0xf9 && m.length === 1) || ((cmd & 0xf0) === 0xd0 && m.length === 2)) {
      this.#buf = [];
    } else if ((cmd & 0xf0) === 0xc0 && m.length === 2) this.#buf = [];
    else return;
    this.#buf = [];
  }

  #set(pin: number, what: "mode" | "value", v: number): void {
    const p = this.pins.get(pin) ?? {};
    if (p[what] === v && what === "value") return;
    p[what] = v;
    this.pins.set(pin, p);
    this.log.push(`${what} ${pin} ${v}`);
    this.onChange();
  }
}

/** Pins 0-1 serial (no modes), 2-13 digital in/out/pull-up, 14-19 also analog. */
const UNO_CAPABILITIES = Array.from({ length: 20 }, (_, pin) => {
  if (pin < 2) return [0x7f];
  const digital = [0x00, 1, 0x01, 1, 0x0b, 1];
  return pin >= 14 ? [...digital, 0x02, 10, 0x7f] : [...digital, 0x7f];
}).flat();

const signal = new Signal();
const ctx = {} as {
  dir: string;
  device: string;
  pty?: PtyPair;
  board: FakeFirmataBoard;
  rig: PeripheralsRig;
};

async function plugIn(): Promise<void> {
  ctx.pty = await openPtyPair({ devicePath: ctx.device, peerPath: join(ctx.dir, "board") });
  await ctx.board.attach(ctx.pty.peerPath);
}

async function unplug(): Promise<void> {
  await ctx.board.detach();
  await ctx.pty?.close();
}

const board = () => ctx.rig.peripherals.health().gpio?.board;
/** The board's state as health() reports it, within HEALTH_MS; returns how long it took. */
const boardWithin = (state: string, what: string) => ctx.rig.healthWithin((h) => h.gpio?.board?.state === state, what);

test.before(async () => {
  ctx.dir = await mkdtemp(join(tmpdir(), "paylane-firmata-"));
  ctx.device = join(ctx.dir, "ttyACM0");
  ctx.board = new FakeFirmataBoard(signal.notify);
  await plugIn();
  ctx.rig = peripheralsFor(
    ctx.dir,
    {
      reader: { type: "pn532-simulator" },
      gpio: {
        backend: "johnny-five",
        johnnyFive: { path: ctx.device, readyTimeoutMs: 5000 },
        relay: { line: { firmata: RELAY } },
        button: { line: { firmata: BUTTON } },
      },
    },
    signal,
  );
});

test.after(async () => {
  await ctx.rig.peripherals.stop();
  await unplug();
  await rm(ctx.dir, { recursive: true, force: true });
});

test("unplugged and plugged back twice: the board's state follows in health within 2 s, relay de-energised first, button works", async () => {
  let presses = 0;
  await ctx.rig.peripherals.start({
    onCard: async () => {},
    onCallStaff: () => {
      presses++;
      signal.notify();
    },
    onChange: signal.notify,
    onPaper: () => {},
  });
  assert.equal(board(), { state: "connected", attempts: 0 });
  const took: number[] = [];
  for (let round = 1; round <= 2; round++) {
    await unplug();
    took.push(await boardWithin("reconnecting", `round ${round}: reconnecting`));
    assert.is(ctx.rig.peripherals.health().gpio?.roles.relay?.state, "disconnected");
    await signal.until(() => (board()?.attempts ?? 0) >= 1, "a reopen attempt", HEALTH_MS);
    await plugIn();
    took.push(await boardWithin("connected", `round ${round}: connected again`));
    await signal.until(() => ctx.board.pins.get(RELAY)?.mode === 1, "relay set up", HEALTH_MS);
    const relay = ctx.board.log.filter((l) => l.split(" ")[1] === String(RELAY));
    assert.is(relay[0], `value ${RELAY} 0`, `round ${round}: latched low before it is an output: ${relay}`);
    assert.not.ok(relay.includes(`value ${RELAY} 1`), "never energised on return");
    await signal.until(() => ctx.board.pins.get(BUTTON)?.mode !== undefined, "button set up", HEALTH_MS);
    ctx.board.press(1);
    ctx.board.press(0);
    await signal.until(() => presses === round, `round ${round}: a press on the board that came back`, HEALTH_MS);
    ctx.board.press(1);
    // The release settles on a debounce timer, which tells nobody: look again every 20 ms.
    const look = setInterval(signal.notify, 20);
    await signal
      .until(() => ctx.rig.peripherals.gpio?.button?.pressed === false, "button released", HEALTH_MS)
      .finally(() => clearInterval(look));
  }
  assert.ok(
    took.every((ms) => ms <= HEALTH_MS),
    `ms per change: ${took}`,
  );
});

test.run();
