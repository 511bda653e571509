/**
 * The kiosk daemon built to plain JavaScript, for the footprint bench to
 * show what it costs without the TypeScript loader (the project ships no
 * build of it). esbuild bundles the daemon's own sources and the @paylane
 * workspaces into one ESM file; every package stays external, loaded by Node
 * from node_modules as under tsx. `import.meta.url`/`dirname`/`filename` are
 * replaced in each source file by that file's own, so what the code finds
 * from them (the UI bundle, package.json) is found as before.
 */
import { readFile } from "node:fs/promises";
import { dirname } from "node:path";
import { pathToFileURL } from "node:url";
import { build, type Plugin } from "esbuild";

const ownSources: Plugin = {
  name: "own-sources-keep-their-paths",
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, (args) =>
      args.path.startsWith("@paylane/") ? undefined : { path: args.path, external: true },
    );
    b.onLoad({ filter: /\.ts$/ }, async (args) => {
      const source = await readFile(args.path, "utf8");
      const contents = source
        .replaceAll("import.meta.url", JSON.stringify(pathToFileURL(args.path).href))
        .replaceAll("import.meta.dirname", JSON.stringify(dirname(args.path)))
        .replaceAll("import.meta.filename", JSON.stringify(args.path));
      return { contents, loader: "ts", resolveDir: dirname(args.path) };
    });
  },
};

/**
 * Bundles `main` into `outfile`. The file must sit where Node finds the
 * daemon's packages by climbing from it (under device/), as it does for the sources.
 */
export async function bundleDaemon(main: string, outfile: string): Promise<void> {
  await build({
    entryPoints: [main],
    outfile,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    plugins: [ownSources],
    logLevel: "silent",
  });
}
