/**
 * `npm start -- --prometheus`: Debian's Prometheus (`apt-get install
 * prometheus`) beside the site, with the project's alert rules
 * (ops/prometheus/rules.yml) and a config generated for this site's real
 * ports, its data in the site's data folder, so a newcomer sees the
 * dashboards' queries and the alerts work on a running fleet.
 *
 * The generated config has the production config's job names
 * (`paylane-gateway`, `paylane-cloud`) and a shorter interval (5 s), so a
 * kiosk stopped with `kill <pid>` shows as pending within seconds.
 */
import { accessSync, constants } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { delimiter, join, resolve } from "node:path";
import type { ChildSpec } from "./supervisor.ts";

export const RULES_FILE = resolve(import.meta.dirname, "../../ops/prometheus/rules.yml");

/** Where `prometheus` is on PATH (Debian: /usr/bin/prometheus), or undefined. */
export function findPrometheus(path = process.env.PATH ?? ""): string | undefined {
  for (const dir of path.split(delimiter).filter(Boolean)) {
    const candidate = join(dir, "prometheus");
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

export const PROMETHEUS_MISSING =
  "--prometheus needs Prometheus, which is not installed (no `prometheus` on PATH): apt-get install prometheus";

export interface PrometheusTargets {
  /** host:port of the gateway's /metrics listener; none when the site runs on an external broker. */
  gateway?: string;
  /** host:port of the cloud. */
  cloud: string;
  /** The file holding the cloud's METRICS_TOKEN (the site's data folder has one, 0600). */
  metricsTokenFile: string;
  /** Scrape and rule evaluation interval, e.g. `5s`. */
  interval?: string;
}

/** The config Prometheus runs with: JSON, which is YAML. */
export function prometheusConfig(t: PrometheusTargets): string {
  const interval = t.interval ?? "5s";
  const jobs: unknown[] = [];
  if (t.gateway) jobs.push({ job_name: "paylane-gateway", static_configs: [{ targets: [t.gateway] }] });
  jobs.push({
    job_name: "paylane-cloud",
    authorization: { type: "Bearer", credentials_file: t.metricsTokenFile },
    static_configs: [{ targets: [t.cloud] }],
  });
  return `${JSON.stringify(
    {
      global: {
        scrape_interval: interval,
        evaluation_interval: interval,
        external_labels: { deployment: "npm-start" },
      },
      rule_files: [RULES_FILE],
      scrape_configs: jobs,
    },
    null,
    2,
  )}\n`;
}

/** `preferred` when nothing listens there, else a port the system picks. */
export async function portFreeOr(preferred: number): Promise<number> {
  const tryListen = (port: number) =>
    new Promise<number | undefined>((done) => {
      const srv = createServer();
      srv.once("error", () => done(undefined));
      srv.listen(port, "127.0.0.1", () => {
        const got = (srv.address() as { port: number }).port;
        srv.close(() => done(got));
      });
    });
  return (await tryListen(preferred)) ?? (await tryListen(0))!;
}

export interface PrometheusPart {
  spec: ChildSpec;
  url: string;
  configPath: string;
}

/**
 * Writes the config into `<dataDir>/prometheus/` and returns the part the
 * supervisor runs: storage in `<dataDir>/prometheus/data`, listening on
 * 127.0.0.1:`port`, ready when `/-/ready` answers.
 */
export async function prometheusPart(o: {
  binary: string;
  dataDir: string;
  port: number;
  targets: PrometheusTargets;
  ready: (signal: AbortSignal, url: string) => Promise<void>;
}): Promise<PrometheusPart> {
  const dir = join(o.dataDir, "prometheus");
  await mkdir(join(dir, "data"), { recursive: true });
  const configPath = join(dir, "prometheus.yml");
  await writeFile(configPath, prometheusConfig(o.targets));
  const url = `http://127.0.0.1:${o.port}`;
  return {
    url,
    configPath,
    spec: {
      name: "prometheus",
      command: o.binary,
      args: [
        `--config.file=${configPath}`,
        `--storage.tsdb.path=${join(dir, "data")}`,
        // a demo's history: a day is plenty, and the data folder stays small
        "--storage.tsdb.retention.time=1d",
        `--web.listen-address=127.0.0.1:${o.port}`,
        `--web.external-url=${url}/`,
        "--log.level=warn",
      ],
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
      cwd: dir,
      policy: "restart",
      ready: (signal) => o.ready(signal, `${url}/-/ready`),
    },
  };
}
