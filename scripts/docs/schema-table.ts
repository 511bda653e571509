/**
 * JSON Schema (as z.toJSONSchema and @hono/zod-openapi write it) to Markdown
 * field tables, for the rendered reference pages.
 */

export type Json = Record<string, unknown>;

export interface Row {
  field: string;
  type: string;
  required: boolean;
  notes: string;
}

const MAX_SAFE = Number.MAX_SAFE_INTEGER;

/** The component name a `$ref` points at. */
export const refName = (ref: string) => decodeURIComponent(ref.split("/").at(-1) ?? ref);

/** The anchor of a schema's section on a page. */
export const schemaAnchor = (name: string) => `schema-${name.toLowerCase().replace(/[^a-z0-9]+/g, "-")}`;

/**
 * Prose for a page that VitePress compiles as a Vue template: outside code
 * spans, `<` would open an element and `{{` an interpolation.
 */
export const prose = (s: string) =>
  s
    .split(/(`[^`]*`)/)
    .map((part, i) => (i % 2 === 1 ? part : part.replace(/</g, "&lt;").replace(/\{\{/g, "&#123;&#123;")))
    .join("");

/** A table cell: prose on one line, pipes escaped. */
export const cell = (s: string) => prose(s.replace(/\r?\n+/g, " ")).replace(/\|/g, "\\|");

const code = (v: unknown) => `\`${JSON.stringify(v)}\``;

function isNull(s: Json): boolean {
  return s.type === "null";
}

/** The variants of a union, if `s` is one. */
function variants(s: Json): Json[] | undefined {
  const list = (s.anyOf ?? s.oneOf) as Json[] | undefined;
  return Array.isArray(list) ? list : undefined;
}

/** `allOf: [{$ref}]` alone, as zod-openapi and our own generator write a referenced schema with siblings. */
function soleRef(s: Json): string | undefined {
  if (typeof s.$ref === "string") return s.$ref;
  const all = s.allOf as Json[] | undefined;
  if (Array.isArray(all) && all.length === 1 && typeof all[0]?.$ref === "string") return all[0].$ref as string;
  return undefined;
}

/** A short type: `string (date-time)`, `integer`, `array of Entry`, `"online"`, `Problem or null`. */
export function typeOf(s: Json, link: (name: string) => string): string {
  const ref = soleRef(s);
  if (ref) return link(refName(ref));
  if ("const" in s) return code(s.const);
  if (Array.isArray(s.enum)) return s.enum.map(code).join(" or ");
  const vs = variants(s);
  if (vs) {
    const nonNull = vs.filter((v) => !isNull(v));
    const types = [...new Set(nonNull.map((v) => typeOf(v, link)))];
    return [...types, ...(nonNull.length < vs.length ? ["null"] : [])].join(" or ");
  }
  const type = Array.isArray(s.type) ? s.type.join(" or ") : (s.type as string | undefined);
  if (type === "array") {
    const items = (s.items ?? {}) as Json;
    return `array of ${typeOf(items, link)}`;
  }
  if (type === "object" || (!type && s.properties)) {
    return s.properties ? "object" : "object (any keys)";
  }
  if (type === "string" && typeof s.format === "string") return `string (${s.format})`;
  return type ?? "any";
}

/** Constraints and description of one schema, in words. */
export function notesOf(s: Json): string {
  const notes: string[] = [];
  const n = (k: string) => (typeof s[k] === "number" ? (s[k] as number) : undefined);
  const min = n("minimum");
  const max = n("maximum");
  if (min !== undefined && max !== undefined && max !== MAX_SAFE) notes.push(`${min}–${max}`);
  else if (min !== undefined) notes.push(`≥ ${min}`);
  else if (max !== undefined && max !== MAX_SAFE) notes.push(`≤ ${max}`);
  if (n("exclusiveMinimum") !== undefined) notes.push(`> ${n("exclusiveMinimum")}`);
  const range = (lo: number | undefined, hi: number | undefined, unit: string) =>
    lo !== undefined && hi !== undefined
      ? `${unit} ${lo}–${hi}`
      : lo !== undefined
        ? `${unit} ≥ ${lo}`
        : hi !== undefined
          ? `${unit} ≤ ${hi}`
          : undefined;
  const length = range(n("minLength"), n("maxLength"), "length");
  if (length) notes.push(length);
  const items = range(n("minItems"), n("maxItems"), "items");
  if (items) notes.push(items);
  if (typeof s.pattern === "string" && typeof s.format !== "string") notes.push(`pattern \`${s.pattern}\``);
  if ("default" in s) notes.push(`default ${code(s.default)}`);
  if (s.additionalProperties === false && s.properties) notes.push("no other fields");
  if (typeof s.description === "string") notes.push(s.description);
  if ("example" in s && typeof s.example !== "object") notes.push(`e.g. ${code(s.example)}`);
  return notes.join("; ");
}

/** The discriminator of object variants: a property that is a `const` in each. */
function discriminator(vs: Json[]): string | undefined {
  const first = (vs[0]?.properties ?? {}) as Record<string, Json>;
  return Object.keys(first).find((k) =>
    vs.every(
      (v) =>
        "const" in (((v.properties ?? {}) as Record<string, Json>)[k] ?? {}) ||
        Array.isArray(((v.properties ?? {}) as Record<string, Json>)[k]?.enum),
    ),
  );
}

const discriminated = (v: Json, key: string) => {
  const p = ((v.properties ?? {}) as Record<string, Json>)[key] ?? {};
  return "const" in p ? code(p.const) : ((p.enum as unknown[]) ?? []).map(code).join(" or ");
};

/**
 * Rows for every field of an object schema, nested objects and arrays of
 * objects flattened (`printer.state`, `entries[].seq`); `when` marks the
 * fields of one variant of a union.
 */
export function fieldRows(s: Json, link: (name: string) => string, prefix = "", when = ""): Row[] {
  const rows: Row[] = [];
  const vs = variants(s);
  const objectVariants = vs?.filter((v) => v.properties);
  if (vs && objectVariants && objectVariants.length > 1) {
    const key = discriminator(objectVariants);
    for (const [i, v] of objectVariants.entries()) {
      const label = key ? `${prefix}${key} = ${discriminated(v, key)}` : `variant ${i + 1}`;
      rows.push(...fieldRows(v, link, prefix, [when, `when ${label}`].filter(Boolean).join(", ")));
    }
    return rows;
  }
  const properties = (s.properties ?? {}) as Record<string, Json>;
  const required = new Set((s.required as string[] | undefined) ?? []);
  for (const [name, raw] of Object.entries(properties)) {
    const field = `${prefix}${name}`;
    const nullable = variants(raw);
    const inner =
      nullable && nullable.length === 2 && nullable.some(isNull) ? (nullable.find((v) => !isNull(v)) as Json) : raw;
    const notes = [notesOf(raw), inner !== raw ? notesOf(inner) : "", when].filter(Boolean).join("; ");
    rows.push({ field, type: typeOf(raw, link), required: required.has(name), notes });
    if (soleRef(inner)) continue;
    if (inner.properties || (variants(inner)?.filter((v) => v.properties).length ?? 0) > 1) {
      rows.push(...fieldRows(inner, link, `${field}.`, when));
    } else if (inner.type === "array") {
      const items = (inner.items ?? {}) as Json;
      if (!soleRef(items) && (items.properties || (variants(items)?.length ?? 0) > 1)) {
        rows.push(...fieldRows(items, link, `${field}[].`, when));
      }
    }
  }
  return rows;
}

/** A Markdown table of `rows` (a line saying so when there are none). */
export function fieldTable(rows: Row[]): string {
  if (rows.length === 0) return "No fields.\n";
  const lines = ["| field | type | required | notes |", "| --- | --- | --- | --- |"];
  for (const r of rows) {
    lines.push(`| \`${cell(r.field)}\` | ${cell(r.type)} | ${r.required ? "yes" : "no"} | ${cell(r.notes)} |`);
  }
  return `${lines.join("\n")}\n`;
}
