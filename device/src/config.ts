/** The kiosk daemon's configuration file, validated with errors that name the field. */
import { readFile } from "node:fs/promises";
import { ID_PATTERN, validate } from "@paylane/protocol";
import { z } from "zod";

const port = z.number().int().min(0).max(65535);

export const DeviceConfigSchema = z.object({
  site: z.string().regex(ID_PATTERN),
  device: z.string().regex(ID_PATTERN),
  /** The device's MQTT and HTTP secret; never logged. */
  secret: z.string().min(16, "expected at least 16 characters"),
  mqttUrl: z.url({ protocol: /^mqtts?$|^wss?$/ }),
  cloudUrl: z.url({ protocol: /^https?$/ }),
  /** Folder holding journal.db and replica.db. */
  dataDir: z.string().min(1),
  http: z.object({ host: z.string().default("127.0.0.1"), port }).default({ host: "127.0.0.1", port: 8081 }),
  reader: z.object({ type: z.literal("simulated") }).default({ type: "simulated" }),
  ackTimeoutMs: z.number().int().min(100).default(10_000),
  batchSize: z.number().int().min(1).max(1000).default(100),
  replicaRefreshMs: z.number().int().min(1000).default(60_000),
  telemetryMs: z.number().int().min(1000).default(30_000),
});
export type DeviceConfig = z.infer<typeof DeviceConfigSchema>;
export type DeviceConfigInput = z.input<typeof DeviceConfigSchema>;

export function parseDeviceConfig(json: unknown, source = "config"): DeviceConfig {
  const result = validate(DeviceConfigSchema, json);
  if (!result.ok) throw new Error(`${source}: ${result.error}`);
  return result.value;
}

export async function loadDeviceConfig(path: string): Promise<DeviceConfig> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new Error(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`config file ${path} is not valid JSON: ${(err as Error).message}`);
  }
  return parseDeviceConfig(json, `config file ${path}`);
}
