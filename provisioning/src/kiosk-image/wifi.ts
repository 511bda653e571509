/**
 * Wi-Fi for the kiosk's first boot: a NetworkManager keyfile (Raspberry Pi OS
 * Bookworm and later manage networks with NetworkManager) holding the WPA
 * pre-shared key already derived from the passphrase, so the passphrase
 * itself never goes on the card.
 */

import { pbkdf2Sync } from "node:crypto";
import { ConfigError } from "@paylane/protocol/service";

/** WPA-PSK (IEEE 802.11i): PBKDF2-HMAC-SHA1(passphrase, ssid, 4096 rounds, 32 bytes), as 64 hex digits. */
export function wpaPsk(ssid: string, passphrase: string): string {
  return pbkdf2Sync(Buffer.from(passphrase, "utf8"), Buffer.from(ssid, "utf8"), 4096, 32, "sha1").toString("hex");
}

export interface WifiOptions {
  ssid: string;
  password: string;
  country: string;
}

/** Refuses what a WPA2 network cannot have, with the rule broken. */
export function checkWifi(wifi: WifiOptions): void {
  const ssidBytes = Buffer.byteLength(wifi.ssid, "utf8");
  if (ssidBytes < 1 || ssidBytes > 32) throw new ConfigError(`wifi ssid: expected 1 to 32 bytes, got ${ssidBytes}`);
  if (/[\r\n]/.test(wifi.ssid)) throw new ConfigError("wifi ssid: a line break cannot be in a network name");
  const pass = wifi.password;
  if (!/^[\x20-\x7e]{8,63}$/.test(pass)) {
    throw new ConfigError("wifi password: expected 8 to 63 printable ASCII characters (WPA2 passphrase)");
  }
  if (!/^[A-Z]{2}$/.test(wifi.country)) throw new ConfigError(`wifi country: expected a two-letter code like GB or DE`);
}

/** The keyfile: the SSID written as bytes (`;`-separated) so any name, with any character, survives as is. */
export function networkManagerKeyfile(wifi: WifiOptions): string {
  checkWifi(wifi);
  const ssidBytes = [...Buffer.from(wifi.ssid, "utf8")].join(";");
  return [
    "[connection]",
    "id=paylane-wifi",
    "type=wifi",
    "autoconnect=true",
    "",
    "[wifi]",
    "mode=infrastructure",
    `ssid=${ssidBytes};`,
    "",
    "[wifi-security]",
    "key-mgmt=wpa-psk",
    `psk=${wpaPsk(wifi.ssid, wifi.password)}`,
    "",
    "[ipv4]",
    "method=auto",
    "",
    "[ipv6]",
    "method=auto",
    "addr-gen-mode=default",
    "",
  ].join("\n");
}
