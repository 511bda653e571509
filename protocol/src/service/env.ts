/**
 * A service's environment, read through one zod object: each variable's
 * name, default and meaning are written once, in the schema, which validates
 * the environment and documents it in `--help` (see `environmentHelp`).
 */
import { z } from "zod";
import { describeIssues } from "../codec.ts";

/**
 * A configuration a person got wrong (a flag, a variable, a config file):
 * nothing was started, and the message names what to fix. Exit code 2.
 */
export class ConfigError extends Error {
  override name = "ConfigError";
}

export type Env = Readonly<Record<string, string | undefined>>;

/**
 * The variables `schema` names, read from `env` and validated; throws one
 * ConfigError naming every bad variable (`NAME: what is wrong; ...`).
 *
 * A variable set to an empty or blank string counts as unset (`REDIS_URL=`
 * turns Redis off). Variables the schema does not name are ignored: the
 * environment is shared with every other program, so a misspelled name
 * cannot be told from someone else's.
 */
export function parseEnv<S extends z.ZodObject>(schema: S, env: Env): z.output<S> {
  const picked = Object.fromEntries(
    Object.keys(schema.shape).map((name) => [name, env[name]?.trim() === "" ? undefined : env[name]]),
  );
  const result = schema.safeParse(picked);
  if (!result.success) throw new ConfigError(describeConfigIssues(result.error));
  return result.data;
}

/**
 * `describeIssues` for a configuration a person wrote: each unknown key is
 * its own issue, in words (`http: unknown key "tls"`), so a typo reads as one.
 */
export function describeConfigIssues(error: z.ZodError): string {
  const issues = error.issues.flatMap((issue): z.core.$ZodIssue[] =>
    issue.code === "unrecognized_keys"
      ? issue.keys.map((key) => ({
          code: "custom",
          path: issue.path,
          message: `unknown key "${key}"`,
          input: undefined,
        }))
      : [issue],
  );
  return describeIssues(new z.ZodError(issues));
}

/** A whole number from `min` to `max`, from a variable's text ("12 3", "1e3" and "-" are refused). */
export function envInteger(min: number, max: number, what = `an integer from ${min} to ${max}`) {
  return z
    .string()
    .trim()
    .regex(/^-?\d+$/, { error: `expected ${what}` })
    .transform(Number)
    .pipe(
      z
        .number()
        .min(min, { error: `expected ${what}` })
        .max(max, { error: `expected ${what}` }),
    );
}

/**
 * REGISTRY_POLL_MS, read by every process that watches the device registry (gateway, cloud): also
 * look at the file this often, for writes a file watch cannot see; unset: watch only.
 */
export function envRegistryPollMs() {
  return envInteger(100, 3_600_000, "milliseconds between looks at the registry file, 100 to 3600000")
    .optional()
    .describe(
      "also look at the registry file this often, for writes a file watch cannot see (a network file system shared by several nodes: NFS, EFS, Azure Files); unset: watch only",
    );
}

/** A TCP port (0: any free port). */
export function envPort() {
  return envInteger(0, 65_535, "a TCP port, an integer from 0 to 65535");
}

/** `true`/`1` or `false`/`0`. */
export function envBoolean() {
  return z
    .enum(["true", "false", "1", "0"], { error: "expected true or false" })
    .transform((v) => v === "true" || v === "1");
}

/** Whether this Node (its ICU data) knows the IANA time zone `name`. */
export function isTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat(undefined, { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

/** An IANA time zone name, checked against the zones this Node knows. */
export function timeZone() {
  return z.string().refine(isTimeZone, {
    error: (issue) => `unknown time zone '${issue.input}' (use an IANA name such as Europe/Berlin)`,
  });
}

/**
 * The `--help` section listing each variable of `schema`: its name, its
 * description (`.describe()` in the schema) and its default. Variables
 * without a description are internal and left out.
 */
export function environmentHelp(schema: z.ZodObject): string {
  const rows: [string, string][] = [];
  for (const [name, field] of Object.entries(schema.shape) as [string, z.ZodType][]) {
    const description = field.description;
    if (!description) continue;
    const fallback = defaultOf(field);
    rows.push([name, fallback === undefined ? description : `${description} (default ${fallback})`]);
  }
  const width = Math.max(...rows.map(([name]) => name.length)) + 2;
  return rows.map(([name, text]) => `  ${name.padEnd(width)}${text}`).join("\n");
}

function defaultOf(field: z.ZodType): string | undefined {
  const def = field._zod.def as { type: string; defaultValue?: unknown; innerType?: z.ZodType };
  if (def.type === "default") return String(def.defaultValue);
  if (def.type === "pipe" || def.type === "optional") {
    const inner = (field._zod.def as { in?: z.ZodType; innerType?: z.ZodType }).in ?? def.innerType;
    return inner ? defaultOf(inner) : undefined;
  }
  return undefined;
}
