/**
 * Updates on the kiosk (docs/kiosk-updates.md): releases side by side under
 * /opt/paylane/releases/<id>, `/opt/paylane/current` a symlink to the one the
 * daemon runs (paylane-device.service starts /opt/paylane/current/app/…),
 * switched atomically (a new symlink under a temporary name, then rename(2)
 * over `current`). After a switch the daemon is restarted and must answer
 * /healthz without a break for `settleMs` within `deadlineMs`; if not, the
 * symlink goes back, the daemon is restarted again on the previous release,
 * and the rollback is recorded.
 *
 * Crash safety: a release folder is complete (extracted, checked, native
 * modules installed, fsynced) before it gets its final name, and `current`
 * only ever names a complete folder, so a power cut at any point leaves the
 * old or the new release active, never half of one. `update-state.json`
 * (written to a temporary file, fsynced, renamed) says an update is `pending`
 * from before the switch until its outcome is recorded; `recover()` (at boot,
 * and first thing in every `apply`) finishes it: health-checks whatever
 * `current` names and commits it or rolls back.
 *
 * Nothing here touches /var/lib/paylane (the journal, kiosk.json, keys): a
 * release is code only.
 */
import { randomBytes } from "node:crypto";
import { cp, mkdir, mkdtemp, open, readdir, readFile, readlink, rename, rm, stat, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import semver from "semver";
import { BundleRefused, type ExpectedTarget, extractRelease, MANIFEST_NAME, type ReleaseManifest } from "./release.ts";

/** Restarts the daemon; resolves when it reports started (systemctl restart of a Type=notify unit), rejects if it failed. */
export interface ServiceManager {
  restart(): Promise<void>;
}

/** One look at the daemon's health: null when healthy, else why not. */
export type HealthProbe = () => Promise<string | null>;

export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

export interface UpdaterDeps {
  /** The kiosk's file system root ("/" on a Pi; a temporary folder in tests). */
  root: string;
  service: ServiceManager;
  probe: HealthProbe;
  clock: Clock;
  target: ExpectedTarget;
  /** Installs a release's native modules in `dir` (npm ci on the Pi) when its lockfile differs from the current one. */
  installModules(dir: string): Promise<void>;
  /** Why /opt/paylane cannot hold an update (an overlay root that a reboot wipes), or null. */
  volatile?(dir: string): Promise<string | null>;
  /** One line per step, for the journal and the person watching. */
  log(line: string): void;
  deadlineMs?: number;
  settleMs?: number;
  intervalMs?: number;
}

export interface UpdateState {
  /** The release known good (health-checked), or null before the first check. */
  current: string | null;
  previous: string | null;
  /** Set from before the switch until the outcome is recorded. */
  pending: { from: string | null; to: string; startedAt: string } | null;
  last: { outcome: Outcome["outcome"]; at: string; from: string | null; to: string; reason?: string } | null;
}

export type Outcome =
  | { outcome: "updated"; from: string | null; to: string }
  | { outcome: "unchanged"; to: string }
  | { outcome: "rolled-back"; from: string | null; to: string; reason: string; previousHealthy: boolean }
  | { outcome: "nothing-pending" };

export interface ApplyOptions {
  /** Install a bundle older than the current release (an operator's deliberate choice). */
  allowDowngrade?: boolean;
}

/** The update could not be made and no rollback could fix it (e.g. no previous release). */
export class UpdateFailed extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UpdateFailed";
  }
}

const EMPTY_STATE: UpdateState = { current: null, previous: null, pending: null, last: null };

export class Updater {
  readonly #d: Required<Omit<UpdaterDeps, "volatile">> & Pick<UpdaterDeps, "volatile">;
  readonly base: string;
  readonly releases: string;
  readonly currentLink: string;
  readonly statePath: string;

