/**
 * A private Mosquitto (the machine's real binary) on a free port, for tests
 * that restart the broker: the machine's shared Mosquitto is never touched.
 *
 * With `acl`, it runs the configuration `paylane-gateway mosquitto-config`
 * makes from a registry (identities, PBKDF2 hashes, the ACLs of acl.ts),
 * instead of an open broker that lets anyone do anything.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { appendFile, mkdir, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { writeMosquittoConfig } from "../../gateway/src/admin-cli.ts";

export interface MosquittoAcl {
  /** The registry file the configuration is made from. */
  registry: string;
  /** Plain secrets by username (`{site}/{device}`, `svc:cloud`, `ops:{id}`). */
  secrets: Readonly<Record<string, string>>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/**
 * `n` consecutive free ports below the ephemeral range (Linux: 32768+), for a
 * server that takes a base port and the ones after it (KIOSK_PORT_BASE): a
 * port from listen(0) is ephemeral, and the one after it can be taken at any
 * moment by some client's outgoing connection.
 */
export async function freePortRun(n: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 10_000);
    const held: Array<ReturnType<typeof createServer>> = [];
    let ok = true;
    for (let i = 0; i < n && ok; i++) {
      const srv = createServer();
      ok = await new Promise<boolean>((resolve) => {
        srv.once("error", () => resolve(false));
        srv.listen(base + i, "127.0.0.1", () => resolve(true));
      });
      if (ok) held.push(srv);
    }
    await Promise.all(held.map((s) => new Promise((resolve) => s.close(resolve))));
    if (ok) return base;
  }
  throw new Error(`no run of ${n} free ports found`);
}

export class PrivateMosquitto {
  #child: ChildProcess | undefined;
  readonly #dir: string;
  readonly #acl: MosquittoAcl | undefined;
  port = 0;

  constructor(dir: string, acl?: MosquittoAcl) {
    this.#dir = dir;
    this.#acl = acl;
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    if (!this.port) this.port = await freePort();
    const conf = this.#acl ? await this.#generated() : join(this.#dir, "mosquitto.conf");
    if (!this.#acl) {
      await writeFile(
        conf,
        `listener ${this.port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_type error\n`,
      );
    }
    const child = spawn("mosquitto", ["-c", conf], { stdio: ["ignore", "ignore", "pipe"] });
    this.#child = child;
    // A test process that dies must not leave its broker behind.
    const reap = () => child.kill("SIGKILL");
    process.once("exit", reap);
    child.once("exit", () => process.off("exit", reap));
    let stderr = "";
    child.stderr?.on("data", (d) => {
      stderr += d;
    });
    // Ready when the port accepts connections; Mosquitto has no readiness signal of its own.
    const { createConnection } = await import("node:net");
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`mosquitto exited: ${stderr}`);
      const ok = await new Promise<boolean>((resolve) => {
        const s = createConnection({ port: this.port, host: "127.0.0.1" });
        s.once("connect", () => {
          s.destroy();
          resolve(true);
        });
        s.once("error", () => resolve(false));
      });
      if (ok) return;
      if (Date.now() > deadline) throw new Error(`mosquitto did not listen on ${this.port}: ${stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** The generated configuration (made again at each start, so a changed registry applies on restart). */
  async #generated(): Promise<string> {
    const acl = this.#acl!;
    const out = join(this.#dir, "mosquitto-acl");
    await mkdir(out, { recursive: true });
    const secrets = join(out, "secrets.json");
    await writeFile(secrets, JSON.stringify(acl.secrets), { mode: 0o600 });
    // Secrets were made with the registry by the test: no need to pay scrypt for each again.
    await writeMosquittoConfig({ registry: acl.registry, secrets, out, port: this.port, verify: false });
    const conf = join(out, "mosquitto.conf");
    // Test-only lines: no persistence, errors only; as root, stay root so the 0700 temp folder stays readable.
    const root = process.getuid?.() === 0 ? "user root\n" : "";
    await appendFile(conf, `persistence false\nlog_type error\n${root}`);
    return conf;
  }

  /** kill -9: no clean shutdown, as in a crash. */
  async kill(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGKILL");
    await exited;
  }
}
