/** The kiosk daemon's configuration file, validated with errors that name the field. */
import { readFile } from "node:fs/promises";
import { ID_PATTERN } from "@paylane/protocol";
import { ConfigError, describeConfigIssues } from "@paylane/protocol/service";
import { z } from "zod";
import { GpioConfigSchema } from "./hardware/gpio/config.ts";
import { COLUMNS_58MM, COLUMNS_80MM } from "./hardware/printer/receipt.ts";
import { TerminalConfigSchema } from "./hardware/terminal/factory.ts";

const portError = "expected a TCP port, an integer from 0 to 65535";
const port = z.number({ error: portError }).int({ error: portError }).min(0, { error: portError }).max(65535, {
  error: portError,
});
const devicePath = (example: string) =>
  z
    .string({ error: `expected a device path like ${example}` })
    .min(1, { error: `expected a device path like ${example}` });
const baudRate = z
  .number({ error: "expected a baud rate such as 9600, 19200, 38400 or 115200" })
  .int({ error: "expected an integer baud rate" })
  .positive({ error: "expected a positive baud rate" });
const columns = z
  .number({ error: `expected ${COLUMNS_80MM} (80 mm paper) or ${COLUMNS_58MM} (58 mm)` })
  .int()
  .min(24, { error: "expected at least 24 columns" })
  .max(64, { error: "expected at most 64 columns" })
  .default(COLUMNS_80MM);
const pollIntervalMs = z.number().int().min(5).max(1000).default(20);
const pcscReaderName = 'expected part of the reader\'s name as "pcsc_scan -r" lists it, e.g. "ACR122U"';
const checkinReceipts = z.boolean({ error: "expected true or false" }).default(true);

/**
 * The NFC reader; required, with no default. `pn532`: a PN532 on a UART
 * (HSU), e.g. /dev/ttyS0 or /dev/serial0 on a Pi. `pn532-simulator`: the
 * daemon runs a PN532 simulator on a pty pair and drives it with the same
 * driver (demos, `npm start`, tests); cards are placed through the local API
 * (`POST /api/sim/tap`), so a kiosk has it only when its config says so.
 * `pcsc`: a USB reader (ACR122U, ACR1252U…) through pcscd; `reader` picks
 * one by part of its name (as `pcsc_scan -r` lists it), else the first.
 */
export const ReaderConfigSchema = z.discriminatedUnion(
  "type",
  [
    z.strictObject({
      type: z.literal("pn532"),
      path: devicePath("/dev/ttyS0"),
      baudRate: baudRate.default(115_200),
      pollIntervalMs,
    }),
    z.strictObject({
      type: z.literal("pn532-simulator"),
      pollIntervalMs,
    }),
    z.strictObject({
      type: z.literal("pcsc"),
      reader: z.string({ error: pcscReaderName }).min(1, { error: pcscReaderName }).optional(),
    }),
  ],
  {
    error: (issue) =>
      issue.input === undefined
        ? 'missing: set reader.type to "pn532" (a PN532 on a serial port, with reader.path), "pcsc" (a USB reader such as an ACR122U, through pcscd) or "pn532-simulator" (simulated cards, for demos and tests)'
        : 'expected reader.type "pn532" (with a path) or "pn532-simulator" or "pcsc" (a USB reader through pcscd)',
  },
);

/**
 * The receipt printer. Printing never holds up a check-in: on paper-out or a
 * missing printer the kiosk offers the receipt as an on-screen QR code.
 */
export const PrinterConfigSchema = z.discriminatedUnion(
  "type",
  [
    z.strictObject({ type: z.literal("none") }),
    z.strictObject({
      type: z.literal("serial"),
      path: devicePath("/dev/ttyUSB0"),
      baudRate: baudRate.default(38_400),
      columns,
      checkinReceipts,
    }),
    z.strictObject({
      type: z.literal("device-file"),
      path: devicePath("/dev/usb/lp0").default("/dev/usb/lp0"),
      columns,
      checkinReceipts,
    }),
    z.strictObject({ type: z.literal("simulator"), columns, checkinReceipts }),
  ],
  { error: 'expected printer.type "none", "serial", "device-file" or "simulator"' },
);

