/** `npm start`'s runner (scripts/site.ts) as a child process, its output collected: how a user starts a site. */
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";

const root = join(import.meta.dirname, "..", "..");

export interface SiteProcess {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

/**
 * Starts the site with `env` over this process's environment. The external-service URLs are cleared first,
 * so a developer's exported DATABASE_URL or MQTT_URL never points a test's site at their own services.
 */
export function startSiteProcess(env: Record<string, string>, args: string[] = []): SiteProcess {
  const child = spawn(process.execPath, ["--import", "tsx", join(root, "scripts/site.ts"), ...args], {
    cwd: root,
    env: { ...process.env, MQTT_URL: "", DATABASE_URL: "", REDIS_URL: "", LOG_LEVEL: "warn", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.on("data", (d) => {
    out += d;
  });
  child.stderr?.on("data", (d) => {
    out += d;
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { child, output: () => out, exited };
}
