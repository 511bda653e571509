/**
 * `npm run build:images -- <gateway|cloud>`: the JavaScript a container image runs.
 * The Dockerfiles' build stage runs exactly this; test/deploy/docker.test.ts runs it too,
 * from a folder laid out as the Dockerfile copies the sources.
 *
 * Node 20 cannot run TypeScript, and tsx in a production image would be a
 * compiler (esbuild's native binary) loaded on every start. So each service's
 * entry points are bundled by esbuild into `<part>/dist/*.mjs`:
 *  - our own code and the workspaces it imports (`@paylane/*`, whose exports
 *    point at .ts files) are bundled;
 *  - every other bare import stays external, resolved at run time from the
 *    node_modules that `npm ci --omit=dev` installed (native addons, WASM
 *    and packages that read their own files keep working as published);
 *  - `import.meta.url` in each source file is rewritten to that file's own
 *    location, so `new URL("../../migrations/", import.meta.url)` and
 *    `createRequire(import.meta.url)` find what they found under tsx
 *    (the image copies those files to the same relative places).
 *
 * The cloud also needs the ops dashboard it serves (ui/dist/dashboard): built here first.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { builtinModules } from "node:module";
import { dirname, join, relative, resolve, sep } from "node:path";
import { pathToFileURL } from "node:url";
import * as esbuild from "esbuild";

/** What each image runs: output name → entry point, relative to the part's folder. */
export const IMAGES = {
  gateway: { entries: { "paylane-gateway": "src/main.ts" }, needsUi: false },
  cloud: { entries: { "paylane-cloud": "src/main.ts", "paylane-admin": "src/admin/main.ts" }, needsUi: true },
} as const;
export type ImagePart = keyof typeof IMAGES;

export interface BuildResult {
  /** The bundles written, absolute paths. */
  outputs: string[];
  /** Every bare import the bundles left external (package names, no subpath), node: builtins excluded. */
  externals: string[];
  /** The workspaces bundled in, by package name. */
  workspaces: string[];
}

interface Workspace {
  name: string;
  dir: string;
  exports: Record<string, string>;
}

/** The repository's workspaces, read from its root package.json: `@paylane/x` → folder and exports. */
function readWorkspaces(root: string): Map<string, Workspace> {
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { workspaces?: string[] };
  const out = new Map<string, Workspace>();
  for (const folder of pkg.workspaces ?? []) {
    let ws: { name: string; exports?: string | Record<string, string> };
    try {
      ws = JSON.parse(readFileSync(join(root, folder, "package.json"), "utf8"));
    } catch {
      continue; // a workspace the image does not copy is one it cannot import either (esbuild says so)
    }
    const exports = typeof ws.exports === "string" ? { ".": ws.exports } : (ws.exports ?? {});
    out.set(ws.name, { name: ws.name, dir: join(root, folder), exports });
  }
  return out;
}

const packageName = (spec: string) => spec.split("/", spec.startsWith("@") ? 2 : 1).join("/");
const BUILTINS = new Set(builtinModules);

/** Builds one image's bundles under `root` (the repository, or a copy laid out as a Dockerfile copies it). */
export async function buildImage(part: ImagePart, root: string, log: (line: string) => void = () => {}) {
  const image = IMAGES[part];
  const partDir = join(root, part);
  const outdir = join(partDir, "dist");
  const workspaces = readWorkspaces(root);
  const externals = new Set<string>();
  const bundled = new Set<string>();

  if (image.needsUi) {
    const ui = spawnSync(process.execPath, [join(root, "ui/build.mjs")], { cwd: root, encoding: "utf8" });
    if (ui.status !== 0) throw new Error(`ui/build.mjs failed (exit ${ui.status}): ${ui.stderr.trim()}`);
    log(ui.stdout.trim() || ui.stderr.trim());
  }

  const plugin: esbuild.Plugin = {
    name: "paylane-image",
    setup(build) {
      // Bare imports: our workspaces are bundled (through their exports map), everything else is external.
      build.onResolve({ filter: /^[^./]/ }, (args) => {
        if (args.path.startsWith("node:") || BUILTINS.has(args.path)) return { path: args.path, external: true };
        const name = packageName(args.path);
        const ws = workspaces.get(name);
        if (!ws) {
          externals.add(name);
          return { path: args.path, external: true };
        }
        const subpath = `.${args.path.slice(name.length)}`;
        const target = ws.exports[subpath];
        if (!target) return { errors: [{ text: `${name} exports no "${subpath}" (its package.json exports)` }] };
        bundled.add(name);
        return { path: join(ws.dir, target) };
      });
      // Each file's import.meta.url becomes its own source location, seen from the bundle's folder.
      build.onLoad({ filter: /\.(ts|tsx|mts|js|mjs)$/ }, (args) => {
        if (args.path.split(sep).includes("node_modules")) return undefined;
        const source = readFileSync(args.path, "utf8");
        if (!source.includes("import.meta.url")) return undefined;
        const rel = relative(outdir, args.path).split(sep).join("/");
        const here = `new URL(${JSON.stringify(rel)}, import.meta.url).href`;
        const loader = args.path.endsWith(".tsx") ? "tsx" : args.path.match(/\.m?ts$/) ? "ts" : "js";
        return { contents: source.replaceAll("import.meta.url", here), loader };
      });
    },
  };

  await rm(outdir, { recursive: true, force: true });
  const result = await esbuild.build({
    absWorkingDir: root,
    entryPoints: Object.entries(image.entries).map(([out, entry]) => ({ out, in: join(partDir, entry) })),
    outdir,
    outExtension: { ".js": ".mjs" },
    bundle: true,
    splitting: true,
    // chunks beside the entries: the import.meta.url rewrite is relative to this folder
    chunkNames: "[name]-[hash]",
    format: "esm",
    platform: "node",
    target: "node20",
    sourcemap: "linked",
    // tsconfig's experimentalDecorators / useDefineForClassFields, as tsx reads them
    tsconfig: join(root, "tsconfig.json"),
    plugins: [plugin],
    metafile: true,
    logLevel: "warning",
  });
  const outputs = Object.keys(result.metafile.outputs)
    .filter((f) => f.endsWith(".mjs"))
    .map((f) => resolve(root, f));
  const kb = Object.entries(result.metafile.outputs)
    .filter(([f]) => f.endsWith(".mjs"))
    .reduce((n, [, o]) => n + o.bytes, 0);
  log(
    `${part}: ${Object.keys(image.entries)
      .map((e) => `${part}/dist/${e}.mjs`)
      .join(", ")} (${Math.round(kb / 1024)} kB with chunks), ${externals.size} packages external, ` +
      `bundled ${[...bundled].sort().join(", ") || "no workspace"}`,
  );
  return {
    outputs,
    externals: [...externals].sort(),
    workspaces: [...bundled].sort(),
  } satisfies BuildResult;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const parts = process.argv.slice(2);
  const bad = parts.filter((p) => !(p in IMAGES));
  if (parts.length === 0 || bad.length > 0) {
    console.error(
      `build:images: ${bad.length ? `unknown image ${bad.join(", ")}` : "name an image"}: expected ${Object.keys(IMAGES).join(" or ")} (npm run build:images -- gateway)`,
    );
    process.exit(2);
  }
  const root = resolve(dirname(new URL(import.meta.url).pathname), "../..");
  for (const part of parts as ImagePart[]) {
    try {
      await buildImage(part, root, (line) => console.log(line));
    } catch (err) {
      console.error(`build:images: ${part}: ${(err as Error).message}`);
      process.exit(1);
    }
  }
}
