/**
 * The updater's dependencies on a real kiosk: systemctl, the daemon's
 * /healthz over HTTP, the wall clock, npm ci, findmnt.
 */
import { execFile, spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import type { Clock, HealthProbe, ServiceManager } from "./updater.ts";

const exec = promisify(execFile);

export const DAEMON_UNIT = "paylane-device.service";

/** `systemctl restart paylane-device.service`: returns once the unit is active (READY=1), fails if it is not. */
export function systemdService(systemctl = "systemctl", unit = DAEMON_UNIT): ServiceManager {
  return {
    async restart() {
      try {
        await exec(systemctl, ["restart", unit], { timeout: 180_000 });
      } catch (err) {
        const e = err as { stderr?: string; message: string };
        throw new Error((e.stderr || e.message).trim().split("\n")[0] ?? "systemctl failed");
      }
    },
  };
}

/** GET `url`: healthy when it answers 200 within `timeoutMs` (the daemon answers 503 only when down). */
export function httpProbe(url: string, timeoutMs = 3_000): HealthProbe {
  return async () => {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
      await res.body?.cancel();
      return res.status === 200 ? null : `${url} answered ${res.status}`;
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code;
      return `${url}: ${cause ?? (err as Error).message}`;
    }
  };
}

export const wallClock: Clock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

/**
 * The packages whose install scripts the kiosk needs (their native builds), as the root package.json's
 * "allowScripts" lists them for the device (esbuild's is for the build machine only). Every other
 * package's lifecycle scripts never run on the kiosk: npm runs as root there.
 */
export const NATIVE_PACKAGES = ["sqlite3", "@serialport/bindings-cpp", "epoll", "@pokusew/pcsclite"] as const;

function run(cmd: string, args: string[], dir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: dir, stdio: ["ignore", 2, 2] });
    child.on("error", reject);
    child.on("exit", (code) =>
      code === 0 ? resolve() : reject(new Error(`${cmd} ${args[0]} in ${dir} failed (exit ${code})`)),
    );
  });
}

/** The native packages `dir`'s lockfile installs (anywhere in node_modules), each once. */
async function nativeIn(dir: string): Promise<string[]> {
  const lock = JSON.parse(await readFile(join(dir, "package-lock.json"), "utf8")) as {
    packages?: Record<string, unknown>;
  };
  const installed = new Set(
    Object.keys(lock.packages ?? {}).map((path) => path.slice(path.lastIndexOf("node_modules/") + 13)),
  );
  return NATIVE_PACKAGES.filter((name) => installed.has(name));
}

/**
 * npm ci in a release folder, as paylane-install does at first boot: with no lifecycle script at all
 * (`--ignore-scripts`: a dependency's postinstall would run as root); then `npm rebuild` of only the native
 * packages the release holds, which runs their install scripts (node-gyp / prebuild-install). Its output
 * goes to our stderr (the journal).
 */
export async function npmCi(dir: string, npm = "npm"): Promise<void> {
  await run(npm, ["ci", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund"], dir);
  const native = await nativeIn(dir);
  if (native.length > 0) await run(npm, ["rebuild", ...native], dir);
}

/** The read-only root (an overlay in RAM): a release written there is gone at the next reboot. */
export async function volatileRoot(dir: string): Promise<string | null> {
  const fstype = await exec("findmnt", ["--noheadings", "--output", "FSTYPE", "--target", dir]).then(
    (r) => r.stdout.trim().split("\n")[0] ?? "",
    () => "",
  );
  if (["overlay", "overlayfs", "tmpfs", "ramfs"].includes(fstype)) {
    return (
      `${dir} is on ${fstype} (the read-only root): an update written there is lost at the next reboot; ` +
      "turn the overlay off (raspi-config nonint do_overlayfs 1, reboot), update, then turn it on again"
    );
  }
  return null;
}
