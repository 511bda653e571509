/**
 * `npm run docs:reference`: regenerates docs/reference/ — the AsyncAPI 3.0
 * document of the MQTT API (asyncapi.yaml), the cloud's OpenAPI document
 * (openapi.json) and the two pages rendered from them (mqtt-api.md,
 * http-api.md). Each file goes through biome's formatter here, so what is
 * committed is exactly a fresh generation and `biome check` leaves it alone.
 *
 *   npm run docs:reference            write the files
 *   npm run docs:reference -- --check exit 1 naming every file that differs from a fresh generation
 */
import { spawnSync } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";
import { buildAsyncApi } from "./asyncapi.ts";
import { buildOpenApi } from "./openapi.ts";
import { renderHttpPage } from "./render-http.ts";
import { GENERATED_NOTE, renderMqttPage } from "./render-mqtt.ts";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const REFERENCE_DIR = "docs/reference";
export const REFERENCE_FILES = ["asyncapi.yaml", "openapi.json", "mqtt-api.md", "http-api.md"] as const;
export type ReferenceFile = (typeof REFERENCE_FILES)[number];

const BIOME = fileURLToPath(new URL("../../node_modules/@biomejs/biome/bin/biome", import.meta.url));

/** `text` as biome formats a file at `path` (the repository's biome.json applies). */
export function biomeFormat(path: string, text: string): string {
  const run = spawnSync(process.execPath, [BIOME, "format", `--stdin-file-path=${path}`], {
    cwd: ROOT,
    input: text,
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  });
  if (run.status !== 0) throw new Error(`biome could not format ${path}: ${run.stderr || run.stdout}`);
  return run.stdout;
}

/** Every reference file's content, as it should be committed. */
export async function generateReferences(): Promise<Record<ReferenceFile, string>> {
  const asyncapi = buildAsyncApi();
  const openapi = await buildOpenApi();
  const raw: Record<ReferenceFile, string> = {
    "asyncapi.yaml": `# ${GENERATED_NOTE}\n${stringify(asyncapi, { lineWidth: 0, aliasDuplicateObjects: false })}`,
    // The document exactly as the cloud serves it (a JSON file has no room for a comment).
    "openapi.json": `${JSON.stringify(openapi, null, 2)}\n`,
    "mqtt-api.md": renderMqttPage(asyncapi),
    "http-api.md": renderHttpPage(openapi),
  };
  const out = {} as Record<ReferenceFile, string>;
  for (const file of REFERENCE_FILES) out[file] = biomeFormat(`${REFERENCE_DIR}/${file}`, raw[file]);
  return out;
}

/** The files under docs/reference/ that differ from a fresh generation (missing ones included). */
export async function staleReferences(fresh: Record<ReferenceFile, string>): Promise<ReferenceFile[]> {
  const stale: ReferenceFile[] = [];
  for (const file of REFERENCE_FILES) {
    const committed = await readFile(`${ROOT}${REFERENCE_DIR}/${file}`, "utf8").catch(() => undefined);
    if (committed !== fresh[file]) stale.push(file);
  }
  return stale;
}

async function main(argv: string[]): Promise<number> {
  const unknown = argv.filter((a) => a !== "--check");
  if (unknown.length > 0) {
    console.error(`unknown argument ${unknown[0]}: use no argument to write docs/reference/, or --check to compare`);
    return 2;
  }
  const fresh = await generateReferences();
  if (argv.includes("--check")) {
    const stale = await staleReferences(fresh);
    if (stale.length === 0) {
      console.log(`${REFERENCE_DIR}/ is up to date (${REFERENCE_FILES.join(", ")})`);
      return 0;
    }
    console.error(
      `${REFERENCE_DIR}/ differs from a fresh generation: ${stale.join(", ")} — run npm run docs:reference`,
    );
    return 1;
  }
  for (const file of REFERENCE_FILES) {
    await writeFile(`${ROOT}${REFERENCE_DIR}/${file}`, fresh[file]);
    console.log(`wrote ${REFERENCE_DIR}/${file} (${Buffer.byteLength(fresh[file])} bytes)`);
  }
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.exitCode = await main(process.argv.slice(2));
}
