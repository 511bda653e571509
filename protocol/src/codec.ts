import type { z } from "zod";

export type Decoded<T> = { ok: true; value: T } | { ok: false; error: string };

/**
 * Formats zod issues as `path: message` so an error names what is wrong.
 * `at` is where the validated value sits in a larger payload, e.g. `entries[1]`.
 */
export function describeIssues(error: z.ZodError, at = ""): string {
  return error.issues
    .map((issue) => {
      const path = issue.path.reduce<string>(
        (acc, key) => (typeof key === "number" ? `${acc}[${key}]` : acc ? `${acc}.${String(key)}` : String(key)),
        at,
      );
      return path ? `${path}: ${issue.message}` : issue.message;
    })
    .join("; ");
}

export function validate<S extends z.ZodType>(schema: S, value: unknown, at = ""): Decoded<z.infer<S>> {
  const result = schema.safeParse(value);
  return result.success ? { ok: true, value: result.data } : { ok: false, error: describeIssues(result.error, at) };
}

/** Parses a JSON payload and validates it. Never throws. */
export function decode<S extends z.ZodType>(schema: S, payload: Buffer | string): Decoded<z.infer<S>> {
  let json: unknown;
  try {
    json = JSON.parse(typeof payload === "string" ? payload : payload.toString("utf8"));
  } catch (err) {
    return { ok: false, error: `malformed JSON: ${(err as Error).message}` };
  }
  return validate(schema, json);
}

/** Validates before encoding, so nothing invalid ever reaches the wire from our side. */
export function encode<S extends z.ZodType>(schema: S, value: z.infer<S>): Buffer {
  const parsed = schema.parse(value);
  return Buffer.from(JSON.stringify(parsed));
}
