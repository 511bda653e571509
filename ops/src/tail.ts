/**
 * `paylane-ops tail <site/device>`: what one kiosk does, as it happens, one
 * line each: the entries the cloud committed (the committed-events feed:
 * seq, kind, time; never bodies, which hold member ids), its status changes
 * (birth, Will, goodbye) and its command results.
 */
import { CommandResultSchema, type DeviceAddress, EventsMetaSchema, StatusSchema, topics } from "@paylane/protocol";
import type { MqttClient } from "mqtt";
import pc from "picocolors";
import { OpsError, subscribe } from "./connection.ts";
import { jsonLine } from "./render.ts";
import { describeResult } from "./send.ts";
import type { Output } from "./watch.ts";

export function tailFilters(kiosk: DeviceAddress): string[] {
  return [topics.eventsMeta(kiosk), topics.status(kiosk), topics.cmdResult(kiosk)];
}

/** The lines (or JSON objects) one message makes; none for anything unreadable. */
export function tailLines(
  kiosk: DeviceAddress,
  topic: string,
  text: string,
  retained: boolean,
  json: boolean,
): string[] {
  const label = `${kiosk.site}/${kiosk.device}`;
  const parse = (): unknown => {
    try {
      return JSON.parse(text);
    } catch {
      return undefined;
    }
  };
  if (topic === topics.eventsMeta(kiosk)) {
    const meta = EventsMetaSchema.safeParse(parse());
    if (!meta.success) return [];
    return meta.data.entries.map((e) =>
      json
        ? jsonLine({ type: "event", kiosk: label, ...e, committedAt: meta.data.committedAt })
        : `${e.at} ${label} event #${e.seq} ${pc.bold(e.kind)} ${pc.dim(e.id)}`,
    );
  }
  if (topic === topics.status(kiosk)) {
    const status = StatusSchema.safeParse(parse());
    if (!status.success) return [];
    const s = status.data;
    if (json) return [jsonLine({ type: "status", kiosk: label, retained, ...s })];
    const when = s.state === "offline" ? (s.at ?? "(will)") : s.bootedAt;
    const state = s.state === "online" ? pc.green("online") : pc.red("offline");
    const session = s.session === undefined ? "" : ` session ${s.session}`;
    const how =
      s.state === "online"
        ? ` version ${s.version}, booted ${when}`
        : s.at
          ? " (goodbye)"
          : " (connection lost: its Will)";
    return [
      `${retained ? "now" : new Date().toISOString()} ${label} status ${state}${session}${how}${retained ? pc.dim(" (retained)") : ""}`,
    ];
  }
  if (topic === topics.cmdResult(kiosk)) {
    const result = CommandResultSchema.safeParse(parse());
    if (!result.success) return [];
    const r = result.data;
    if (json) return [jsonLine({ type: "cmd-result", kiosk: label, ...r })];
    return [describeResult(label, r.command ?? "command", r)];
  }
  return [];
}

export async function tail(
  client: MqttClient,
  who: string,
  kiosk: DeviceAddress,
  json: boolean,
  out: Output = process.stdout,
): Promise<number> {
  client.on("message", (topic, payload, packet) => {
    for (const line of tailLines(kiosk, topic, payload.toString(), packet.retain, json)) out.write(`${line}\n`);
  });
  await subscribe(client, tailFilters(kiosk), who);
  return new Promise((_, reject) => {
    client.once("close", () => reject(new OpsError("lost the connection to the broker")));
  });
}
