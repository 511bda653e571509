/**
 * Commands to a device (`cmd/{name}`) and their results (`cmd-result`).
 * A command carries an id and, usually, an expiry; the device answers each
 * id with `accepted` then `done` / `failed` (with a reason), or `expired`.
 * A device remembers the ids it has answered, so a command delivered twice
 * (republished when the kiosk reconnects) runs once: the second delivery is
 * answered with the first outcome.
 */
import { z } from "zod";
import { KIOSK_MODES } from "./device-config.ts";

const isoTime = z.iso.datetime({ offset: true });
const seq = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);

/** `cmd/{name}` (→ device). */
export const CommandSchema = z.object({
  id: z.string().min(1).max(64),
  args: z.record(z.string(), z.unknown()).default({}),
  /** Past this instant the device answers `expired` and does nothing. */
  expiresAt: isoTime.optional(),
  /** Who sent it: an operator id (the gateway checks it is the sender's own), or "cloud". */
  by: z.string().max(128).optional(),
});
export type Command = z.infer<typeof CommandSchema>;

export const COMMAND_STATUSES = ["accepted", "done", "failed", "expired"] as const;
export type CommandStatus = (typeof COMMAND_STATUSES)[number];

/** `cmd-result` (device →): one per step of a command. */
/** A result names its command's id (CommandSchema's bound) and a reason short enough to read and to store. */
const resultId = z.string().min(1).max(64);
export const MAX_RESULT_REASON_CHARS = 1000;
export const CommandResultSchema = z.discriminatedUnion("status", [
  z.object({ id: resultId, command: z.string().max(64).optional(), status: z.literal("accepted"), at: isoTime }),
  z.object({
    id: resultId,
    command: z.string().max(64).optional(),
    status: z.literal("done"),
    result: z.unknown().optional(),
    at: isoTime,
  }),
  z.object({
    id: resultId,
    command: z.string().max(64).optional(),
    status: z.enum(["failed", "expired"]),
    reason: z.string().max(MAX_RESULT_REASON_CHARS),
    at: isoTime,
  }),
]);
export type CommandResult = z.infer<typeof CommandResultSchema>;
/** The last word on a command: nothing follows it. */
export const isFinalResult = (r: CommandResult) => r.status !== "accepted";

/**
 * `cmd/replay-from`: the cloud saw seq N+2 before N+1 and waited long enough;
 * the device resends its journal from `from` (harmless if it already had).
 */
export const REPLAY_FROM = "replay-from";
export const ReplayFromArgsSchema = z.object({ from: seq });
export type ReplayFromArgs = z.infer<typeof ReplayFromArgsSchema>;

/** Every command a kiosk knows, with its arguments. */
export const COMMAND_ARGS = {
  /** Restart the daemon once the current customer is done. */
  reboot: z.object({}).strict(),
  /** Each peripheral's own check. */
  "self-test": z.object({}).strict(),
  /** A test receipt on the printer. */
  "print-test": z.object({}).strict(),
  /** The door relay, open for `seconds`. */
  unlock: z.object({ seconds: z.number().int().min(1).max(300).default(5) }).strict(),
  [REPLAY_FROM]: ReplayFromArgsSchema,
  /** Shown on the screen; in maintenance or out of service taps are refused politely. */
  "set-mode": z.object({ mode: z.enum(KIOSK_MODES) }).strict(),
  /** Start a new log file (the old one kept for collection). */
  "rotate-logs": z.object({}).strict(),
  /** Make a new MQTT/HTTP secret and register it with the cloud (docs/install.md); the session reconnects with it. */
  "rotate-credentials": z.object({}).strict(),
} as const;
export type CommandName = keyof typeof COMMAND_ARGS;
export const COMMAND_NAMES = Object.keys(COMMAND_ARGS) as CommandName[];
export const isCommandName = (name: string): name is CommandName => Object.hasOwn(COMMAND_ARGS, name);
