/**
 * `paylane-update`: run on the kiosk, as root (docs/kiosk-updates.md). Installs
 * an update bundle as a new release beside the current one, switches
 * /opt/paylane/current to it, restarts the daemon and keeps the release only if
 * the daemon answers /healthz; otherwise it switches back by itself. Bundled
 * into one file (update/build.ts) that the image puts at
 * /opt/paylane/updater/paylane-update.mjs, outside every release, so a broken
 * release cannot break its own rollback.
 */
import { createPublicKey, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Command, InvalidArgumentError, Option } from "commander";
import pkg from "../../package.json" with { type: "json" };
import { BundleRefused } from "./release.ts";
import { httpProbe, npmCi, systemdService, volatileRoot, wallClock } from "./system.ts";
import { type Outcome, UpdateFailed, Updater } from "./updater.ts";

const NAME = "paylane-update";
export const EXIT_CODES = { ok: 0, failed: 1, usage: 2, refused: 3, rolledBack: 4 } as const;

/** A URL that could fail every health check (and so roll back a good release) is refused up front. */
function httpUrl(value: string): string {
  const ok = URL.canParse(value) && /^https?:$/.test(new URL(value).protocol);
  if (!ok) throw new InvalidArgumentError(`expected an http:// URL such as http://127.0.0.1:8081/healthz`);
  return value;
}

function seconds(value: string): number {
  const m = /^(\d+)(s|m)?$/.exec(value.trim());
  if (!m) throw new InvalidArgumentError(`expected a duration like 90s or 2m, got ${JSON.stringify(value)}`);
  return Number(m[1]) * (m[2] === "m" ? 60 : 1) * 1000;
}

function sha256Flag(value: string): string {
  if (!/^[0-9a-fA-F]{64}$/.test(value)) throw new InvalidArgumentError("expected 64 hex digits (sha256sum's output)");
  return value;
}

interface Globals {
  root: string;
  healthUrl: string;
  deadline: number;
  settle: number;
}

/** Where a kiosk keeps the public key its bundles must be signed with (absent: hashes only). */
export const SIGNING_KEY_PATH = "etc/paylane/update-signing.pub";

function signingKey(root: string): KeyObject | undefined {
  const path = join(root, SIGNING_KEY_PATH);
  let pem: string;
  try {
    pem = readFileSync(path, "utf8");
  } catch (err) {
    // Only an absent key means "hashes only": one that cannot be read must not switch the check off.
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new UpdateFailed(`${path}: cannot read it (${(err as NodeJS.ErrnoException).code}); fix it or remove it`);
  }
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch {
    throw new UpdateFailed(`${path}: not an Ed25519 public key (PEM, as openssl pkey -pubout writes it)`);
  }
  if (key.asymmetricKeyType !== "ed25519") {
    throw new UpdateFailed(`${path}: not an Ed25519 public key (PEM, as openssl pkey -pubout writes it)`);
  }
  return key;
}

function updater(g: Globals): Updater {
  return new Updater({
    root: g.root,
    service: systemdService(process.env.PAYLANE_SYSTEMCTL || "systemctl"),
    probe: httpProbe(g.healthUrl),
    clock: wallClock,
    target: { platform: process.platform, arch: process.arch, signingKey: signingKey(g.root) },
    installModules: npmCi,
    // A test root is not the read-only root's overlay, whatever holds it.
    volatile: g.root === "/" ? volatileRoot : undefined,
    log: (line) => process.stderr.write(`${NAME}: ${line}\n`),
    deadlineMs: g.deadline,
    settleMs: g.settle,
  });
}

function report(o: Outcome): void {
  const lines: Record<Outcome["outcome"], () => string> = {
    updated: () => (o.outcome === "updated" ? `updated to ${o.to} (was ${o.from ?? "none"})` : ""),
    unchanged: () => (o.outcome === "unchanged" ? `already at ${o.to}` : ""),
    "rolled-back": () =>
      o.outcome === "rolled-back"
        ? `ROLLED BACK: ${o.to} failed (${o.reason}); ${o.from} is current again${o.previousHealthy ? " and healthy" : " but NOT healthy"}`
        : "",
    "nothing-pending": () => "no interrupted update",
  };
  process.stdout.write(`${lines[o.outcome]()}\n`);
  if (o.outcome === "rolled-back") process.exitCode = o.previousHealthy ? EXIT_CODES.rolledBack : EXIT_CODES.failed;
}

