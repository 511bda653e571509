/**
 * Where `cmd/{name}` is answered: each command is checked (its envelope,
 * then its name and arguments), refused when it expired, and run at most
 * once: its id and every answer are recorded before they are published, so
 * the same id delivered again (after a reconnect, or a restart of the
 * daemon) gets the first answer back instead of a second run. What each
 * command does is kiosk-commands.ts.
 */
import {
  COMMAND_ARGS,
  COMMAND_NAMES,
  type Command,
  type CommandName,
  type CommandResult,
  CommandSchema,
  decode,
  isCommandName,
  validate,
} from "@paylane/protocol";
import type { z } from "zod";
import type { CommandLog } from "../command-log.ts";
import type { KioskKit } from "./kit.ts";
import type { Part } from "./lifecycle.ts";

/** What a command's run gives back: its `done` result, and what to do once that is said (a restart). */
export interface CommandOutcome {
  result?: unknown;
  afterAnswer?: () => void;
}

/** A refusal with a reason for ops (`failed`); any other error fails the command with its message. */
export class CommandFailure extends Error {
  override name = "CommandFailure";
}

export type CommandArgs<N extends CommandName> = z.output<(typeof COMMAND_ARGS)[N]>;
export type CommandHandlers = {
  [N in CommandName]: (args: CommandArgs<N>, command: Command) => Promise<CommandOutcome>;
};

export interface CommandDeskDeps {
  log: CommandLog;
  handlers: CommandHandlers;
  /** Publishes one answer (`uplink.publishCommandResult`). */
  publish: (result: CommandResult) => void;
}

export class CommandDesk implements Part {
  readonly name = "command desk";
  readonly #k: KioskKit;
  readonly #d: CommandDeskDeps;
  /** Commands running now, by id: a copy that arrives meanwhile waits for the same answer. */
  readonly #running = new Map<string, Promise<CommandResult | undefined>>();

  constructor(kit: KioskKit, deps: CommandDeskDeps) {
    this.#k = kit;
    this.#d = deps;
  }

  async start(): Promise<void> {
    const forgotten = await this.#d.log.prune(this.#k.now());
    if (forgotten > 0) this.#k.log.debug({ forgotten }, "old command ids forgotten");
  }

  stop(): void {}

  /** The uplink's `onCommand`: answered as tracked work (stopping waits for a command in progress). */
  readonly onCommand = (name: string, payload: Buffer): void => {
    this.#k.work
      .track(this.handle(name, payload))
      .catch((err: Error) => this.#k.log.error({ command: name, err: err.message }, "command not answered"));
  };

  /** Answers one delivery; resolves with the final answer (undefined: no id to answer to). */
  handle(name: string, payload: Buffer): Promise<CommandResult | undefined> {
    const envelope = decode(CommandSchema, payload);
    if (!envelope.ok) return this.#unreadable(name, payload, envelope.error);
    const command = envelope.value;
    const running = this.#running.get(command.id);
    if (running) {
      this.#k.log.info({ id: command.id, command: name }, "command delivered again while it runs: answered once");
      return running;
    }
    const answer = this.#answer(name, command).finally(() => this.#running.delete(command.id));
    this.#running.set(command.id, answer);
    return answer;
  }

  async #answer(name: string, command: Command): Promise<CommandResult> {
    const { id } = command;
    const earlier = await this.#d.log.get(id);
    if (earlier && earlier.status !== "accepted") {
      this.#k.log.info({ id, command: name, status: earlier.status }, "command already answered: answer repeated");
      this.#d.publish(earlier);
      return earlier;
    }
    if (earlier) {
      // Accepted, then the daemon stopped before it finished: running it again could do it twice.
      return this.#final(name, id, {
        status: "failed",
        reason: "interrupted: the kiosk restarted before this command finished; send it again with a new id",
      });
    }
    if (!isCommandName(name)) {
      return this.#final(name, id, {
        status: "failed",
        reason: `unknown command "${name}"; this kiosk knows ${COMMAND_NAMES.join(", ")}`,
      });
    }
    const args = validate(COMMAND_ARGS[name], command.args, "args");
    if (!args.ok)
      return this.#final(name, id, { status: "failed", reason: `bad arguments for ${name}: ${args.error}` });
    const now = this.#k.now();
    if (command.expiresAt && Date.parse(command.expiresAt) <= now.getTime()) {
      return this.#final(name, id, {
        status: "expired",
        reason: `expired at ${command.expiresAt}, received at ${now.toISOString()}: nothing done`,
      });
    }
    await this.#say(name, { id, command: name, status: "accepted", at: now.toISOString() });
    this.#k.log.info({ id, command: name, by: command.by }, "command accepted");
    let outcome: CommandOutcome;
    try {
      const handler = this.#d.handlers[name] as (a: unknown, c: Command) => Promise<CommandOutcome>;
      outcome = await handler(args.value, command);
    } catch (err) {
      const reason = err instanceof CommandFailure ? err.message : `${name} failed: ${(err as Error).message}`;
      return this.#final(name, id, { status: "failed", reason });
    }
    const done = await this.#final(name, id, {
      status: "done",
      ...(outcome.result !== undefined ? { result: outcome.result } : {}),
    });
    outcome.afterAnswer?.();
    return done;
  }

  /** A payload that is not a command: answered when it at least carries an id, else only logged. */
  async #unreadable(name: string, payload: Buffer, error: string): Promise<CommandResult | undefined> {
    const id = idOf(payload);
    if (!id) {
      this.#k.log.warn({ command: name, error }, "command without a readable id ignored: nothing to answer to");
      return undefined;
    }
    const earlier = await this.#d.log.get(id);
    if (earlier && earlier.status !== "accepted") {
      this.#d.publish(earlier);
      return earlier;
    }
    return this.#final(name, id, { status: "failed", reason: `not a valid command: ${error}` });
  }

  async #final(
    name: string,
    id: string,
    end: { status: "done"; result?: unknown } | { status: "failed" | "expired"; reason: string },
  ): Promise<CommandResult> {
    const result = { id, command: name, ...end, at: this.#k.now().toISOString() } as CommandResult;
    if (end.status === "done") this.#k.log.info({ id, command: name }, "command done");
    else this.#k.log.warn({ id, command: name, status: end.status, reason: end.reason }, "command not done");
    await this.#say(name, result);
    return result;
  }

  /** Recorded first: an answer published and then forgotten in a crash would let a repeat run again. */
  async #say(name: string, result: CommandResult): Promise<void> {
    await this.#d.log.record(name, result, this.#k.now());
    this.#d.publish(result);
  }
}

function idOf(payload: Buffer): string | undefined {
  try {
    const id = (JSON.parse(payload.toString("utf8")) as { id?: unknown })?.id;
    return typeof id === "string" && id.length > 0 && id.length <= 64 ? id : undefined;
  } catch {
    return undefined;
  }
}
