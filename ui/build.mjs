// Builds the kiosk UI into dist/kiosk (app.js + index.html), which the device daemon serves,
// and the ops dashboard into dist/dashboard (index.html, app.js, app.css), which the cloud serves.
// Paths are relative to this file, so `node ui/build.mjs` and `npm run build -w ui` agree.
// `node ui/build.mjs <dir>` builds into <dir> instead (browser tests, which run side by side,
// each build their own copy rather than replace the one other tests are serving).
import { copyFile, mkdir, rm, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const started = performance.now();
const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const outdir = process.argv[2] ? join(resolve(process.argv[2]), "/") : here("./dist/kiosk/");

// A clean folder, so a renamed or removed file never lingers in what the daemon serves.
await rm(outdir, { recursive: true, force: true });
await mkdir(outdir, { recursive: true });

await esbuild.build({
  entryPoints: [here("./src/kiosk/main.ts")],
  outfile: `${outdir}app.js`,
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  minify: true,
  sourcemap: true,
  tsconfig: here("./tsconfig.json"),
  logLevel: "warning",
});
await copyFile(here("./src/kiosk/index.html"), `${outdir}index.html`);

const kb = (n) => `${(n / 1024).toFixed(1)} kB`;
const { size } = await stat(`${outdir}app.js`);
console.log(
  `${process.argv[2] ? `${outdir}app.js` : "ui/dist/kiosk/app.js"} ${kb(size)} (+ index.html) in ${Math.round(performance.now() - started)} ms`,
);

// The dashboard (Preact + uPlot, its CSS bundled beside it): only in the default build, the kiosk's
// browser tests that build their own copy into <dir> do not need it.
if (!process.argv[2]) {
  const dashStarted = performance.now();
  const dashdir = here("./dist/dashboard/");
  await rm(dashdir, { recursive: true, force: true });
  await mkdir(dashdir, { recursive: true });
  await esbuild.build({
    entryPoints: [here("./src/dashboard/main.tsx")],
    outdir: dashdir,
    entryNames: "app",
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    jsx: "automatic",
    jsxImportSource: "preact",
    minify: true,
    sourcemap: true,
    tsconfig: here("./tsconfig.json"),
    logLevel: "warning",
  });
  await copyFile(here("./src/dashboard/index.html"), `${dashdir}index.html`);
  const js = await stat(`${dashdir}app.js`);
  const css = await stat(`${dashdir}app.css`);
  console.log(
    `ui/dist/dashboard/app.js ${kb(js.size)}, app.css ${kb(css.size)} (+ index.html) in ${Math.round(performance.now() - dashStarted)} ms`,
  );
}
