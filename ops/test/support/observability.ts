/**
 * What the observability tests read from ops/: the Grafana dashboards and
 * their PromQL, the alert rules and their promtool unit tests, and the metric
 * names a query selects (parsed with Prometheus' own Lezer grammar), and how
 * Debian's promtool and amtool are run on them.
 */
import { execFile } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { parser } from "@prometheus-io/lezer-promql";
import { parse as parseYaml } from "yaml";

export const root = resolve(import.meta.dirname, "../../..");
export const grafanaDir = join(root, "ops/grafana");
export const prometheusDir = join(root, "ops/prometheus");
export const alertmanagerConfig = join(root, "ops/alertmanager/alertmanager.yml");

const run = promisify(execFile);

/** Runs a tool; resolves with its output whatever the exit code, so a test can show what it said. */
export async function tool(command: string, args: string[]): Promise<{ code: number; stdout: string; output: string }> {
  try {
    const { stdout, stderr } = await run(command, args, { cwd: root, maxBuffer: 16 * 1024 * 1024 });
    return { code: 0, stdout, output: `${stdout}${stderr}` };
  } catch (err) {
    const e = err as { code?: number | string; stdout?: string; stderr?: string; message: string };
    if (e.code === "ENOENT") {
      throw new Error(`${command} is not installed: apt-get install prometheus prometheus-alertmanager`);
    }
    const stdout = e.stdout ?? "";
    return { code: typeof e.code === "number" ? e.code : 1, stdout, output: `${stdout}${e.stderr ?? e.message}` };
  }
}

// ---------------------------------------------------------------- dashboards

export interface Target {
  refId: string;
  expr: string;
  datasource?: unknown;
}
export interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: unknown;
  targets?: Target[];
  panels?: Panel[];
}
export interface Variable {
  name: string;
  type: string;
  query?: unknown;
  datasource?: unknown;
}
export interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: Variable[] };
}

export const DASHBOARDS = [
  "fleet-overview.json",
  "kiosk-detail.json",
  "ingest-delivery.json",
  "payments-exposure.json",
  "api.json",
];

export async function loadDashboards(): Promise<Map<string, Dashboard>> {
  const files = (await readdir(grafanaDir)).filter((f) => f.endsWith(".json")).sort();
  const out = new Map<string, Dashboard>();
  for (const f of files) {
    const text = await readFile(join(grafanaDir, f), "utf8");
    try {
      out.set(f, JSON.parse(text) as Dashboard);
    } catch (err) {
      throw new Error(`ops/grafana/${f} is not valid JSON: ${(err as Error).message}`);
    }
  }
  return out;
}

/** Every panel, rows' nested panels included. */
export function allPanels(d: Dashboard): Panel[] {
  return d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

/**
 * Grafana's variables replaced by values Prometheus parses, as Grafana would
 * send them: `$site` and `$device` inside a matcher's quotes, the interval
 * variables by a duration.
 */
export function substitute(expr: string): string {
  return expr
    .replaceAll("$__rate_interval", "1m")
    .replaceAll("$__interval", "1m")
    .replaceAll("$__range", "1h")
    .replace(/\$\{?(site|device)\}?/g, "demo")
    .replaceAll(DATASOURCE_VARIABLE, "prometheus");
}

/** How a panel names its data source: Grafana's variable, never a UID. */
// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a JS template
export const DATASOURCE_VARIABLE = "${datasource}";

/** Each panel query of a dashboard: where it is and its substituted PromQL. */
export function dashboardQueries(file: string, d: Dashboard): { where: string; expr: string; raw: string }[] {
  const out: { where: string; expr: string; raw: string }[] = [];
  for (const p of allPanels(d)) {
    for (const t of p.targets ?? []) {
      out.push({ where: `${file} panel ${p.id} "${p.title}" ${t.refId}`, expr: substitute(t.expr), raw: t.expr });
    }
  }
  return out;
}

/** Every datasource reference in a JSON value, with where it is. */
export function datasourceRefs(value: unknown, path = ""): { path: string; ref: unknown }[] {
  if (Array.isArray(value)) return value.flatMap((v, i) => datasourceRefs(v, `${path}[${i}]`));
  if (value === null || typeof value !== "object") return [];
  const out: { path: string; ref: unknown }[] = [];
  for (const [k, v] of Object.entries(value)) {
    if (k === "datasource") out.push({ path: `${path}.${k}`, ref: v });
    out.push(...datasourceRefs(v, `${path}.${k}`));
  }
  return out;
}

// ---------------------------------------------------------------- PromQL

/** Metric names a PromQL expression selects (vector selectors' names), from Prometheus' Lezer grammar. */
export function metricNames(expr: string): string[] {
  const names = new Set<string>();
  const tree = parser.parse(expr);
  tree.iterate({
    enter(node) {
      if (node.name === "Identifier" && node.node.parent?.name === "VectorSelector") {
        names.add(expr.slice(node.from, node.to));
      }
      if (node.name === "UnquotedLabelMatcher" || node.name === "QuotedLabelMatcher") {
        // {__name__="x"}
        const text = expr.slice(node.from, node.to);
        const m = /^__name__\s*=\s*"([^"]+)"$/.exec(text);
        if (m) names.add(m[1]!);
      }
    },
  });
  return [...names].sort();
}

