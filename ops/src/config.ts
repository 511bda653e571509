/**
 * `paylane-ops config get|set <site/device>`: a kiosk's desired
 * configuration (retained on `config`), what it reports having applied
 * (retained on `state`), and the drift between the two. `set` checks each
 * setting with the protocol's CONFIG_SETTINGS before sending, merges it into
 * the desired settings in force, bumps the version and publishes it
 * retained; with --wait it waits for the kiosk's report of that version.
 */
import {
  CONFIG_SETTING_NAMES,
  CONFIG_SETTINGS,
  configDrift,
  type DesiredConfig,
  DesiredConfigSchema,
  type DeviceAddress,
  type ReportedState,
  ReportedStateSchema,
  topics,
} from "@paylane/protocol";
import { ConfigError } from "@paylane/protocol/service";
import type { MqttClient } from "mqtt";
import pc from "picocolors";
import type { z } from "zod";
import { parsePair } from "./arguments.ts";
import { OPS_EXIT, OpsError, publish, retainedSnapshot } from "./connection.ts";
import { jsonLine } from "./render.ts";
import type { Output } from "./watch.ts";

export interface KioskConfig {
  desired: DesiredConfig | null;
  reported: ReportedState | null;
  drift: string[];
}

function parseRetained<T>(payload: Buffer | undefined, schema: z.ZodType<T>): T | null {
  if (!payload) return null;
  try {
    const parsed = schema.safeParse(JSON.parse(payload.toString()));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

/** The kiosk's retained desired config and reported state (subscriptions stay, for --wait). */
export async function readConfig(client: MqttClient, who: string, kiosk: DeviceAddress): Promise<KioskConfig> {
  const retained = await retainedSnapshot(client, [topics.config(kiosk), topics.state(kiosk)], who);
  const desired = parseRetained(retained.get(topics.config(kiosk)), DesiredConfigSchema);
  const reported = parseRetained(retained.get(topics.state(kiosk)), ReportedStateSchema);
  return { desired, reported, drift: configDrift(desired, reported) };
}

/**
 * `key=value` pairs to settings, each checked alone; `screenTexts.welcome=Hi`
 * sets one field of an object setting, keeping its other fields from `base`.
 */
export function parseSettings(pairs: string[], base: Record<string, unknown> = {}): Record<string, unknown> {
  if (pairs.length === 0)
    throw new ConfigError(
      `config set: name at least one setting, e.g. mode=maintenance (settings: ${CONFIG_SETTING_NAMES.join(", ")})`,
    );
  const settings: Record<string, unknown> = {};
  for (const pair of pairs) {
    const [path, value] = parsePair(pair, "config set");
    const [key, field, ...extra] = path.split(".");
    const schema = Object.hasOwn(CONFIG_SETTINGS, key!)
      ? (CONFIG_SETTINGS as Record<string, z.ZodType>)[key!]
      : undefined;
    if (!schema) throw new ConfigError(`${path}: unknown setting; known: ${CONFIG_SETTING_NAMES.join(", ")}`);
    if (extra.length > 0)
      throw new ConfigError(`${path}: settings nest one level at most, e.g. screenTexts.welcome=Hello`);
    let next = value;
    if (field !== undefined) {
      const current = settings[key!] ?? base[key!];
      next = { ...(current && typeof current === "object" ? current : {}), [field]: value };
    }
    const checked = schema.safeParse(next);
    if (!checked.success)
      throw new ConfigError(
        `${path}: ${checked.error.issues.map((i) => (i.path.length ? `${i.path.join(".")}: ` : "") + i.message).join("; ")}`,
      );
    settings[key!] = checked.data;
  }
  return settings;
}

export function describeConfig(label: string, c: KioskConfig): string {
  const lines: string[] = [];
  const d = c.desired;
  lines.push(
    d
      ? `desired  v${d.version}${d.by ? ` by ${d.by}` : ""}${d.at ? ` at ${d.at}` : ""}: ${JSON.stringify(d.settings)}`
      : "desired  none (the kiosk runs on its own defaults)",
  );
  const r = c.reported;
  if (!r) lines.push("reported none (the kiosk has not reported a state)");
  else {
    lines.push(`reported v${r.version} at ${r.at}: ${JSON.stringify(r.applied)}`);
    for (const x of r.rejected) lines.push(pc.red(`rejected ${x.field}: ${x.reason}`));
    if (r.error) lines.push(pc.red(`error    ${r.error}`));
  }
  lines.push(c.drift.length === 0 ? pc.green("drift    none") : pc.yellow(`drift    ${c.drift.join(", ")}`));
  return `${label}\n${lines.map((l) => `  ${l}`).join("\n")}`;
}

export async function configGet(
  client: MqttClient,
  who: string,
  kiosk: DeviceAddress,
  json: boolean,
  out: Output = process.stdout,
): Promise<number> {
  const c = await readConfig(client, who, kiosk);
  const label = `${kiosk.site}/${kiosk.device}`;
  out.write(`${json ? jsonLine({ type: "config", kiosk: label, ...c }) : describeConfig(label, c)}\n`);
  return OPS_EXIT.ok;
}

export interface ConfigSetOptions {
  json: boolean;
  waitSeconds?: number;
  by?: string;
}

export async function configSet(
  client: MqttClient,
  who: string,
  kiosk: DeviceAddress,
  pairs: string[],
  o: ConfigSetOptions,
  out: Output = process.stdout,
): Promise<number> {
  const label = `${kiosk.site}/${kiosk.device}`;
  const before = await readConfig(client, who, kiosk);
  const changes = parseSettings(pairs, before.desired?.settings ?? {});
  const version = Math.max(before.desired?.version ?? 0, before.reported?.version ?? 0) + 1;
  const desired: DesiredConfig = {
    version,
    settings: { ...(before.desired?.settings ?? {}), ...changes },
    ...(o.by ? { by: o.by } : {}),
    at: new Date().toISOString(),
  };

  let report: ReportedState | undefined;
  let wake: () => void = () => {};
  client.on("message", (topic, payload) => {
    if (topic !== topics.state(kiosk)) return;
    const state = parseRetained(payload, ReportedStateSchema);
    if (state && state.version >= version) {
      report = state;
      wake();
    }
  });
  await publish(client, topics.config(kiosk), JSON.stringify(desired), { retain: true, who });
  const after: KioskConfig = { desired, reported: before.reported, drift: configDrift(desired, before.reported) };
  if (o.json) out.write(`${jsonLine({ type: "config-set", kiosk: label, ...after })}\n`);
  else
    out.write(
      `set ${label} config v${version}: ${JSON.stringify(changes)}; drift until the kiosk reports v${version}\n`,
    );
  if (o.waitSeconds === undefined) return OPS_EXIT.ok;

  const deadline = Date.now() + o.waitSeconds * 1000;
  // A lost broker connection ends the wait now, not at the deadline.
  let lost = false;
  client.once("close", () => {
    lost = true;
    wake();
  });
  while (!report && !lost && Date.now() < deadline) {
    await new Promise<void>((r) => {
      const timer = setTimeout(r, deadline - Date.now());
      wake = () => {
        clearTimeout(timer);
        r();
      };
    });
  }
  if (!report && lost) {
    throw new OpsError(
      `lost the connection to the broker before ${label} reported v${version}; v${version} stays retained`,
    );
  }
  if (!report) {
    if (o.json) out.write(`${jsonLine({ type: "timeout", kiosk: label, version, waitedSeconds: o.waitSeconds })}\n`);
    else
      out.write(
        `no report of v${version} from ${label} within ${o.waitSeconds}s; it stays retained and applies when the kiosk reads it\n`,
      );
    return OPS_EXIT.timeout;
  }
  const reported: KioskConfig = { desired, reported: report, drift: configDrift(desired, report) };
  const refused = report.error !== undefined || report.rejected.some((r) => Object.hasOwn(changes, r.field));
  if (o.json) out.write(`${jsonLine({ type: "config", kiosk: label, ...reported })}\n`);
  else out.write(`${describeConfig(label, reported)}\n`);
  return refused ? OPS_EXIT.failed : OPS_EXIT.ok;
}