/** Strict at every level: a misspelled or unknown key is refused, never silently ignored. */
export const DeviceConfigSchema = z.strictObject({
  site: z.string().regex(ID_PATTERN),
  device: z.string().regex(ID_PATTERN),
  /** The device's MQTT and HTTP secret; never logged. Absent until the kiosk has enrolled (see `claim`). */
  secret: z.string().min(16, "expected at least 16 characters"),
  /**
   * A secret being registered by `rotate-credentials`: written before the
   * cloud is asked, so a kiosk cut off mid-rotation knows both (device/src/setup/rotation.ts).
   */
  nextSecret: z.string().min(16, "expected at least 16 characters").optional(),
  /** A single-use claim code the kiosk enrols with at first boot (removed once enrolled); never logged. */
  claim: z.string().min(1).max(64).optional(),
  /** A PEM file of the CA the kiosk trusts for the cloud over HTTPS (a private CA); absent: the system's. */
  cloudCa: z.string().min(1).optional(),
  mqttUrl: z.url({ protocol: /^mqtts?$|^wss?$/ }),
  cloudUrl: z.url({ protocol: /^https?$/ }),
  /** Folder holding journal.db and replica.db. */
  dataDir: z.string().min(1),
  http: z.strictObject({ host: z.string().default("127.0.0.1"), port }).default({ host: "127.0.0.1", port: 8081 }),
  /** Required: a forgotten reader must never turn into a simulator that takes taps over HTTP. */
  reader: ReaderConfigSchema,
  printer: PrinterConfigSchema.default({ type: "none" }),
  /** The card-payment terminal for wallet top-ups; default none. */
  terminal: TerminalConfigSchema,
  /** Payments at this kiosk (closed-loop wallets; limits and prices come from the cloud). */
  payments: z
    .strictObject({
      /** Per attempt of online authorization; past it (twice) the kiosk decides offline. */
      onlineTimeoutMs: z.number().int().min(100).max(30_000).default(2500),
      /** A payment waiting for a card this long ends by itself, nothing charged. */
      idleMs: z.number().int().min(5000).max(600_000).default(60_000),
      /** Top-up amounts offered on screen, minor units. */
      topupAmounts: z.array(z.number().int().min(1)).min(1).max(6).default([1000, 2000, 5000]),
    })
    .prefault({}),
  /** GPIO roles (call-staff button, status LED, buzzer, relay); absent: none. */
  gpio: GpioConfigSchema.optional(),
  ackTimeoutMs: z.number().int().min(100).default(10_000),
  /**
   * No heartbeat and no ack from the cloud for this long while the broker is
   * up: the cloud is unreachable, and the kiosk works offline at once
   * (docs/status.md). Never shorter in effect than two of the cloud's heartbeats.
   */
  cloudLivenessSeconds: z.number().min(1).max(3600).default(10),
  /**
   * Entries per `events` message, at most. A tap sends one; a backlog after a
   * partition drains in full batches, ten unacked at a time (the uplink's
   * in-flight cap), so bigger batches drain faster.
   */
  batchSize: z.number().int().min(1).max(1000).default(500),
  replicaRefreshMs: z.number().int().min(1000).default(60_000),
  telemetryMs: z.number().int().min(1000).default(30_000),
  /** Acked journal entries older than this are compacted away (at least 2 days: "already checked in today"). */
  journalRetentionDays: z.number().int().min(2, { error: "expected at least 2 days" }).max(3650).default(7),
  compactEveryMs: z.number().int().min(60_000).default(3_600_000),
  /** While the journal cannot write (disk full, I/O error), how often it is tried again. */
  storageProbeMs: z.number().int().min(100).default(5000),
});
export type DeviceConfig = z.infer<typeof DeviceConfigSchema>;
export type DeviceConfigInput = z.input<typeof DeviceConfigSchema>;
export type ReaderConfig = z.infer<typeof ReaderConfigSchema>;
export type PrinterConfig = z.infer<typeof PrinterConfigSchema>;

/**
 * kiosk.json as it may be before enrolment: without `secret` (and `device`,
 * which is then derived from the kiosk's key). Such a file starts setup mode.
 */
export const KioskFileSchema = DeviceConfigSchema.extend({
  device: z.string().regex(ID_PATTERN).optional(),
  secret: z.string().min(16, "expected at least 16 characters").optional(),
});
export type KioskFile = z.infer<typeof KioskFileSchema>;

/** An enrolled kiosk's config, or the file of one still to enrol. */
export type LoadedKioskFile =
  | { enrolled: true; config: DeviceConfig; raw: Record<string, unknown> }
  | { enrolled: false; file: KioskFile; raw: Record<string, unknown> };

export function parseKioskFile(json: unknown, source = "config"): LoadedKioskFile {
  const result = KioskFileSchema.safeParse(json);
  if (!result.success) throw new ConfigError(`${source}: ${describeConfigIssues(result.error)}`);
  const file = result.data;
  const raw = json as Record<string, unknown>;
  if (file.secret !== undefined && file.device === undefined)
    throw new ConfigError(
      `${source}: device: missing: a kiosk with a secret needs its device id (or remove secret to enrol again)`,
    );
  if (file.secret === undefined) return { enrolled: false, file, raw };
  return { enrolled: true, config: parseDeviceConfig(json, source), raw };
}

export function parseDeviceConfig(json: unknown, source = "config"): DeviceConfig {
  const result = DeviceConfigSchema.safeParse(json);
  if (!result.success) throw new ConfigError(`${source}: ${describeConfigIssues(result.error)}`);
  return result.data;
}

export async function loadDeviceConfig(path: string): Promise<DeviceConfig> {
  return parseDeviceConfig(await readConfigJson(path), `config file ${path}`);
}

/** kiosk.json, enrolled or not (see KioskFileSchema). */
export async function loadKioskFile(path: string): Promise<LoadedKioskFile> {
  return parseKioskFile(await readConfigJson(path), `config file ${path}`);
}

async function readConfigJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`config file ${path} is not valid JSON: ${(err as Error).message}`);
  }
  return json;
}