  constructor(deps: UpdaterDeps) {
    this.#d = { deadlineMs: 90_000, settleMs: 10_000, intervalMs: 1_000, ...deps };
    this.base = join(deps.root, "opt/paylane");
    this.releases = join(this.base, "releases");
    this.currentLink = join(this.base, "current");
    this.statePath = join(this.base, "update-state.json");
  }

  /**
   * One updater at a time (an operator's apply and the boot-time recover): a lock file made with O_EXCL,
   * holding the pid and the boot id. A lock left by a process that is gone, or by an earlier boot, is stale.
   */
  async #locked<T>(run: () => Promise<T>): Promise<T> {
    const path = join(this.base, ".update.lock");
    await mkdir(this.base, { recursive: true });
    const me = `${process.pid} ${await bootId()}\n`;
    for (let attempt = 0; ; attempt++) {
      try {
        const handle = await open(path, "wx", 0o644);
        await handle.writeFile(me);
        await handle.close();
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST" || attempt > 0) throw err;
        const [pid, boot] = (await readFile(path, "utf8").catch(() => "")).trim().split(" ");
        if (pid && boot === (await bootId()) && alive(Number(pid))) {
          throw new UpdateFailed(`another paylane-update (pid ${pid}) is running; try again when it has finished`);
        }
        this.#d.log(`taking over a stale lock (pid ${pid ?? "?"}, gone)`);
        await rm(path, { force: true });
      }
    }
    try {
      return await run();
    } finally {
      await rm(path, { force: true });
    }
  }

  /** The release `current` names, or null when there is none. */
  async currentRelease(): Promise<string | null> {
    const target = await readlink(this.currentLink).catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return null;
      if (err.code === "EINVAL") {
        throw new UpdateFailed(
          `${this.currentLink} is not a symlink: this kiosk predates release slots; flash a new image (docs/kiosk-updates.md)`,
        );
      }
      throw err;
    });
    if (target === null) {
      if (await exists(join(this.base, "app"))) {
        throw new UpdateFailed(
          `${this.base} has app/ but no current: this kiosk predates release folders; flash a new image (docs/kiosk-updates.md)`,
        );
      }
      return null;
    }
    const m = /^releases\/([^/]+)$/.exec(target);
    if (!m?.[1]) throw new UpdateFailed(`${this.currentLink} points at ${target}, not at releases/<id>`);
    return m[1];
  }

  async state(): Promise<UpdateState> {
    try {
      return { ...EMPTY_STATE, ...(JSON.parse(await readFile(this.statePath, "utf8")) as UpdateState) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return { ...EMPTY_STATE };
      // A torn write cannot happen (rename), but a hand edit can: start from what the symlink says.
      this.#d.log(`${this.statePath} is unreadable (${(err as Error).message}); starting from the symlink`);
      return { ...EMPTY_STATE };
    }
  }

  async #writeState(state: UpdateState): Promise<void> {
    const tmp = `${this.statePath}.tmp-${process.pid}`;
    const file = await open(tmp, "w", 0o644);
    try {
      await file.writeFile(`${JSON.stringify(state, null, 2)}\n`);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(tmp, this.statePath);
    await this.#syncDir(this.base);
  }

  async #syncDir(dir: string): Promise<void> {
    const handle = await open(dir, "r");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  /** rename(2) of a fresh symlink over `current`: at every instant `current` names one complete release. */
  async #switchTo(id: string): Promise<void> {
    const tmp = join(this.base, `.current-${process.pid}-${randomBytes(4).toString("hex")}`);
    await symlink(`releases/${id}`, tmp);
    await rename(tmp, this.currentLink);
    await this.#syncDir(this.base);
  }

  /** Waits for /healthz to answer without a break for settleMs, within deadlineMs. Null when healthy, else why not. */
  async #waitHealthy(): Promise<string | null> {
    const { clock, probe, deadlineMs, settleMs, intervalMs } = this.#d;
    const deadline = clock.now() + deadlineMs;
    let healthySince: number | null = null;
    let lastProblem = "no answer yet";
    let everHealthy = false;
    for (;;) {
      const problem = await probe().catch((err: Error) => err.message);
      const now = clock.now();
      if (problem === null) {
        everHealthy = true;
        healthySince ??= now;
        if (now - healthySince >= settleMs) return null;
      } else {
        lastProblem = everHealthy ? `healthy at first, then ${problem}` : problem;
        healthySince = null;
      }
      if (now >= deadline) return `not healthy within ${Math.round(deadlineMs / 1000)} s (${lastProblem})`;
      await clock.sleep(intervalMs);
    }
  }

  async #restartAndCheck(id: string): Promise<string | null> {
    this.#d.log(`restarting the daemon on ${id}`);
    try {
      await this.#d.service.restart();
    } catch (err) {
      return `the daemon did not start (${(err as Error).message})`;
    }
    this.#d.log(
      `waiting for /healthz (healthy for ${Math.round(this.#d.settleMs / 1000)} s, within ${Math.round(this.#d.deadlineMs / 1000)} s)`,
    );
    return this.#waitHealthy();
  }

  /** After a switch from `from` to `to`: commit `to` if healthy, else switch back and record why. */
  async #checkOrRollBack(state: UpdateState, from: string | null, to: string): Promise<Outcome> {
    const problem = await this.#restartAndCheck(to);
    const at = new Date(this.#d.clock.now()).toISOString();
    if (problem === null) {
      await this.#writeState({
        current: to,
        previous: from ?? state.previous,
        pending: null,
        last: { outcome: "updated", at, from, to },
      });
      this.#d.log(`updated: ${from ?? "(none)"} -> ${to}, healthy`);
      await this.#afterCommit(to, from);
      return { outcome: "updated", from, to };
    }
    if (from === null) {
      await this.#writeState({
        ...state,
        pending: null,
        last: { outcome: "rolled-back", at, from, to, reason: problem },
      });
      throw new UpdateFailed(`${to} is not healthy and there is no previous release to go back to: ${problem}`);
    }
    this.#d.log(`${to} failed its health check: ${problem}; rolling back to ${from}`);
    await this.#switchTo(from);
    const again = await this.#restartAndCheck(from);
    await this.#writeState({
      current: from,
      previous: state.current === from ? state.previous : state.current,
      pending: null,
      last: { outcome: "rolled-back", at, from, to, reason: problem },
    });
    this.#d.log(
      again === null
        ? `rolled back to ${from}, healthy again`
        : `rolled back to ${from}, but it is not healthy either: ${again}`,
    );
    return { outcome: "rolled-back", from, to, reason: problem, previousHealthy: again === null };
  }

  /** Keeps `current` and `previous`; takes the rest (and leftovers of interrupted runs) away. Installs a newer updater. */
  async #afterCommit(current: string, previous: string | null): Promise<void> {
    for (const name of await readdir(this.releases)) {
      if (name !== current && name !== previous) await rm(join(this.releases, name), { recursive: true, force: true });
    }
    for (const name of await readdir(this.base)) {
      if (name.startsWith(".current-")) await rm(join(this.base, name), { force: true });
    }
    const updater = join(this.releases, current, "updater/paylane-update.mjs");
    if (await exists(updater)) {
      await mkdir(join(this.base, "updater"), { recursive: true });
      const tmp = join(this.base, "updater", `.paylane-update.mjs.tmp-${process.pid}`);
      await cp(updater, tmp);
      await rename(tmp, join(this.base, "updater/paylane-update.mjs"));
    }
  }

  /**
   * Finishes an update a crash or power cut interrupted: `current` still names
   * the old release (the switch never happened: forgotten), or the new one
   * (health-checked now: committed, or rolled back).
   */
  recover(): Promise<Outcome> {
    return this.#locked(() => this.#recover());
  }

  async #recover(): Promise<Outcome> {
    const state = await this.state();
    if (!state.pending) return { outcome: "nothing-pending" };
    const { from, to } = state.pending;
    const current = await this.currentRelease();
    this.#d.log(`an update from ${from ?? "(none)"} to ${to} was interrupted; current is ${current ?? "(none)"}`);
    if (current === to) return this.#checkOrRollBack(state, from, to);
    if (current !== from) {
      throw new UpdateFailed(`interrupted update ${from} -> ${to}, but current is ${current}: fix by hand`);
    }
    // The switch never happened: the old release still runs; restart it in case the crash left it stopped.
    const problem = await this.#restartAndCheck(current ?? "(none)");
    const at = new Date(this.#d.clock.now()).toISOString();
    await this.#writeState({
      ...state,
      current: problem === null ? current : state.current,
      pending: null,
      last: { outcome: "rolled-back", at, from, to, reason: "interrupted before the switch" },
    });
    return { outcome: "rolled-back", from, to, reason: "interrupted before the switch", previousHealthy: !problem };
  }

  /** Checks a bundle as apply would, without installing it. */
  async verify(bundle: string): Promise<ReleaseManifest> {
    const staging = await mkdtemp(join(tmpdir(), "paylane-verify-"));
    try {
      return await extractRelease(bundle, staging, this.#d.target);
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
  }

  /**
   * Installs `bundle` as a new release, switches to it, and keeps it only if the daemon is healthy on it.
   * A bundle older than the current release is refused unless `allowDowngrade`: an old bundle stays validly
   * signed forever, flaws and all.
   */
  apply(bundle: string, expectSha256?: string, options: ApplyOptions = {}): Promise<Outcome> {
    return this.#locked(() => this.#apply(bundle, expectSha256, options));
  }

  /** The version of installed release `id`: its manifest's, else the id's prefix (`<version>-<12 hex>`). */
  async #versionOf(id: string): Promise<string> {
    const version = await readFile(join(this.releases, id, MANIFEST_NAME), "utf8")
      .then((raw) => (JSON.parse(raw) as { version?: unknown }).version)
      .catch(() => undefined);
    if (typeof version === "string") return version;
    return /^(.*)-[0-9a-f]{12}$/.exec(id)?.[1] ?? id;
  }

  /** Refuses a bundle older than the running release (semver), or one whose versions cannot be compared. */
  async #refuseDowngrade(bundle: string, manifest: ReleaseManifest, from: string | null, allow: boolean) {
    if (from === null) return;
    const running = await this.#versionOf(from);
    const flag = "pass --allow-downgrade to install it anyway";
    if (!semver.valid(manifest.version) || !semver.valid(running)) {
      if (allow) return;
      throw new BundleRefused(
        `${bundle}: version ${manifest.version} cannot be compared with the current release's ${running} (not semver); ${flag}`,
      );
    }
    if (semver.lt(manifest.version, running)) {
      if (allow) {
        this.#d.log(`downgrading from ${running} to ${manifest.version} (--allow-downgrade)`);
        return;
      }
      throw new BundleRefused(
        `${bundle}: version ${manifest.version} is older than the current release's ${running}: a downgrade can bring back fixed flaws; ${flag}`,
      );
    }
  }

  async #apply(bundle: string, expectSha256: string | undefined, options: ApplyOptions): Promise<Outcome> {
    const { log } = this.#d;
    if (this.#d.volatile) {
      const why = await this.#d.volatile(this.base);
      if (why) throw new UpdateFailed(why);
    }
    const recovered = await this.#recover();
    if (recovered.outcome !== "nothing-pending") log(`the interrupted update ended: ${recovered.outcome}`);

    await mkdir(this.releases, { recursive: true });
    for (const name of await readdir(this.releases)) {
      if (name.startsWith(".incoming-")) await rm(join(this.releases, name), { recursive: true, force: true });
    }
    log(`checking ${bundle}`);
    const staging = join(this.releases, `.incoming-${randomBytes(4).toString("hex")}`);
    let manifest: ReleaseManifest;
    let from: string | null;
    try {
      // The SHA-256 is checked on the private copy that is then extracted, not on the path (which can change).
      manifest = await extractRelease(bundle, staging, this.#d.target, expectSha256);
      from = await this.currentRelease();
      if (from !== manifest.id) await this.#refuseDowngrade(bundle, manifest, from, options.allowDowngrade === true);
    } catch (err) {
      await rm(staging, { recursive: true, force: true });
      throw err;
    }
    const to = manifest.id;
    if (from === to) {
      await rm(staging, { recursive: true, force: true });
      log(`${to} is already the current release; nothing to do`);
      return { outcome: "unchanged", to };
    }
    const dir = join(this.releases, to);
    if (await exists(join(dir, ".complete"))) {
      await rm(staging, { recursive: true, force: true });
      log(`${to} is already installed (kept from an earlier run)`);
    } else {
      try {
        await this.#prepare(staging, from);
        await rm(dir, { recursive: true, force: true });
        await rename(staging, dir);
        await this.#syncDir(this.releases);
      } catch (err) {
        await rm(staging, { recursive: true, force: true });
        throw err;
      }
    }

    const state = await this.state();
    await this.#writeState({ ...state, pending: { from, to, startedAt: new Date(this.#d.clock.now()).toISOString() } });
    log(`switching current: ${from ?? "(none)"} -> ${to}`);
    await this.#switchTo(to);
    return this.#checkOrRollBack(state, from, to);
  }

  /** Native modules (copied from the current release when the lockfile is the same, else installed), then fsync. */
  async #prepare(staging: string, from: string | null): Promise<void> {
    const lock = await readFile(join(staging, "package-lock.json"), "utf8").catch(() => null);
    const fromDir = from ? join(this.releases, from) : null;
    const fromLock = fromDir ? await readFile(join(fromDir, "package-lock.json"), "utf8").catch(() => null) : null;
    if (lock !== null && fromDir && lock === fromLock) {
      this.#d.log("native modules: same lockfile as the current release, copying its node_modules");
      if (await exists(join(fromDir, "node_modules"))) {
        await cp(join(fromDir, "node_modules"), join(staging, "node_modules"), {
          recursive: true,
          verbatimSymlinks: true,
        });
      }
    } else if (lock !== null) {
      this.#d.log("native modules: the lockfile changed, installing them (npm ci; minutes on a Pi)");
      await this.#d.installModules(staging);
    }
    // A marker written last: a folder without it is never switched to.
    const marker = await open(join(staging, ".complete"), "w");
    await marker.close();
    await syncTree(staging);
  }

  /** Switches back to the previous release by hand (health-checked like an update). */
  rollback(): Promise<Outcome> {
    return this.#locked(() => this.#rollback());
  }

  async #rollback(): Promise<Outcome> {
    await this.#recover();
    const state = await this.state();
    const from = await this.currentRelease();
    const to = state.previous;
    if (!to || !(await exists(join(this.releases, to, ".complete")))) {
      throw new UpdateFailed("there is no previous release to roll back to");
    }
    await this.#writeState({ ...state, pending: { from, to, startedAt: new Date(this.#d.clock.now()).toISOString() } });
    this.#d.log(`switching current: ${from ?? "(none)"} -> ${to} (rollback by hand)`);
    await this.#switchTo(to);
    return this.#checkOrRollBack(state, from, to);
  }
}

async function bootId(): Promise<string> {
  return (await readFile("/proc/sys/kernel/random/boot_id", "utf8").catch(() => "unknown")).trim();
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** fsync every file and folder under `dir`: the release is on the card before anything names it. */
async function syncTree(dir: string): Promise<void> {
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile() && !e.isDirectory()) continue;
    const handle = await open(join(e.parentPath, e.name), "r");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }
  const handle = await open(dir, "r");
  await handle.sync().finally(() => handle.close());
}
