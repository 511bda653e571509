/**
 * What a person types after a sub-command: a kiosk as `site/device`, and
 * `key=value` pairs whose values are JSON when they parse as JSON
 * (`seconds=10` is a number, `mode=maintenance` a string).
 */
import { type DeviceAddress, deviceIdentity } from "@paylane/protocol";
import { ConfigError } from "@paylane/protocol/service";

export function parseKiosk(text: string): DeviceAddress {
  const address = deviceIdentity.parseUsername(text);
  if (!address) {
    throw new ConfigError(
      `<kiosk>: expected site/device such as demo/k1 (lower-case ids), got ${JSON.stringify(text)}`,
    );
  }
  return address;
}

/** `key=value` → [key, value]; the value as JSON when it is JSON, else the text itself. */
export function parsePair(text: string, what: string): [string, unknown] {
  const eq = text.indexOf("=");
  if (eq <= 0) throw new ConfigError(`${what}: expected key=value, got ${JSON.stringify(text)}`);
  const raw = text.slice(eq + 1);
  let value: unknown = raw;
  try {
    value = JSON.parse(raw);
  } catch {
    // not JSON: a plain string such as maintenance
  }
  return [text.slice(0, eq), value];
}

/** commander's collector for a repeatable option (`--arg a=1 --arg b=2`). */
export const collect = (value: string, previous: string[] = []) => [...previous, value];
