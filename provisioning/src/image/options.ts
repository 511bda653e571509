/**
 * `image build`'s flags turned into what goes into the image
 * (KioskImageOptions), what the manifest may say about them (never a claim
 * code, Wi-Fi password or PSK), and the secrets to keep out of it. Each flag
 * is checked on its own with one line that names it; files named by flags
 * are read here.
 */
import { createHash, createPublicKey, X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import { formatClaimCode, ID_PATTERN, parseClaimCode, RESERVED_SITES } from "@paylane/protocol";
import { ConfigError, isTimeZone, redactUrl } from "@paylane/protocol/service";
import { InvalidArgumentError } from "commander";
import type { KioskImageOptions } from "../kiosk-image/contents.ts";
import { wpaPsk } from "../kiosk-image/index.ts";

export interface ImageBuildFlags {
  base: string;
  out: string;
  site: string;
  device?: string;
  cloudUrl?: string;
  mqttUrl?: string;
  claim?: string;
  ca?: string;
  hostname?: string;
  timezone?: string;
  locale?: string;
  keyboard?: string;
  wifiSsid?: string;
  wifiPassword?: string;
  wifiPasswordFile?: string;
  wifiCountry?: string;
  sshKey?: string;
  updateKey?: string;
  user?: string;
  readOnlyRoot?: boolean;
  hardware?: string;
  manifest?: string;
}

export interface ResolvedImageOptions {
  kiosk: KioskImageOptions;
  /** For the manifest: what was asked for, secrets replaced by whether they were given. */
  recorded: Record<string, unknown>;
  /** Strings the manifest must not hold, nor hash a file holding. */
  secrets: string[];
  /** Lines for the installer about choices that work but deserve a second look. */
  notes: string[];
}

// commander argument parsers: each refuses a bad value with what was expected.

export const siteFlag = (value: string): string => {
  if (!ID_PATTERN.test(value) || RESERVED_SITES.has(value)) {
    throw new InvalidArgumentError(`expected a site id: lower-case letters, digits, "-" or "_" (e.g. demo)`);
  }
  return value;
};

export const deviceFlag = (value: string): string => {
  if (!ID_PATTERN.test(value)) {
    throw new InvalidArgumentError(`expected a device id: lower-case letters, digits, "-" or "_" (e.g. k1)`);
  }
  return value;
};

const url =
  (protocols: string[], example: string) =>
  (value: string): string => {
    let parsed: URL;
    try {
      parsed = new URL(value);
    } catch {
      throw new InvalidArgumentError(`expected a URL such as ${example}`);
    }
    if (!protocols.includes(parsed.protocol.slice(0, -1))) {
      throw new InvalidArgumentError(`expected ${protocols.join(":// or ")}://, such as ${example}`);
    }
    if (parsed.username || parsed.password) {
      throw new InvalidArgumentError("must not carry a user or password: the kiosk gets its own when it enrols");
    }
    return value;
  };

export const cloudUrlFlag = url(["https", "http"], "https://cloud.example.com");
export const mqttUrlFlag = url(["mqtts", "mqtt", "wss", "ws"], "mqtts://mqtt.example.com:8883");

/** `-` stands for standard input (read when the options are resolved): a code on the command line is seen in ps. */
export const claimFlag = (value: string): string => {
  if (value === "-") return value;
  const parsed = parseClaimCode(value);
  if (!parsed.ok) throw new InvalidArgumentError(parsed.error);
  return formatClaimCode(parsed.digits);
};

export const timezoneFlag = (value: string): string => {
  if (!/^[A-Za-z]/.test(value) || !isTimeZone(value)) {
    throw new InvalidArgumentError("expected a time zone such as Europe/Berlin (the tz database's names)");
  }
  return value;
};

export const countryFlag = (value: string): string => {
  if (!/^[A-Za-z]{2}$/.test(value))
    throw new InvalidArgumentError("expected a two-letter country code such as GB or DE");
  return value.toUpperCase();
};

async function readFlagFile(flag: string, path: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError(`${flag} ${path}: ${code === "ENOENT" ? "no such file" : `cannot be read (${code})`}`);
  }
}

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

