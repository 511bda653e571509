/**
 * `paylane-ops alerts`: what is firing now (each firing alert is retained
 * on its own topic), then alerts as they fire and resolve. --once prints
 * the firing ones and exits.
 */
import { type Alert, AlertSchema, parseAlertTopic, topics } from "@paylane/protocol";
import type { MqttClient } from "mqtt";
import pc from "picocolors";
import { OPS_EXIT, OpsError, retainedSnapshot } from "./connection.ts";
import { jsonLine } from "./render.ts";
import type { Output } from "./watch.ts";

function parseAlert(payload: Buffer): Alert | null {
  if (payload.length === 0) return null;
  try {
    const parsed = AlertSchema.safeParse(JSON.parse(payload.toString()));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

const SEVERITY = { info: pc.cyan, warning: pc.yellow, critical: pc.red } as const;

export function describeAlert(a: Alert): string {
  const where = a.device ? `${a.site}/${a.device}` : a.site;
  if (a.state === "resolved") {
    return `${a.resolvedAt ?? a.at} ${pc.green("RESOLVED")} ${a.severity} ${a.key} ${where}: ${a.summary}`;
  }
  return `${a.firedAt} ${SEVERITY[a.severity](`FIRING ${a.severity}`)} ${a.key} ${where}: ${a.summary}`;
}

export async function alerts(
  client: MqttClient,
  who: string,
  o: { site: string; json: boolean; once: boolean },
  out: Output = process.stdout,
): Promise<number> {
  const print = (a: Alert) => out.write(`${o.json ? jsonLine({ type: "alert", ...a }) : describeAlert(a)}\n`);
  // Live ones are printed as they come, once the firing ones are out.
  const live: Alert[] = [];
  let snapshotDone = false;
  if (!o.once) {
    client.on("message", (topic, payload, packet) => {
      // Retained copies are the firing ones, printed from the snapshot below.
      if (packet.retain || !parseAlertTopic(topic)) return;
      const a = parseAlert(payload);
      if (!a) return;
      if (snapshotDone) print(a);
      else live.push(a);
    });
  }
  const firing = [...(await retainedSnapshot(client, [topics.alerts(o.site)], who)).values()]
    .map(parseAlert)
    .filter((a): a is Alert => a !== null && a.state === "firing")
    .sort((a, b) => a.firedAt.localeCompare(b.firedAt));
  for (const a of firing) print(a);
  if (firing.length === 0 && !o.json) out.write(`${pc.dim("no alert is firing")}\n`);
  if (o.once) return OPS_EXIT.ok;
  snapshotDone = true;
  for (const a of live.splice(0)) print(a);
  return new Promise((_, reject) => {
    client.once("close", () => reject(new OpsError("lost the connection to the broker")));
  });
}
