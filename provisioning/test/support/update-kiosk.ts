/**
 * A kiosk's /opt/paylane and /var/lib/paylane in a temporary folder, releases
 * whose "daemon" is a real small process (fake-daemon.mjs), a service manager
 * that starts it from /opt/paylane/current as systemd would, and a clock that
 * only moves when the updater sleeps.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, readFile, realpath, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { within } from "../../../test/support/within.ts";
import type { BootFile } from "../../src/kiosk-image/contents.ts";
import { writeReleaseBundle } from "../../src/update/release.ts";
import { httpProbe } from "../../src/update/system.ts";
import type { Clock, HealthProbe, ServiceManager, UpdaterDeps } from "../../src/update/updater.ts";

export const FAKE_DAEMON = join(import.meta.dirname, "fake-daemon.mjs");
export const FAKE_SYSTEMCTL = join(import.meta.dirname, "fake-systemctl.sh");
export type DaemonMode = "good" | "exits" | "unhealthy" | "flaps";

const LOCK = `${JSON.stringify({ name: "paylane-kiosk", lockfileVersion: 3, packages: { "": {} } }, null, 2)}\n`;

/** A release's files: the fake daemon where the real one goes, behaving as `mode` says. */
export async function releaseFiles(version: string, mode: DaemonMode, lock = LOCK): Promise<BootFile[]> {
  return [
    { path: "package.json", content: `${JSON.stringify({ name: "paylane-kiosk", version, type: "module" })}\n` },
    { path: "package-lock.json", content: lock },
    { path: "app/paylane-device.mjs", content: await readFile(FAKE_DAEMON) },
    { path: "app/mode.json", content: JSON.stringify({ mode, release: version }) },
    { path: "app/dist/kiosk/index.html", content: `<!doctype html><title>PayLane ${version}</title>\n` },
  ];
}

export async function bundle(dir: string, version: string, mode: DaemonMode, lock?: string): Promise<string> {
  const out = join(dir, `paylane-kiosk-${version}-${mode}.tar.gz`);
  await writeReleaseBundle(await releaseFiles(version, mode, lock), { version, arch: process.arch }, out);
  return out;
}

/** The daemon's data folder, with a journal the test checks an update never touches. */
export async function seedDataFolder(root: string): Promise<() => Promise<string>> {
  const data = join(root, "var/lib/paylane");
  await mkdir(data, { recursive: true });
  await writeFile(join(data, "journal.sqlite"), Buffer.from("SQLite format 3\0 journal of check-ins".repeat(100)));
  await writeFile(join(data, "kiosk.json"), '{"site":"demo"}\n');
  return async () => {
    const journal = join(data, "journal.sqlite");
    const [content, info] = await Promise.all([readFile(journal), stat(journal)]);
    return `${createHash("sha256").update(content).digest("hex")} ${info.mtimeMs}`;
  };
}

/** systemd's part: restart = stop the running daemon, start current/app/paylane-device.mjs, wait for READY. */
export class FakeService implements ServiceManager {
  #child: ChildProcess | undefined;
  port: number | undefined;
  /** The release folder (resolved) each start ran from. */
  readonly starts: string[] = [];
  #cut: (() => void) | undefined;

  constructor(private readonly root: string) {}

  async restart(): Promise<void> {
    await this.stop();
    const cut = this.#cut;
    if (cut) {
      this.#cut = undefined;
      cut();
      return new Promise<void>(() => {});
    }
    const dir = await realpath(join(this.root, "opt/paylane/current"));
    this.starts.push(dir);
    const child = spawn(process.execPath, ["app/paylane-device.mjs"], {
      cwd: dir,
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, FAKE_DAEMON_STDIN_PARENT: "1" },
    });
    this.#child = child;
    let out = "";
    const ready = new Promise<number>((resolve, reject) => {
      child.stdout.on("data", (b: Buffer) => {
        out += b;
        const m = /READY (\d+)/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      child.stderr.on("data", (b: Buffer) => (out += b));
      child.on("exit", (code) => reject(new Error(`paylane-device exited with code ${code}: ${out.trim()}`)));
    });
    this.port = await within(ready, 10_000, "the fake daemon to say READY");
  }

  /**
   * The power goes at the next restart: that restart never returns (the updater waiting on it is as good as
   * dead) and the daemon is left stopped. Resolves when it happens.
   */
  powerCutAtNextRestart(): Promise<void> {
    return within(new Promise<void>((resolve) => (this.#cut = resolve)), 10_000, "the updater to restart the daemon");
  }

  async stop(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    this.port = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    await within(exited, 10_000, "the fake daemon to stop");
  }

  /** The real HTTP probe, at whatever port the running daemon took. */
  probe: HealthProbe = async () =>
    this.port === undefined ? "nothing listening" : httpProbe(`http://127.0.0.1:${this.port}/healthz`)();
}

/** Time moves only when the updater sleeps: a 90 s deadline passes in a few milliseconds. */
export class FakeClock implements Clock {
  constructor(public t = Date.parse("2026-12-05T12:00:00Z")) {}
  now = () => this.t;
  sleep = async (ms: number) => {
    this.t += ms;
    await new Promise((resolve) => setImmediate(resolve));
  };
}

export function deps(root: string, service: FakeService, clock: FakeClock, log: string[]): UpdaterDeps {
  return {
    root,
    service,
    probe: service.probe,
    clock,
    target: { platform: process.platform, arch: process.arch },
    installModules: async (dir) => {
      log.push(`npm ci in ${dir}`);
      await mkdir(join(dir, "node_modules/fake-native"), { recursive: true });
      await writeFile(join(dir, "node_modules/fake-native/index.js"), "export default 1;\n");
    },
    log: (line) => log.push(line),
    deadlineMs: 90_000,
    settleMs: 10_000,
    intervalMs: 1_000,
  };
}