const program = new Command(NAME)
  .description(
    "Updates this kiosk's PayLane release from an update bundle (paylane-provision bundle build): the release is " +
      "checked and installed beside the current one, /opt/paylane/current is switched to it atomically and the " +
      "daemon restarted; unless the daemon then answers /healthz, the previous release is switched back and " +
      "restarted. The journal and config in /var/lib/paylane are never touched.",
  )
  .version(pkg.version, "-V, --version", "print the version and exit")
  .helpOption("-h, --help", "print this help and exit")
  .addOption(new Option("--root <dir>", "the file system root the kiosk lives under").env("PAYLANE_ROOT").default("/"))
  .addOption(
    new Option("--health-url <url>", "the daemon's liveness endpoint")
      .argParser(httpUrl)
      .default("http://127.0.0.1:8081/healthz"),
  )
  .addOption(
    new Option("--deadline <duration>", "how long the daemon has to become healthy after a restart")
      .argParser(seconds)
      .default(90_000, "90s"),
  )
  .addOption(
    new Option("--settle <duration>", "how long it must stay healthy before the release is kept")
      .argParser(seconds)
      .default(10_000, "10s"),
  )
  .showHelpAfterError(false)
  .configureOutput({
    outputError: (text, write) => write(`${NAME}: ${text.replace(/^error: /, "").trim()} (see ${NAME} --help)\n`),
  })
  .exitOverride((err) => {
    process.exit(err.exitCode === 0 ? 0 : EXIT_CODES.usage);
  })
  .addHelpText(
    "after",
    `
Layout:
  /opt/paylane/releases/<id>/     one release each (the daemon, the UI, node_modules); two are kept
  /opt/paylane/current            symlink to the running release (paylane-device.service starts it)
  /opt/paylane/update-state.json  current, previous, a pending update, the last outcome
  /etc/paylane/update-signing.pub when present: only bundles signed with its Ed25519 key are accepted

Environment:
  PAYLANE_ROOT       as --root
  PAYLANE_SYSTEMCTL  the systemctl to restart paylane-device.service with (default systemctl)

Exit codes:
  0 updated, or nothing to do · 1 failed · 2 bad usage · 3 bundle refused (nothing was changed)
  4 rolled back: the new release failed its health check, the previous one runs again

Examples:
  # install an update, keep it only if the daemon is healthy on it
  $ sudo paylane-update apply paylane-kiosk-1.1.0-linux-arm64.tar.gz --sha256 <hex from the release page>

  # what runs, what would be rolled back to, what happened last
  $ paylane-update status`,
  );

const globals = () => program.opts<Globals>();

program
  .command("apply <bundle>")
  .description("install the bundle as a new release, switch to it, roll back unless the daemon is healthy on it")
  .option("--sha256 <hex>", "the bundle's expected SHA-256 (refused if it differs)", sha256Flag)
  .option(
    "--allow-downgrade",
    "install a bundle older than the current release (refused otherwise: an old signed bundle keeps its old flaws)",
  )
  .action(async (bundle: string, flags: { sha256?: string; allowDowngrade?: boolean }) => {
    report(await updater(globals()).apply(bundle, flags.sha256, { allowDowngrade: flags.allowDowngrade === true }));
  });

program
  .command("verify <bundle>")
  .description("check a bundle (format, architecture, every file's hash) without installing it")
  .action(async (bundle: string) => {
    const m = await updater(globals()).verify(bundle);
    process.stdout.write(
      `${bundle}: release ${m.id} for ${m.platform}-${m.arch}, ${m.files.length} files, all hashes match\n`,
    );
  });

program
  .command("status")
  .description("the current and previous release, a pending update, the last outcome (JSON)")
  .action(async () => {
    const u = updater(globals());
    const state = await u.state();
    process.stdout.write(`${JSON.stringify({ ...state, symlink: await u.currentRelease() }, null, 2)}\n`);
  });

program
  .command("recover")
  .description(
    "finish an update a power cut interrupted: keep the new release if healthy, else roll back (run at boot)",
  )
  .action(async () => {
    report(await updater(globals()).recover());
  });

program
  .command("rollback")
  .description("switch back to the previous release (health-checked like an update)")
  .action(async () => {
    report(await updater(globals()).rollback());
  });

program.parseAsync().catch((err: unknown) => {
  const refused = err instanceof BundleRefused;
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(
    `${NAME}: ${refused ? "refused: " : ""}${message.replace(/\s*\n\s*/g, "; ")}${refused ? " (nothing was changed)" : ""}\n`,
  );
  process.exitCode = refused ? EXIT_CODES.refused : err instanceof UpdateFailed ? EXIT_CODES.failed : EXIT_CODES.failed;
});
