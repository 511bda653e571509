/**
 * Tells systemd how the kiosk daemon is doing (the sd_notify protocol):
 * READY=1 once it serves, WATCHDOG=1 every WATCHDOG_USEC/2 while it runs, and
 * STOPPING=1 on its way out. Without NOTIFY_SOCKET (not started by systemd,
 * or not as Type=notify) every call does nothing.
 *
 * Node cannot send a unix datagram (node:dgram is UDP only, and net is
 * stream sockets), and a native module for it would be one more thing to
 * build on the Pi. So each message goes through the systemd-notify binary,
 * which every systemd machine has. The sender is then a child process, so
 * the unit says NotifyAccess=all, and `--pid` names the daemon as the main
 * process. systemd-notify (since systemd 246) waits until systemd has read
 * the message, so it no longer exits before systemd can tell which service
 * sent it (the old race that lost READY=1).
 */
import { execFile } from "node:child_process";
import type { Logger } from "pino";
import { realTimers, type Timers } from "../timers.ts";

export interface SystemdNotifyOptions {
  log: Pick<Logger, "warn" | "debug">;
  timers?: Timers;
  /** Where NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID are read; default process.env. */
  env?: Readonly<Record<string, string | undefined>>;
  /** The systemd-notify binary; default found on PATH. */
  command?: string;
}

export interface SystemdNotify {
  /** The service is up (Type=notify: systemd starts what waits on it only now). */
  ready(): void;
  /** The service is stopping on purpose (a stop systemd did not ask for is not a crash). */
  stopping(): void;
  /** Ends the watchdog pings; call when the daemon has stopped. */
  stop(): void;
}

const NOOP: SystemdNotify = { ready() {}, stopping() {}, stop() {} };

/** How long one systemd-notify may take before it is given up (the watchdog is 30 s). */
const SEND_TIMEOUT_MS = 5000;

export function startSystemdNotify(o: SystemdNotifyOptions): SystemdNotify {
  const env = o.env ?? process.env;
  const socket = env.NOTIFY_SOCKET;
  if (!socket) return NOOP;
  const timers = o.timers ?? realTimers;
  const command = o.command ?? "systemd-notify";
  let warned = false;
  let stopped = false;
  let timer: unknown;

  const send = (assignments: string[], timeout = SEND_TIMEOUT_MS): void => {
    execFile(
      command,
      [`--pid=${process.pid}`, ...assignments],
      { env: { PATH: process.env.PATH, NOTIFY_SOCKET: socket }, timeout },
      (err, _stdout, stderr) => {
        if (!err) return;
        // Once: a missing binary would otherwise warn every 15 s.
        if (warned) return o.log.debug({ err: err.message }, "systemd-notify failed again");
        warned = true;
        o.log.warn(
          { err: (stderr || err.message).trim(), sent: assignments.join(" ") },
          "could not tell systemd (systemd-notify failed): it may take the kiosk for hung and restart it",
        );
      },
    );
  };

  // The watchdog: only when it is ours (WATCHDOG_PID unset or this process).
  const watchdogUsec = Number(env.WATCHDOG_USEC);
  const watchdogPid = env.WATCHDOG_PID ? Number(env.WATCHDOG_PID) : process.pid;
  if (Number.isFinite(watchdogUsec) && watchdogUsec > 0 && watchdogPid === process.pid) {
    const every = Math.max(1, Math.floor(watchdogUsec / 2 / 1000));
    const ping = (): void => {
      if (stopped) return;
      timer = timers.setTimeout(ping, every);
      // A ping is killed when the next is due: a slow systemd never piles up processes.
      send(["WATCHDOG=1"], Math.min(SEND_TIMEOUT_MS, every));
    };
    timer = timers.setTimeout(ping, every);
    o.log.debug({ everyMs: every }, "systemd watchdog on");
  }

  return {
    ready: () => send(["READY=1", "STATUS=kiosk running"]),
    stopping: () => send(["STOPPING=1", "STATUS=kiosk stopping"]),
    stop: () => {
      stopped = true;
      if (timer !== undefined) timers.clearTimeout(timer);
      timer = undefined;
    },
  };
}
