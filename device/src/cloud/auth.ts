/** How a kiosk signs in to the cloud's HTTP API: the identity it uses on MQTT, with its secret. */
import { type DeviceAddress, deviceIdentity } from "@paylane/protocol";

/** The `authorization` header value: HTTP Basic with `{site}/{device}` and the device secret. */
export function deviceAuthorization(address: DeviceAddress, secret: string): string {
  return `Basic ${Buffer.from(`${deviceIdentity.username(address)}:${secret}`).toString("base64")}`;
}
