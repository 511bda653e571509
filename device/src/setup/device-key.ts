/**
 * The kiosk's own Ed25519 key: made once, in `<dataDir>/device-key.pem`
 * (0600), and never sent anywhere. Its public half identifies the kiosk to
 * the cloud at enrolment; it signs enrolment and rotation requests.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { publicKeyFingerprint } from "@paylane/protocol";
import { writePrivateFile } from "./private-file.ts";

export const DEVICE_KEY_FILE = "device-key.pem";

export interface DeviceKey {
  /** SPKI DER, base64url: what the cloud stores. */
  publicKey: string;
  /** sha256 of the public key, first 16 hex: shown on the setup screen and in `device list`. */
  fingerprint: string;
  /** Signs `data` (Ed25519), base64url. */
  sign(data: Buffer): string;
}

function fromPrivate(privateKey: KeyObject): DeviceKey {
  const publicKey = createPublicKey(privateKey).export({ type: "spki", format: "der" }).toString("base64url");
  return {
    publicKey,
    fingerprint: publicKeyFingerprint(publicKey),
    sign: (data) => sign(null, data, privateKey).toString("base64url"),
  };
}

/** The kiosk's key, made (and kept) on first use. */
export async function loadOrCreateDeviceKey(dataDir: string): Promise<DeviceKey> {
  const path = join(dataDir, DEVICE_KEY_FILE);
  let pem: string | undefined;
  try {
    pem = await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT")
      throw new Error(`cannot read the device key ${path}: ${(err as Error).message}`);
  }
  if (pem !== undefined) {
    let key: KeyObject;
    try {
      key = createPrivateKey(pem);
    } catch (err) {
      throw new Error(
        `the device key ${path} is not a PEM private key (${(err as Error).message}); remove it to make a new one, then enrol again`,
      );
    }
    if (key.asymmetricKeyType !== "ed25519")
      throw new Error(
        `the device key ${path} is ${key.asymmetricKeyType}, not Ed25519; remove it to make a new one, then enrol again`,
      );
    return fromPrivate(key);
  }
  await mkdir(dataDir, { recursive: true });
  const { privateKey } = generateKeyPairSync("ed25519");
  await writePrivateFile(path, privateKey.export({ type: "pkcs8", format: "pem" }).toString());
  return fromPrivate(privateKey);
}

/** The id a kiosk enrols under when its kiosk.json names none: stable, since the key is. */
export function derivedDeviceId(key: DeviceKey): string {
  return `kiosk-${key.fingerprint.slice(0, 8)}`;
}
