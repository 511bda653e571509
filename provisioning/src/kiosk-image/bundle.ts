/**
 * The kiosk bundle: the device daemon built to one plain-JavaScript file with
 * esbuild, the touch UI's built assets beside it, and a package.json +
 * package-lock.json naming only the native modules the bundle leaves out.
 *
 * Layout, as installed in /opt/paylane (and carried under paylane/opt/ on the
 * boot partition):
 *
 *   package.json, package-lock.json   the native modules, at the root lockfile's versions
 *   app/paylane-device.mjs             the daemon; finds ../package.json (its version) and
 *   app/dist/kiosk/                    the UI (index.html, app.js) where @paylane/ui/dist points
 *                                      once bundled: both resolve against import.meta.url
 *   node_modules/                      made on the Pi by `npm ci --omit=dev --ignore-scripts` + native rebuilds (paylane-install)
 *
 * Native modules reach the Pi by `npm ci` on it, not baked in: epoll (GPIO via
 * onoff) and @pokusew/pcsclite (USB NFC readers) publish no prebuilds and always
 * compile with node-gyp; sqlite3
 * downloads its linux-arm64 N-API prebuild from GitHub at install time
 * (prebuild-install), with node-gyp as its fallback; only
 * @serialport/bindings-cpp ships linux-arm64 prebuilds inside its npm tarball.
 * Baking them in would need an arm64 compiler on the installer's machine for
 * epoll, so the Pi builds them once, with build-essential, on its first boot.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";
import type { BootFile } from "./contents.ts";

/** The repository this module runs from: the bundle is built from its sources and lockfile. */
export const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));

/** Node the bundle is built for, and the least the Pi must run (sqlite3 6 itself wants >= 20.17). */
export const NODE_TARGET = "node20";

export interface NativeModule {
  name: string;
  version: string;
}

export interface KioskBundle {
  /** Paths relative to /opt/paylane. */
  files: BootFile[];
  natives: NativeModule[];
  versions: Record<string, string>;
}

/**
 * Our own sources load a few CommonJS packages through a `require` made by
 * createRequire (firmata-io, johnny-five, pino-pretty), which esbuild cannot
 * follow. In the bundle those become plain `require(...)` calls esbuild
 * resolves and bundles like any other import.
 */