/** OpenSSH's own fingerprint: SHA256 of the key blob, base64 without padding. */
function sshFingerprint(line: string): string {
  const [type, blob] = line.split(" ");
  const digest = createHash("sha256")
    .update(Buffer.from(blob ?? "", "base64"))
    .digest("base64")
    .replace(/=+$/, "");
  return `${type} SHA256:${digest}`;
}

export async function resolveImageOptions(
  flags: ImageBuildFlags,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<ResolvedImageOptions> {
  const notes: string[] = [];
  const secrets: string[] = [];
  const cloudUrl = flags.cloudUrl ?? env.PAYLANE_CLOUD_URL;
  if (!cloudUrl)
    throw new ConfigError("--cloud-url is required: the cloud the kiosk enrols with (or PAYLANE_CLOUD_URL)");
  try {
    cloudUrlFlag(cloudUrl);
  } catch (err) {
    throw new ConfigError(`--cloud-url ${cloudUrl}: ${(err as Error).message}`);
  }
  if (!flags.mqttUrl) throw new ConfigError("--mqtt-url is required: the broker the kiosk connects to");
  if (/^(http|mqtt|ws):/.test(cloudUrl) || /^(mqtt|ws):/.test(flags.mqttUrl)) {
    notes.push("note: the kiosk will talk to the cloud or broker without TLS; use https:// and mqtts:// outside a lab");
  }
  for (const host of [new URL(cloudUrl).hostname, new URL(flags.mqttUrl).hostname]) {
    if (host === "localhost" || host === "127.0.0.1" || host === "[::1]") {
      notes.push(`note: ${host} on the kiosk is the kiosk itself; give an address the kiosk can reach`);
      break;
    }
  }

  const kiosk: KioskImageOptions = { site: flags.site, cloudUrl, mqttUrl: flags.mqttUrl };
  if (flags.device) kiosk.device = flags.device;
  // Checked here, not as commander's argument parser: commander's message would repeat the typed code.
  if (flags.claim && flags.claim !== "-") {
    try {
      flags.claim = claimFlag(flags.claim);
    } catch (err) {
      throw new ConfigError(`--claim: ${(err as Error).message}`);
    }
  }
  if (flags.claim === "-") {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    try {
      flags.claim = claimFlag(Buffer.concat(chunks).toString("utf8").trim());
    } catch (err) {
      throw new ConfigError(`--claim -: standard input is not a claim code: ${(err as Error).message}`);
    }
  }
  if (flags.claim) {
    kiosk.claim = flags.claim;
    secrets.push(flags.claim, flags.claim.replace(/-/g, ""));
  }
  if (flags.ca) {
    const pem = await readFlagFile("--ca", flags.ca);
    try {
      new X509Certificate(pem);
    } catch {
      throw new ConfigError(`--ca ${flags.ca}: not a PEM certificate (-----BEGIN CERTIFICATE-----)`);
    }
    kiosk.cloudCa = pem;
  }
  if (flags.updateKey) {
    const pem = await readFlagFile("--update-key", flags.updateKey);
    if (pem.includes("PRIVATE KEY")) {
      throw new ConfigError(
        `--update-key ${flags.updateKey} is a private key: give the public one (openssl pkey -pubout)`,
      );
    }
    let type: string | undefined;
    try {
      type = createPublicKey(pem).asymmetricKeyType;
    } catch {
      throw new ConfigError(`--update-key ${flags.updateKey}: not a PEM public key`);
    }
    if (type !== "ed25519") {
      throw new ConfigError(
        `--update-key ${flags.updateKey}: a ${type} key; expected the Ed25519 public key bundles are signed with`,
      );
    }
    kiosk.updateSigningKey = pem;
  }
  if (flags.hostname) kiosk.hostname = flags.hostname;
  if (flags.timezone) kiosk.timezone = flags.timezone;
  if (flags.locale) kiosk.locale = flags.locale;
  if (flags.keyboard) kiosk.keyboardLayout = flags.keyboard;
  if (flags.user) {
    if (flags.user === "root") throw new ConfigError("--user root: give another name; root cannot log in over SSH");
    kiosk.user = flags.user;
  }
  if (flags.readOnlyRoot) kiosk.readOnlyRoot = true;

  const wifiGiven = [flags.wifiSsid, flags.wifiPassword, flags.wifiPasswordFile, flags.wifiCountry].some(
    (v) => v !== undefined,
  );
  if (wifiGiven) {
    if (flags.wifiPassword !== undefined && flags.wifiPasswordFile !== undefined) {
      throw new ConfigError("--wifi-password and --wifi-password-file: give one of them");
    }
    let password = flags.wifiPassword;
    if (flags.wifiPasswordFile !== undefined) {
      password = (await readFlagFile("--wifi-password-file", flags.wifiPasswordFile)).replace(/\r?\n$/, "");
    }
    if (!flags.wifiSsid || password === undefined || !flags.wifiCountry) {
      throw new ConfigError(
        "Wi-Fi needs --wifi-ssid, --wifi-password (or --wifi-password-file) and --wifi-country together",
      );
    }
    kiosk.wifi = { ssid: flags.wifiSsid, password, country: flags.wifiCountry };
    if (password) secrets.push(password, wpaPsk(flags.wifiSsid, password));
  }

  if (flags.sshKey) {
    const text = await readFlagFile("--ssh-key", flags.sshKey);
    if (text.includes("PRIVATE KEY")) {
      throw new ConfigError(`--ssh-key ${flags.sshKey} is a private key: give the public one (${flags.sshKey}.pub)`);
    }
    const lines = text
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith("#"));
    if (lines.length !== 1) {
      throw new ConfigError(`--ssh-key ${flags.sshKey}: expected one public key line, the file has ${lines.length}`);
    }
    kiosk.sshAuthorizedKey = lines[0]!;
  }

  let hardwareSha: string | undefined;
  if (flags.hardware) {
    const text = await readFlagFile("--hardware", flags.hardware);
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new ConfigError(`--hardware ${flags.hardware}: not JSON (${(err as Error).message})`);
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      throw new ConfigError(`--hardware ${flags.hardware}: expected a JSON object such as {"reader": {…}}`);
    }
    kiosk.hardware = parsed as Record<string, unknown>;
    hardwareSha = sha256(text);
  }

  const recorded: Record<string, unknown> = {
    site: kiosk.site,
    device: kiosk.device ?? null,
    cloudUrl: redactUrl(cloudUrl),
    mqttUrl: redactUrl(kiosk.mqttUrl),
    claim: kiosk.claim !== undefined,
    cloudCa: kiosk.cloudCa ? { sha256: sha256(kiosk.cloudCa) } : null,
    hostname: kiosk.hostname ?? null,
    timezone: kiosk.timezone ?? null,
    locale: kiosk.locale ?? null,
    keyboardLayout: kiosk.keyboardLayout ?? null,
    wifi: kiosk.wifi ? { ssid: kiosk.wifi.ssid, country: kiosk.wifi.country, password: true } : null,
    sshAuthorizedKey: kiosk.sshAuthorizedKey ? sshFingerprint(kiosk.sshAuthorizedKey) : null,
    ...(kiosk.updateSigningKey ? { updateSigningKey: { sha256: sha256(kiosk.updateSigningKey) } } : {}),
    user: kiosk.user ?? null,
    readOnlyRoot: kiosk.readOnlyRoot ?? false,
    hardware: kiosk.hardware ? { sections: Object.keys(kiosk.hardware), sha256: hardwareSha } : null,
  };
  return { kiosk, recorded, secrets: secrets.filter((s) => s.length > 0), notes };
}
