/**
 * docs/reference/http-api.md, rendered from the OpenAPI document the cloud
 * serves: each operation by tag with its auth, parameters, request body and
 * responses; then the named schemas.
 */
import { GENERATED_NOTE } from "./render-mqtt.ts";
import { cell, fieldRows, fieldTable, type Json, prose, schemaAnchor, typeOf } from "./schema-table.ts";

const METHODS = ["get", "put", "post", "patch", "delete"] as const;
const link = (name: string) => `[${name}](#${schemaAnchor(name)})`;

/** A stable anchor for an operation. */
export const operationAnchor = (method: string, path: string) =>
  `op-${method}-${path
    .replace(/[{}]/g, "")
    .replace(/[^A-Za-z0-9]+/g, "-")
    .replace(/^-|-$/g, "")
    .toLowerCase()}`;

function authOf(op: Json, schemes: Record<string, Json>): string {
  const security = (op.security ?? []) as Array<Record<string, string[]>>;
  if (security.length === 0) return "none";
  const names = security.flatMap((s) => Object.keys(s));
  const described = names.map((n) => {
    const s = schemes[n] ?? {};
    const kind =
      s.type === "http" ? `HTTP ${s.scheme}` : s.type === "apiKey" ? `${s.in} \`${s.name}\`` : String(s.type);
    return `\`${n}\` (${kind})`;
  });
  return described.join(" or ");
}

function contentSummary(content: Record<string, Json> | undefined): string {
  if (!content) return "—";
  return Object.entries(content)
    .map(([type, media]) => `${type}: ${media.schema ? typeOf(media.schema as Json, link) : "—"}`)
    .join("; ");
}

export function renderHttpPage(doc: Json): string {
  const info = doc.info as Json;
  const paths = doc.paths as Record<string, Record<string, Json>>;
  const components = (doc.components ?? {}) as {
    schemas?: Record<string, Json>;
    securitySchemes?: Record<string, Json>;
  };
  const schemes = components.securitySchemes ?? {};
  const out: string[] = [];

  out.push(`<!-- ${GENERATED_NOTE} -->\n`);
  out.push("# HTTP API reference\n");
  out.push(
    `${info.title} ${info.version}, OpenAPI ${doc.openapi}. This page is ${GENERATED_NOTE}; it is rendered from [openapi.json](./openapi.json), the document the cloud serves at \`GET /api/v1/openapi.json\` (and as Swagger UI at \`/api/v1/docs\`), generated from the routes' own zod schemas (cloud/src/api). Conventions: [api.md](../api.md).\n`,
  );
  out.push(`${prose(String(info.description))}\n`);

  out.push("## Authentication\n");
  out.push("| scheme | kind | notes |\n| --- | --- | --- |");
  for (const [name, s] of Object.entries(schemes)) {
    const kind =
      s.type === "http"
        ? `HTTP ${s.scheme}${s.bearerFormat ? ` (${s.bearerFormat})` : ""}`
        : `${s.type} in ${s.in} \`${s.name}\``;
    out.push(`| \`${name}\` | ${kind} | ${cell(String(s.description ?? ""))} |`);
  }
  out.push("");

  // Operations by tag, in the document's tag order; untagged last.
  const tagOrder = ((doc.tags ?? []) as Json[]).map((t) => t.name as string);
  const byTag = new Map<string, Array<{ method: string; path: string; op: Json }>>();
  for (const [path, item] of Object.entries(paths)) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const tag = ((op.tags as string[] | undefined) ?? [])[0] ?? "other";
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag)?.push({ method, path, op });
    }
  }
  const tags = [
    ...tagOrder.filter((t) => byTag.has(t)),
    ...[...byTag.keys()].filter((t) => !tagOrder.includes(t)).sort(),
  ];

  out.push("## Operations\n");
  out.push("| method | path | summary | auth |\n| --- | --- | --- | --- |");
  for (const tag of tags) {
    for (const { method, path, op } of byTag.get(tag) ?? []) {
      out.push(
        `| ${method.toUpperCase()} | [\`${path}\`](#${operationAnchor(method, path)}) | ${cell(String(op.summary ?? ""))} | ${cell(String(op["x-permission"] ?? (authOf(op, schemes) === "none" ? "none" : "")))} |`,
      );
    }
  }
  out.push("");

  for (const tag of tags) {
    const description = ((doc.tags ?? []) as Json[]).find((t) => t.name === tag)?.description;
    out.push(`## ${tag}\n`);
    if (description) out.push(`${prose(String(description))}\n`);
    for (const { method, path, op } of byTag.get(tag) ?? []) {
      out.push(`<a id="${operationAnchor(method, path)}"></a>\n`);
      out.push(`### ${method.toUpperCase()} \`${path}\`\n`);
      if (op.summary) out.push(`${prose(String(op.summary))}\n`);
      if (op.description) out.push(`${prose(String(op.description))}\n`);
      out.push(`- Auth: ${authOf(op, schemes)}${op["x-permission"] ? `; permission \`${op["x-permission"]}\`` : ""}`);
      out.push("");
      const parameters = (op.parameters ?? []) as Json[];
      if (parameters.length) {
        out.push("| parameter | in | type | required | notes |\n| --- | --- | --- | --- | --- |");
        for (const p of parameters) {
          const schema = (p.schema ?? {}) as Json;
          const notes = [p.description, schema.description !== p.description ? schema.description : undefined]
            .filter(Boolean)
            .join("; ");
          const extra = fieldRows({ properties: { x: schema } }, link)[0]?.notes ?? "";
          out.push(
            `| \`${p.name}\` | ${p.in} | ${cell(typeOf(schema, link))} | ${p.required ? "yes" : "no"} | ${cell(
              [notes, extra]
                .filter(Boolean)
                .filter((v, i, a) => a.indexOf(v) === i)
                .join("; "),
            )} |`,
          );
        }
        out.push("");
      }
      const body = op.requestBody as Json | undefined;
      if (body) {
        const content = (body.content ?? {}) as Record<string, Json>;
        out.push(`Request body (${body.required ? "required" : "optional"}): ${contentSummary(content)}\n`);
        const json = content["application/json"]?.schema as Json | undefined;
        if (json && !json.$ref && json.properties) out.push(fieldTable(fieldRows(json, link)));
      }
      out.push("| status | meaning | body |\n| --- | --- | --- |");
      const responses = (op.responses ?? {}) as Record<string, Json>;
      for (const [status, r] of Object.entries(responses)) {
        out.push(
          `| ${status} | ${cell(String(r.description ?? ""))} | ${cell(contentSummary(r.content as Record<string, Json> | undefined))} |`,
        );
      }
      out.push("");
    }
  }

  const schemas = components.schemas ?? {};
  if (Object.keys(schemas).length) {
    out.push("## Schemas\n");
    for (const name of Object.keys(schemas).sort()) {
      const schema = schemas[name] as Json;
      out.push(`<a id="${schemaAnchor(name)}"></a>\n`);
      out.push(`### ${name}\n`);
      if (schema.description) out.push(`${prose(String(schema.description))}\n`);
      const rows = fieldRows(schema, link);
      out.push(rows.length ? fieldTable(rows) : `${typeOf(schema, link)}\n`);
    }
  }
  return `${out.join("\n")}\n`;
}