const CREATE_REQUIRE_LOCAL = "const require = createRequire(import.meta.url);";
const CREATE_REQUIRE_CALL = /createRequire\(import\.meta\.url\)\((["'][^."'][^"']*["'])\)/g;

/**
 * johnny-five finds and opens a serial port itself only when given no io; the
 * kiosk always hands it a Firmata io over our serialport, so its own
 * serialport@8 (and that one's native binding) stays out of the bundle.
 */
const JOHNNY_FIVE_UNUSED = new Set(["serialport", "browser-serialport", "firmata"]);

function packageName(specifier: string): string {
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? `${parts[0]}/${parts[1]}` : (parts[0] ?? specifier);
}

/** Node's lookup: the nearest node_modules/<name> from `fromDir` up. */
function findPackageDir(name: string, fromDir: string): string | undefined {
  for (let dir = fromDir; ; dir = dirname(dir)) {
    const candidate = join(dir, "node_modules", name);
    if (existsSync(join(candidate, "package.json"))) return candidate;
    if (dirname(dir) === dir) return undefined;
  }
}

function kioskPlugin(natives: Map<string, { dir: string; version: string }>): esbuild.Plugin {
  return {
    name: "paylane-kiosk",
    setup(build) {
      build.onResolve({ filter: /^[^./]/ }, async (args) => {
        if (args.path.startsWith("node:")) return undefined;
        const name = packageName(args.path);
        if (JOHNNY_FIVE_UNUSED.has(name) && args.importer.includes(`${sep}johnny-five${sep}`)) {
          return { path: name, namespace: "paylane-unused" };
        }
        const dir = findPackageDir(name, args.resolveDir);
        // A package that compiles C/C++ (binding.gyp) cannot be bundled: npm installs it on the Pi.
        if (dir && existsSync(join(dir, "binding.gyp"))) {
          const { version } = JSON.parse(await readFile(join(dir, "package.json"), "utf8")) as { version: string };
          const seen = natives.get(name);
          if (seen && seen.version !== version) {
            throw new Error(`native module ${name} is needed at two versions (${seen.version}, ${version})`);
          }
          natives.set(name, { dir, version });
          return { path: args.path, external: true };
        }
        return undefined;
      });
      build.onLoad({ filter: /.*/, namespace: "paylane-unused" }, (args) => ({
        contents: `throw new Error("johnny-five's own serial port discovery (${args.path}) is not in the kiosk bundle: PayLane passes it a Firmata io");`,
        loader: "js",
      }));
      build.onLoad({ filter: /[\\/](device|protocol)[\\/]src[\\/].*\.ts$/ }, async (args) => {
        const source = await readFile(args.path, "utf8");
        if (!source.includes("createRequire(import.meta.url)")) return undefined;
        const contents = source
          .replace(CREATE_REQUIRE_LOCAL, "")
          .replace(CREATE_REQUIRE_CALL, (_all, specifier: string) => `require(${specifier})`);
        return { contents, loader: "ts" };
      });
    },
  };
}

interface LockEntry {
  version?: string;
  link?: boolean;
  dev?: boolean;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}
interface Lockfile {
  lockfileVersion: number;
  packages: Record<string, LockEntry>;
}

/** Where a package at lockfile path `from` finds `name`, by Node's rule (nested node_modules first). */
function resolveInLock(lock: Lockfile, from: string, name: string): string | undefined {
  let base = from;
  for (;;) {
    const candidate = `${base ? `${base}/` : ""}node_modules/${name}`;
    if (lock.packages[candidate]) return candidate;
    if (!base) return undefined;
    const cut = base.lastIndexOf("/node_modules/");
    base = cut < 0 ? "" : base.slice(0, cut);
  }
}

/**
 * A lockfile holding only the native modules and what they depend on, at the
 * paths and versions (and integrity hashes) of the repository's lockfile, so
 * `npm ci` on the Pi installs exactly what was tested here.
 */
export function lockfileFragment(
  lock: Lockfile,
  natives: NativeModule[],
  root: { name: string; version: string },
): Lockfile {
  const packages: Record<string, LockEntry> = {
    "": {
      ...root,
      dependencies: Object.fromEntries(natives.map((n) => [n.name, n.version])),
    } as LockEntry,
  };
  const queue: string[] = [];
  for (const n of natives) {
    const path = `node_modules/${n.name}`;
    if (lock.packages[path]?.version !== n.version) {
      throw new Error(`package-lock.json has no ${n.name}@${n.version} at ${path}: run npm install in the repository`);
    }
    queue.push(path);
  }
  while (queue.length > 0) {
    const path = queue.shift() as string;
    if (packages[path]) continue;
    const entry = lock.packages[path] as LockEntry;
    const { dev: _dev, ...kept } = entry;
    packages[path] = kept;
    const deps = { ...entry.dependencies, ...entry.optionalDependencies };
    for (const dep of Object.keys(deps)) {
      const at = resolveInLock(lock, path, dep);
      if (at) queue.push(at);
      else if (!entry.optionalDependencies?.[dep])
        throw new Error(`package-lock.json: ${path} needs ${dep}, not found`);
    }
  }
  return {
    ...({ name: root.name, version: root.version } as object),
    lockfileVersion: 3,
    requires: true,
    packages,
  } as Lockfile;
}

function run(command: string, args: string[], cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (b: Buffer) => (out += b));
    child.stderr.on("data", (b: Buffer) => (out += b));
    child.on("error", reject);
    child.on("exit", (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${command} ${args.join(" ")} failed (${code}): ${out.trim()}`)),
    );
  });
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(relative(dir, join(e.parentPath, e.name)));
  }
  return out.sort();
}

async function readJson<T>(path: string): Promise<T> {
  return JSON.parse(await readFile(path, "utf8")) as T;
}

/** Builds the bundle from the repository's sources (about 3 s: esbuild twice). */
export async function buildKioskBundle(repoRoot = REPO_ROOT): Promise<KioskBundle> {
  const work = await mkdtemp(join(tmpdir(), "paylane-bundle-"));
  try {
    const natives = new Map<string, { dir: string; version: string }>();
    const result = await esbuild.build({
      // Paths in the bundle's comments are relative to the repository, wherever this runs from:
      // the same sources give the same bytes (and sha256 in the manifest).
      absWorkingDir: repoRoot,
      entryPoints: [join(repoRoot, "device/src/main.ts")],
      outfile: join(work, "app/paylane-device.mjs"),
      bundle: true,
      platform: "node",
      target: NODE_TARGET,
      format: "esm",
      // Bundled CommonJS and the native modules left out call require(); ESM has none of its own.
      banner: {
        js: 'import { createRequire as __paylaneCreateRequire } from "node:module";\nconst require = __paylaneCreateRequire(import.meta.url);',
      },
      // Readable stack traces in the kiosk's journal matter more than 2 MB on a 512 MB partition.
      minify: false,
      legalComments: "none",
      tsconfig: join(repoRoot, "tsconfig.json"),
      plugins: [kioskPlugin(natives)],
      logLevel: "silent",
      write: true,
    });
    if (result.errors.length > 0) throw new Error(`esbuild: ${result.errors[0]?.text}`);
    // The UI's own build, into the folder @paylane/ui/dist names once bundled (import.meta.url is the bundle).
    await run(process.execPath, [join(repoRoot, "ui/build.mjs"), join(work, "app/dist/kiosk")], repoRoot);

    const device = await readJson<{ version: string }>(join(repoRoot, "device/package.json"));
    const ui = await readJson<{ version: string }>(join(repoRoot, "ui/package.json"));
    const nativeList = [...natives]
      .map(([name, n]) => ({ name, version: n.version }))
      .sort((a, b) => (a.name < b.name ? -1 : 1));
    const root = { name: "paylane-kiosk", version: device.version };
    const lock = lockfileFragment(await readJson<Lockfile>(join(repoRoot, "package-lock.json")), nativeList, root);
    const packageJson = {
      ...root,
      private: true,
      description: "PayLane kiosk daemon, bundled (docs/kiosk-image.md): only its native modules are installed by npm",
      type: "module",
      engines: { node: ">=20.17" },
      dependencies: Object.fromEntries(nativeList.map((n) => [n.name, n.version])),
      // npm 11 skips dependencies' install scripts unless allowed here (older npm runs them
      // anyway and ignores the field). Name-only: the lockfile pins the versions.
      allowScripts: Object.fromEntries(nativeList.map((n) => [n.name, true])),
    };

    const files: BootFile[] = [
      { path: "package.json", content: `${JSON.stringify(packageJson, null, 2)}\n` },
      { path: "package-lock.json", content: `${JSON.stringify(lock, null, 2)}\n` },
    ];
    for (const path of await filesUnder(join(work, "app"))) {
      if (path.endsWith(".map")) continue; // source maps stay off the card
      files.push({ path: `app/${path.split(sep).join("/")}`, content: await readFile(join(work, "app", path)) });
    }
    const versions: Record<string, string> = {
      "@paylane/device": device.version,
      "@paylane/ui": ui.version,
      node: `>=20.17 (built for ${NODE_TARGET})`,
      esbuild: esbuild.version,
    };
    for (const n of nativeList) versions[n.name] = n.version;
    return { files, natives: nativeList, versions };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

export function sha256(content: Buffer | string): string {
  return createHash("sha256").update(content).digest("hex");
}
