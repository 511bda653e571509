/**
 * A PostgreSQL cluster on this machine, driven through Debian's own binaries
 * (initdb, pg_ctl, pg_basebackup): what the DR drills start, back up, restore,
 * kill and promote. Postgres refuses to run as root, so when we are root every
 * binary runs as the `postgres` user through runuser.
 */
import { execFile } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { appendFile, chown, mkdir, readFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** The newest PostgreSQL major installed from Debian's packages, e.g. /usr/lib/postgresql/15/bin. */
export function postgresBinDir(): string {
  const fromEnv = process.env.PG_BINDIR;
  if (fromEnv) return fromEnv;
  const root = "/usr/lib/postgresql";
  const majors = existsSync(root)
    ? readdirSync(root)
        .filter((v) => /^\d+$/.test(v))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  const newest = majors[0];
  if (newest === undefined)
    throw new Error(
      "no PostgreSQL server binaries in /usr/lib/postgresql: apt-get install postgresql (or set PG_BINDIR)",
    );
  return join(root, newest, "bin");
}

/** A TCP port free right now on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Whether nothing listens on 127.0.0.1:`port` right now (a restored cluster would fail to start there). */
export async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

const asRoot = process.getuid?.() === 0;
const OS_USER = "postgres";

/** Run one of the server binaries as the postgres OS user. */
export async function pgBinary(name: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const bin = join(postgresBinDir(), name);
  const [file, argv] = asRoot ? ["runuser", ["-u", OS_USER, "--", bin, ...args]] : [bin, args];
  try {
    const { stdout } = await run(file, argv, { env: { ...process.env, ...env }, maxBuffer: 16 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${name} ${args.join(" ")}: ${(e.stderr || e.message).trim()}`);
  }
}

/** A folder the postgres user owns (created if missing). */
export async function postgresOwnedDir(path: string): Promise<void> {
  await mkdir(path, { recursive: true, mode: 0o700 });
  if (asRoot) {
    const { stdout } = await run("id", ["-u", OS_USER]);
    const { stdout: gid } = await run("id", ["-g", OS_USER]);
    await chown(path, Number(stdout.trim()), Number(gid.trim()));
  }
}

export interface ClusterOptions {
  /** The data directory (PGDATA). */
  dataDir: string;
  port: number;
  /** Folder for the server's unix socket and log; defaults to the data directory's parent. */
  runDir?: string;
}

export class LocalCluster {
  readonly dataDir: string;
  readonly port: number;
  readonly runDir: string;

  constructor(o: ClusterOptions) {
    this.dataDir = o.dataDir;
    this.port = o.port;
    this.runDir = o.runDir ?? join(o.dataDir, "..");
  }

  get logFile(): string {
    return join(this.runDir, `postgres-${this.port}.log`);
  }

  /** libpq URL for this cluster as the postgres superuser over TCP. */
  url(database = "postgres"): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`;
  }

  /** initdb a new cluster (trust auth on loopback, replication allowed) with these extra settings. */
  async init(settings: Record<string, string | number> = {}): Promise<void> {
    await postgresOwnedDir(this.runDir);
    await postgresOwnedDir(this.dataDir);
    await pgBinary("initdb", ["-D", this.dataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-instructions"]);
    await this.configure({
      listen_addresses: "'127.0.0.1'",
      unix_socket_directories: `'${this.runDir}'`,
      wal_level: "replica",
      max_wal_senders: 10,
      fsync: "on",
      ...settings,
    });
  }

  /** Append settings to postgresql.auto.conf (read at the next start or reload). */
  async configure(settings: Record<string, string | number>): Promise<void> {
    const lines = Object.entries(settings).map(([k, v]) => `${k} = ${v}\n`);
    await appendFile(join(this.dataDir, "postgresql.auto.conf"), lines.join(""));
  }

  /** A streaming replica of `primary` in this cluster's data directory (pg_basebackup -R). */
  async cloneFrom(primary: LocalCluster, o: { applicationName?: string } = {}): Promise<void> {
    await postgresOwnedDir(this.runDir);
    await postgresOwnedDir(this.dataDir);
    await pgBinary("pg_basebackup", [
      "-h",
      "127.0.0.1",
      "-p",
      String(primary.port),
      "-U",
      "postgres",
      "-D",
      this.dataDir,
      "-X",
      "stream",
      "-R",
      "-c",
      "fast",
    ]);
    await this.configure({
      port: this.port,
      unix_socket_directories: `'${this.runDir}'`,
      primary_conninfo: `'host=127.0.0.1 port=${primary.port} user=postgres application_name=${o.applicationName ?? "replica"}'`,
    });
  }

  async start(): Promise<void> {
    await pgBinary("pg_ctl", [
      "-D",
      this.dataDir,
      "-l",
      this.logFile,
      "-o",
      `-p ${this.port}`,
      "-w",
      "-t",
      "60",
      "start",
    ]);
  }

  /** A clean stop (fast: active sessions are cut, everything committed is on disk). */
  async stop(): Promise<void> {
    if (!(await this.running())) return;
    await pgBinary("pg_ctl", ["-D", this.dataDir, "-m", "fast", "-w", "-t", "60", "stop"]);
  }

  /** kill -9 of the postmaster: the crash a failover drill starts from. Its backends exit on their own. */
  async kill(): Promise<void> {
    const pid = await this.postmasterPid();
    if (pid !== undefined) process.kill(pid, "SIGKILL");
  }

  /** Turn a standby into a primary and wait until it accepts writes. */
  async promote(): Promise<void> {
    await pgBinary("pg_ctl", ["-D", this.dataDir, "-w", "-t", "60", "promote"]);
  }

  async running(): Promise<boolean> {
    const pid = await this.postmasterPid();
    if (pid === undefined) return false;
    try {
      // A killed postmaster can linger as a zombie where nobody reaps orphans (PID 1 in a container).
      const stat = await readFile(`/proc/${pid}/stat`, "utf8");
      return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
    } catch {
      return false;
    }
  }

  private async postmasterPid(): Promise<number | undefined> {
    try {
      const text = await readFile(join(this.dataDir, "postmaster.pid"), "utf8");
      const pid = Number(text.split("\n")[0]);
      return Number.isInteger(pid) && pid > 0 ? pid : undefined;
    } catch {
      return undefined;
    }
  }
}