/** Series Prometheus makes itself: not exported by any PayLane service. */
export const PROMETHEUS_OWN = new Set(["up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds"]);

/** Names a Prometheus text exposition declares (# TYPE lines), with a histogram's and summary's series. */
export function exposedNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [, name, type] = m as unknown as [string, string, string];
    names.add(name);
    if (type === "histogram") for (const s of ["_bucket", "_sum", "_count"]) names.add(name + s);
    if (type === "summary") for (const s of ["_sum", "_count"]) names.add(name + s);
  }
  return names;
}

// ---------------------------------------------------------------- rules and their tests

export interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export async function loadRules(): Promise<Rule[]> {
  const doc = parseYaml(await readFile(join(prometheusDir, "rules.yml"), "utf8")) as {
    groups: { name: string; rules: Rule[] }[];
  };
  return doc.groups.flatMap((g) => g.rules);
}

export interface RuleTestFile {
  file: string;
  rule_files: string[];
  tests: {
    name?: string;
    alert_rule_test?: { eval_time: string; alertname: string; exp_alerts?: unknown[] | null }[];
  }[];
}

export async function loadRuleTests(): Promise<RuleTestFile[]> {
  const dir = join(prometheusDir, "tests");
  const files = (await readdir(dir)).filter((f) => f.endsWith(".yml") || f.endsWith(".yaml")).sort();
  return Promise.all(
    files.map(async (f) => ({ file: join(dir, f), ...(parseYaml(await readFile(join(dir, f), "utf8")) as object) })),
  ) as Promise<RuleTestFile[]>;
}

/** promtool's durations (1h30m, 90s, 2d) in seconds. */
export function seconds(duration: string): number {
  const units: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400, w: 604800, y: 31536000 };
  let total = 0;
  let rest = duration;
  while (rest.length > 0) {
    const m = /^(\d+)(ms|s|m|h|d|w|y)/.exec(rest);
    if (!m) throw new Error(`not a duration: ${duration}`);
    total += Number(m[1]) * units[m[2]!]!;
    rest = rest.slice(m[0].length);
  }
  return total;
}

export interface Coverage {
  fires: string[];
  doesNotFire: string[];
  resolves: string[];
}

/**
 * Per alert, the test cases that show it: `fires` (an expected alert),
 * `doesNotFire` (no alert expected in a test before it ever fires there, or in
 * a test where it never fires), `resolves` (no alert expected after it fired in
 * the same test).
 */
export function coverage(files: RuleTestFile[]): Map<string, Coverage> {
  const out = new Map<string, Coverage>();
  const of = (alert: string) => {
    const c = out.get(alert) ?? { fires: [], doesNotFire: [], resolves: [] };
    out.set(alert, c);
    return c;
  };
  for (const f of files) {
    for (const [i, t] of (f.tests ?? []).entries()) {
      const name = `${f.file.slice(root.length + 1)} test ${i + 1}${t.name ? ` "${t.name}"` : ""}`;
      const cases = [...(t.alert_rule_test ?? [])].sort((a, b) => seconds(a.eval_time) - seconds(b.eval_time));
      const firedAt = new Map<string, number>();
      for (const c of cases) {
        const at = seconds(c.eval_time);
        const where = `${name} at ${c.eval_time}`;
        if ((c.exp_alerts ?? []).length > 0) {
          of(c.alertname).fires.push(where);
          if (!firedAt.has(c.alertname)) firedAt.set(c.alertname, at);
        } else if (firedAt.has(c.alertname) && at > firedAt.get(c.alertname)!) {
          of(c.alertname).resolves.push(where);
        } else {
          of(c.alertname).doesNotFire.push(where);
        }
      }
    }
  }
  return out;
}
