/**
 * Adding and removing operators in a registry file without editing it by
 * hand: a new operator gets a generated password, the file keeps only its
 * scrypt hash (written atomically under the registry's lock, so a running
 * gateway's watch never reads half a file and a concurrent enrolment by the
 * cloud is not lost), and the password is handed back once to be shown.
 */
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import {
  hashSecret,
  ID_PATTERN,
  OPERATOR_ROLES,
  type OperatorRole,
  operatorUsername,
  type RegistryFile,
  RegistryFileSchema,
  updateRegistryFile,
  validate,
} from "@paylane/protocol";
import { ConfigError } from "@paylane/protocol/service";

/** A password for a person's tool: 24 random bytes, URL-safe so it survives a shell and a URL. */
export const newOperatorPassword = () => randomBytes(24).toString("base64url");

/** The registry file as written (so unknown-to-us defaults are not added), checked. */
export async function readRegistryFile(path: string): Promise<RegistryFile> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new ConfigError(`cannot read registry ${path}: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`registry ${path} is not valid JSON: ${(err as Error).message}`);
  }
  const checked = validate(RegistryFileSchema, json);
  if (!checked.ok) throw new ConfigError(`registry ${path}: ${checked.error}`);
  return json as RegistryFile;
}

export interface NewOperator {
  id: string;
  role: OperatorRole;
  sites: string[];
}

function checkOperator(o: NewOperator): void {
  if (!ID_PATTERN.test(o.id)) throw new ConfigError(`--id ${o.id}: expected lower-case letters, digits, "-" or "_"`);
  if (!OPERATOR_ROLES.includes(o.role)) {
    throw new ConfigError(`--role ${o.role}: expected one of ${OPERATOR_ROLES.join(", ")}`);
  }
  const bad = o.sites.find((s) => !ID_PATTERN.test(s));
  if (bad !== undefined) throw new ConfigError(`--site ${bad}: expected lower-case letters, digits, "-" or "_"`);
  if (o.role !== "admin" && o.sites.length === 0) {
    throw new ConfigError(`a ${o.role} needs at least one --site (an admin has every site)`);
  }
}

/**
 * Adds `o` to the registry at `path` with a new password, which is returned
 * (and stored nowhere but as a hash). Refuses an id already there: rotating a
 * password is `remove` then `add`, so it is never done by accident.
 */
export async function addOperator(path: string, o: NewOperator): Promise<{ username: string; password: string }> {
  checkOperator(o);
  // Read first for its clear errors (missing file, bad JSON); the write below re-reads under the lock.
  await readRegistryFile(path);
  const password = newOperatorPassword();
  const entry = {
    id: o.id,
    role: o.role,
    sites: o.role === "admin" ? [] : o.sites,
    secretHash: await hashSecret(password),
  };
  // Locked read-modify-write, validated before it is written: the cloud enrolling a kiosk at the same moment is kept.
  await updateRegistryFile(path, (file) => {
    if ((file.operators ?? []).some((x) => x.id === o.id)) {
      throw new ConfigError(`operator ${o.id} is already in ${path}; remove it first to give it a new password`);
    }
    file.operators = [...(file.operators ?? []), entry];
  });
  return { username: operatorUsername(o.id), password };
}

/** Removes operator `id`; a gateway watching the file closes its sessions. */
export async function removeOperator(path: string, id: string): Promise<void> {
  await readRegistryFile(path);
  await updateRegistryFile(path, (file) => {
    const operators = file.operators ?? [];
    if (!operators.some((x) => x.id === id)) {
      const known = operators.map((x) => x.id).join(", ") || "none";
      throw new ConfigError(`operator ${id} is not in ${path} (operators there: ${known})`);
    }
    file.operators = operators.filter((x) => x.id !== id);
  });
}
