/**
 * What each command does at this kiosk (the command desk checks, dedupes
 * and answers them). A command that cannot be done here fails with a
 * reason an operator can act on, never silently.
 */
import type { PaymentTerminal } from "../hardware/terminal/terminal.ts";
import type { Peripherals } from "../peripherals.ts";
import type { Replica } from "../replica.ts";
import type { Timers } from "../timers.ts";
import type { Uplink } from "../uplink.ts";
import { CommandFailure, type CommandHandlers } from "./command-desk.ts";
import type { CustomerPresence } from "./customer-presence.ts";
import type { OperatingMode } from "./kiosk-mode.ts";
import type { KioskKit } from "./kit.ts";

/** The relay's longest single pulse; a longer unlock is a pulse renewed before it ends. */
const MAX_PULSE_MS = 30_000;
const RENEW_BEFORE_MS = 5_000;

export interface KioskCommandDeps {
  presence: CustomerPresence;
  mode: OperatingMode;
  peripherals: Peripherals;
  terminal: PaymentTerminal | undefined;
  replica: Replica;
  uplink: Pick<Uplink, "replayFrom">;
  /** Asks the process to restart (main exits with a code its supervisor restarts); absent: `reboot` fails. */
  restart?: () => void;
  /** Reopens the log file (after logrotate moved it); absent: the kiosk logs to stdout and `rotate-logs` fails. */
  reopenLogs?: () => void;
  /**
   * Makes and registers new credentials (device/src/setup/rotation.ts); its
   * `afterAnswer` reconnects with them once the result is sent. Absent: `rotate-credentials` fails.
   */
  rotateCredentials?: () => Promise<{ result: object; afterAnswer?: () => void }>;
}

export function kioskCommands(kit: KioskKit, d: KioskCommandDeps): CommandHandlers {
  const { log, now } = kit;
  /** The pending renewal of the door relay's pulse (see unlock). */
  let renewTimer: unknown;
  return {
    reboot: async () => {
      const restart = d.restart;
      if (!restart)
        throw new CommandFailure("this daemon was started without a restart hook (only paylane-device's main has one)");
      const asked = now().getTime();
      if (d.presence.busy) log.warn("reboot asked: waiting for the customer at the kiosk to finish");
      await d.presence.quiet();
      const waitedMs = now().getTime() - asked;
      log.warn({ waitedMs }, "restarting the kiosk daemon as asked");
      return { result: { restarting: true, waitedMs }, afterAnswer: restart };
    },

    "self-test": async () => {
      const report = await kit.work.track(d.peripherals.selfTest());
      const peripherals = { ...report.peripherals };
      if (d.terminal) peripherals.terminal = await terminalCheck(d.terminal, kit.timers);
      return { result: { ok: Object.values(peripherals).every((p) => p.ok), peripherals } };
    },

    "print-test": async (_args, command) => {
      const printer = d.peripherals.printer;
      if (!printer || kit.config.printer.type === "none") {
        throw new CommandFailure('no receipt printer at this kiosk (printer.type is "none")');
      }
      const info = await d.replica.info();
      const outcome = await printer.print({
        kind: "checkin",
        venue: info.siteName || kit.config.site,
        kiosk: kit.config.device,
        at: now(),
        timeZone: info.timezone,
        memberName: "PRINTER TEST",
        transactionId: `print-test ${command.id}`,
      });
      if (!outcome.printed) {
        throw new CommandFailure(
          `the printer did not print: ${outcome.reason}${outcome.detail ? ` (${outcome.detail})` : ""}`,
        );
      }
      return { result: { printed: true } };
    },

    unlock: async ({ seconds }) => {
      const relay = d.peripherals.gpio?.relay;
      if (!relay) throw new CommandFailure("no door relay at this kiosk (gpio.relay is not configured)");
      const until = now().getTime() + seconds * 1000;
      const pulse = (): boolean => relay.pulse(Math.max(100, Math.min(MAX_PULSE_MS, until - now().getTime())));
      if (!pulse())
        throw new CommandFailure(`the relay could not be energised: ${relay.health.lastError ?? "not started"}`);
      // Past the relay's longest pulse: renewed shortly before each one ends, until the time asked.
      // One chain at a time: the latest unlock says how long the door stays open (a shorter one too).
      kit.timers.clearTimeout(renewTimer);
      renewTimer = undefined;
      const renew = () => {
        renewTimer = undefined;
        if (until - now().getTime() <= 0 || !pulse()) return;
        if (until - now().getTime() > MAX_PULSE_MS) {
          renewTimer = kit.timers.setTimeout(renew, MAX_PULSE_MS - RENEW_BEFORE_MS);
        }
      };
      if (seconds * 1000 > MAX_PULSE_MS) renewTimer = kit.timers.setTimeout(renew, MAX_PULSE_MS - RENEW_BEFORE_MS);
      log.warn({ seconds }, "door unlocked by command");
      return { result: { unlockedForSeconds: seconds, until: new Date(until).toISOString() } };
    },

    "replay-from": async ({ from }) => {
      log.info({ from }, "cloud asked for a replay");
      return { result: await d.uplink.replayFrom(from) };
    },

    "set-mode": async ({ mode }, command) => {
      const { previous } = await d.mode.set(mode, command.by ?? "command");
      return { result: { mode, previous } };
    },

    "rotate-credentials": async () => {
      if (!d.rotateCredentials)
        throw new CommandFailure("this daemon was started without its device key, so it cannot rotate its credentials");
      return await d.rotateCredentials();
    },

    "rotate-logs": async () => {
      if (!d.reopenLogs) {
        throw new CommandFailure(
          "this kiosk logs to standard output (journald or its supervisor keeps and rotates it): no log file to rotate",
        );
      }
      d.reopenLogs();
      return { result: { reopened: true } };
    },
  };
}

/**
 * The payment terminal's part of a self-test. A terminal links up at its
 * first charge, so one idle since boot reads "disconnected" without being
 * faulty: it is asked to link up now, within TERMINAL_CHECK_MS.
 */
async function terminalCheck(terminal: PaymentTerminal, timers: Timers): Promise<{ ok: boolean; detail: string }> {
  if (terminal.state === "disconnected" && terminal.connect) {
    let timer: unknown;
    const late = new Promise<string>((resolve) => {
      timer = timers.setTimeout(() => resolve(`no link within ${TERMINAL_CHECK_MS / 1000} s`), TERMINAL_CHECK_MS);
    });
    const failure = await Promise.race([
      terminal.connect().then(
        () => undefined,
        (err: Error) => err.message,
      ),
      late,
    ]).finally(() => timers.clearTimeout(timer));
    if (failure !== undefined) return { ok: false, detail: `payment terminal unreachable: ${failure}` };
  }
  const state = terminal.state;
  return { ok: state !== "disconnected", detail: `payment terminal ${state}` };
}

const TERMINAL_CHECK_MS = 5000;
