/**
 * The first boot: how Raspberry Pi OS is made to run firstrun.sh once (the
 * cmdline.txt hook Raspberry Pi Imager uses), and the settings files the
 * script reads from paylane/config/ on the boot partition. The script itself
 * is provisioning/assets/first-boot/firstrun.sh: static, with every value here
 * checked and quoted before it is written, so no option can become shell code.
 */
import { ConfigError } from "@paylane/protocol/service";
import { ProvisionError } from "../cli/errors.ts";
import type { KioskImageOptions } from "./contents.ts";
import { checkWifi } from "./wifi.ts";

/** Where Raspberry Pi OS Bookworm and Trixie mount the boot partition. */
export const BOOT_MOUNT = "/boot/firmware";

/** The three switches: run the script as the only job of this boot, then reboot when it succeeds. */
export const FIRST_BOOT_HOOK = [
  `systemd.run=${BOOT_MOUNT}/firstrun.sh`,
  "systemd.run_success_action=reboot",
  "systemd.unit=kernel-command-line.target",
] as const;

/** Adds the hook to cmdline.txt's one line; a hook already there (ours or Imager's) is replaced, never doubled. */
export function editCmdline(cmdline: string): string {
  const line = cmdline.replace(/[\r\n]+$/, "");
  if (/[\r\n]/.test(line)) throw new ProvisionError("cmdline.txt: expected one line (the kernel's command line)");
  const kept = line
    .split(/\s+/)
    .filter((word) => word !== "" && !/^systemd\.run(_success_action|_failure_action)?=/.test(word))
    .filter((word) => word !== "systemd.unit=kernel-command-line.target");
  if (kept.length === 0) throw new ProvisionError("cmdline.txt is empty: this is not a Raspberry Pi OS boot partition");
  return `${[...kept, ...FIRST_BOOT_HOOK].join(" ")}\n`;
}

const HOSTNAME = /^(?=.{1,63}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?$/i;
const TIMEZONE = /^[A-Za-z][A-Za-z0-9_+-]*(\/[A-Za-z0-9_+-]+){0,2}$/;
const LOCALE = /^[a-z]{2,3}_[A-Z]{2}\.UTF-8$/;
const KEYBOARD = /^[a-z]{2,8}$/;
const USER = /^[a-z_][a-z0-9_-]{0,31}$/;
const SSH_KEY =
  /^(ssh-(ed25519|rsa)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) [A-Za-z0-9+/=]+( [^\r\n]*)?$/;

function check(name: string, value: string | undefined, pattern: RegExp, expected: string): string {
  if (value === undefined) return "";
  if (!pattern.test(value)) throw new ConfigError(`${name}: expected ${expected}, got ${JSON.stringify(value)}`);
  return value;
}

/** A single-quoted shell word (the values are already checked; this is the belt to those braces). */
function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/** The admin login: the one asked for, or `kiosk-admin` when an SSH key comes without one. */
export function adminUser(o: KioskImageOptions): string | undefined {
  return o.user ?? (o.sshAuthorizedKey ? "kiosk-admin" : undefined);
}

/** paylane/config/firstboot.env: the options firstrun.sh applies, as shell assignments it sources. */
export function firstBootEnv(o: KioskImageOptions): string {
  if (o.wifi) checkWifi(o.wifi);
  if (o.sshAuthorizedKey !== undefined)
    check("ssh key", o.sshAuthorizedKey.trim(), SSH_KEY, "one OpenSSH public key line");
  const values: Record<string, string> = {
    KIOSK_HOSTNAME: check("hostname", o.hostname, HOSTNAME, "letters, digits and inner hyphens, at most 63"),
    KIOSK_TIMEZONE: check("timezone", o.timezone, TIMEZONE, "a tz database name like Europe/Berlin"),
    KIOSK_LOCALE: check("locale", o.locale, LOCALE, "a UTF-8 locale like en_GB.UTF-8"),
    KIOSK_KEYBOARD: check("keyboard layout", o.keyboardLayout, KEYBOARD, "an XKB layout like gb or de"),
    WIFI_COUNTRY: o.wifi?.country ?? "",
    ADMIN_USER: check("user", adminUser(o), USER, "a login name: lower-case letters, digits, _ and -"),
    READ_ONLY_ROOT: o.readOnlyRoot ? "1" : "0",
  };
  const lines = Object.entries(values).map(([key, value]) => `${key}=${shellQuote(value)}`);
  return `# Written by paylane-provision image build; read by firstrun.sh (docs/kiosk-image.md).\n${lines.join("\n")}\n`;
}

/** Where kiosk.json points the daemon at the private CA, once firstrun.sh has copied it. */
export const CLOUD_CA_PATH = "/var/lib/paylane/cloud-ca.pem";

/** The hardware a kiosk has when the options say nothing: a PN532 on the Pi's UART, no printer. */
const DEFAULT_HARDWARE = { reader: { type: "pn532", path: "/dev/serial0" } };
const HARDWARE_SECTIONS = new Set(["reader", "printer", "terminal", "gpio", "payments"]);

/**
 * /var/lib/paylane/kiosk.json: no secret, so the daemon starts in setup mode
 * and enrols with the claim code (baked in, or typed on the setup screen);
 * the device id, when unset, the kiosk derives from its own key.
 */
export function kioskJson(o: KioskImageOptions): Record<string, unknown> {
  const hardware = o.hardware ?? DEFAULT_HARDWARE;
  for (const key of Object.keys(hardware)) {
    if (!HARDWARE_SECTIONS.has(key)) {
      throw new ConfigError(
        `hardware.${key}: not a hardware section; expected one of ${[...HARDWARE_SECTIONS].join(", ")}`,
      );
    }
  }
  return {
    site: o.site,
    ...(o.device ? { device: o.device } : {}),
    cloudUrl: o.cloudUrl,
    mqttUrl: o.mqttUrl,
    ...(o.claim ? { claim: o.claim } : {}),
    ...(o.cloudCa ? { cloudCa: CLOUD_CA_PATH } : {}),
    dataDir: "/var/lib/paylane",
    http: { host: "127.0.0.1", port: 8081 },
    ...DEFAULT_HARDWARE,
    ...hardware,
  };
}
