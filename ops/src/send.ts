/**
 * `paylane-ops send <site/device> <command>`: one command with a fresh id
 * and an expiry, its arguments checked against the protocol's COMMAND_ARGS
 * before anything is sent. With --wait, the device's answers on
 * `cmd-result` for that id are printed until the final one (done, failed,
 * expired), and the exit code says which: 0 done, 1 failed or expired, 3 no
 * final answer in time.
 */
import { randomUUID } from "node:crypto";
import {
  COMMAND_ARGS,
  COMMAND_NAMES,
  type Command,
  type CommandResult,
  CommandResultSchema,
  type DeviceAddress,
  isCommandName,
  isFinalResult,
  topics,
} from "@paylane/protocol";
import { ConfigError } from "@paylane/protocol/service";
import type { MqttClient } from "mqtt";
import { parsePair } from "./arguments.ts";
import { OPS_EXIT, OpsError, publish, subscribe } from "./connection.ts";
import { jsonLine } from "./render.ts";
import type { Output } from "./watch.ts";

export interface SendOptions {
  args: string[];
  expiresSeconds: number;
  /** Seconds to wait for the final result; undefined: send and return. */
  waitSeconds?: number;
  json: boolean;
  /** Who sends it, for the command's `by` (the gateway overwrites it with the login's own id). */
  by?: string;
}

/** Checks the command and its arguments; throws a ConfigError naming what is wrong. */
export function buildCommand(
  name: string,
  pairs: string[],
  expiresSeconds: number,
  by?: string,
  now = new Date(),
): Command {
  if (!isCommandName(name))
    throw new ConfigError(`<command>: unknown command ${JSON.stringify(name)}; known: ${COMMAND_NAMES.join(", ")}`);
  const raw: Record<string, unknown> = {};
  for (const pair of pairs) {
    const [key, value] = parsePair(pair, "--arg");
    raw[key] = value;
  }
  const checked = COMMAND_ARGS[name].safeParse(raw);
  if (!checked.success) {
    const issue = checked.error.issues[0]!;
    const unknown = issue.code === "unrecognized_keys" ? issue.keys.join(", ") : undefined;
    const field = unknown ?? (issue.path.join(".") || "(arguments)");
    const why = unknown ? `not an argument of ${name}` : issue.message;
    throw new ConfigError(`--arg ${field}: ${why}`);
  }
  return {
    id: randomUUID(),
    args: checked.data as Record<string, unknown>,
    expiresAt: new Date(now.getTime() + expiresSeconds * 1000).toISOString(),
    ...(by ? { by } : {}),
  };
}

export async function send(
  client: MqttClient,
  who: string,
  kiosk: DeviceAddress,
  name: string,
  o: SendOptions,
  out: Output = process.stdout,
): Promise<number> {
  const command = buildCommand(name, o.args, o.expiresSeconds, o.by);
  const label = `${kiosk.site}/${kiosk.device}`;
  const results: CommandResult[] = [];
  let wake: () => void = () => {};
  if (o.waitSeconds !== undefined) {
    // Subscribed before the command leaves, so no answer can come first.
    client.on("message", (topic, payload) => {
      if (topic !== topics.cmdResult(kiosk)) return;
      let parsed: ReturnType<typeof CommandResultSchema.safeParse>;
      try {
        parsed = CommandResultSchema.safeParse(JSON.parse(payload.toString()));
      } catch {
        return;
      }
      if (!parsed.success || parsed.data.id !== command.id) return;
      results.push(parsed.data);
      print(parsed.data);
      wake();
    });
    await subscribe(client, [topics.cmdResult(kiosk)], who);
  }
  function print(r: CommandResult) {
    if (o.json) out.write(`${jsonLine({ type: "cmd-result", kiosk: label, command: name, ...r })}\n`);
    else out.write(`${describeResult(label, name, r)}\n`);
  }

  await publish(client, topics.cmd(kiosk, name), JSON.stringify(command), { who });
  if (o.json)
    out.write(
      `${jsonLine({ type: "sent", kiosk: label, command: name, id: command.id, args: command.args, expiresAt: command.expiresAt })}\n`,
    );
  else out.write(`sent ${name} to ${label} (id ${command.id}, expires ${command.expiresAt})\n`);
  if (o.waitSeconds === undefined) return OPS_EXIT.ok;

  const deadline = Date.now() + o.waitSeconds * 1000;
  // A lost broker connection ends the wait now, not at the deadline.
  let lost = false;
  client.once("close", () => {
    lost = true;
    wake();
  });
  for (;;) {
    const final = results.find(isFinalResult);
    if (final) return final.status === "done" ? OPS_EXIT.ok : OPS_EXIT.failed;
    if (lost) {
      throw new OpsError(
        `lost the connection to the broker before ${label} answered ${name} ${command.id}; it may still run`,
      );
    }
    const left = deadline - Date.now();
    if (left <= 0) break;
    await new Promise<void>((r) => {
      const timer = setTimeout(r, left);
      wake = () => {
        clearTimeout(timer);
        r();
      };
    });
  }
  const line = `no final result from ${label} for ${name} ${command.id} within ${o.waitSeconds}s${results.length ? " (accepted)" : ""}; the kiosk may be offline: it runs the command when it reconnects, unless it has expired`;
  if (o.json)
    out.write(
      `${jsonLine({ type: "timeout", kiosk: label, command: name, id: command.id, waitedSeconds: o.waitSeconds })}\n`,
    );
  else out.write(`${line}\n`);
  return OPS_EXIT.timeout;
}

export function describeResult(label: string, name: string, r: CommandResult): string {
  const head = `${r.at} ${label} ${name} ${r.id.slice(0, 8)}`;
  switch (r.status) {
    case "accepted":
      return `${head} accepted`;
    case "done":
      return `${head} done${r.result === undefined ? "" : ` ${JSON.stringify(r.result)}`}`;
    default:
      return `${head} ${r.status}: ${r.reason}`;
  }
}
