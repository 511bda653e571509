/**
 * The observability files in ops/ checked by the tools that will load them
 * (issue 18): Debian's promtool on the Prometheus config, the alert rules and
 * their unit tests, amtool on the Alertmanager config and its routes; the
 * Grafana dashboards' JSON, variables and PromQL. Which metric names the
 * queries use is checked against live services in observability-live.test.ts.
 */
import { copyFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { parse as parseYaml } from "yaml";
import {
  alertmanagerConfig,
  allPanels,
  type Coverage,
  coverage,
  DASHBOARDS,
  DATASOURCE_VARIABLE,
  dashboardQueries,
  datasourceRefs,
  loadDashboards,
  loadRules,
  loadRuleTests,
  metricNames,
  prometheusDir,
  type Rule,
  root,
  substitute,
  tool,
} from "./support/observability.ts";

/** What a rule lacks: its severity, annotations, or a test case of each kind. */
function problems(rules: Rule[], cov: Map<string, Coverage>, anchors: Set<string>): string[] {
  const out: string[] = [];
  for (const r of rules) {
    const name = r.alert ?? r.record ?? "(unnamed)";
    if (!r.alert) continue;
    if (!["critical", "warning"].includes(r.labels?.severity ?? ""))
      out.push(`${name}: labels.severity must be critical or warning`);
    for (const a of ["summary", "description", "runbook_url"]) {
      if (!r.annotations?.[a]) out.push(`${name}: no annotations.${a}`);
    }
    const anchor = /^docs\/operations\.md#(.+)$/.exec(r.annotations?.runbook_url ?? "")?.[1];
    if (!anchor) out.push(`${name}: runbook_url must be docs/operations.md#<anchor>`);
    else if (!anchors.has(anchor)) out.push(`${name}: docs/operations.md has no heading with anchor #${anchor}`);
    const c = cov.get(r.alert);
    if (!c?.fires.length) out.push(`${name}: no promtool test case where it fires`);
    if (!c?.doesNotFire.length) out.push(`${name}: no promtool test case where it does not fire`);
    if (!c?.resolves.length) out.push(`${name}: no promtool test case where it resolves after firing`);
  }
  const names = new Set(rules.map((r) => r.alert));
  for (const alert of cov.keys())
    if (!names.has(alert)) out.push(`tests name ${alert}, which no rule in rules.yml has`);
  return out;
}

/** GitHub's anchors for the headings of a Markdown file. */
async function markdownAnchors(path: string): Promise<Set<string>> {
  const text = await readFile(path, "utf8").catch(() => "");
  const anchors = new Set<string>();
  for (const m of text.matchAll(/^#{1,6} (.+)$/gm)) {
    anchors.add(
      m[1]!
        .trim()
        .toLowerCase()
        .replace(/[^\p{L}\p{N} _-]/gu, "")
        .replace(/ /g, "-"),
    );
  }
  return anchors;
}

test("promtool check config: the Prometheus config, its scrape jobs and rule file", async () => {
  // the bearer token file the cloud's job names must exist for promtool; a stand-in in a copy
  const dir = await mkdtemp(join(tmpdir(), "paylane-prom-"));
  try {
    await copyFile(join(prometheusDir, "prometheus.yml"), join(dir, "prometheus.yml"));
    await copyFile(join(prometheusDir, "rules.yml"), join(dir, "rules.yml"));
    await writeFile(join(dir, "paylane-metrics-token"), "stand-in\n", { mode: 0o600 });
    const r = await tool("promtool", ["check", "config", join(dir, "prometheus.yml")]);
    assert.is(r.code, 0, r.output);
    assert.match(r.output, /is valid prometheus config file/);
    const config = parseYaml(await readFile(join(prometheusDir, "prometheus.yml"), "utf8")) as {
      scrape_configs: { job_name: string }[];
      rule_files: string[];
      alerting: { alertmanagers: unknown[] };
    };
    assert.equal(
      config.scrape_configs.map((s) => s.job_name),
      ["paylane-gateway", "paylane-cloud"],
    );
    assert.equal(config.rule_files, ["rules.yml"]);
    assert.is(config.alerting.alertmanagers.length, 1);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("promtool check rules: every rule parses", async () => {
  const rules = await loadRules();
  const r = await tool("promtool", ["check", "rules", join(prometheusDir, "rules.yml")]);
  assert.is(r.code, 0, r.output);
  assert.match(r.output, `SUCCESS: ${rules.length} rules found`);
});

test("promtool test rules: every unit test passes", async () => {
  const files = await loadRuleTests();
  assert.ok(files.length > 0, "no test files in ops/prometheus/tests");
  const r = await tool("promtool", ["test", "rules", ...files.map((f) => f.file)]);
  assert.is(r.code, 0, r.output);
  assert.is([...r.output.matchAll(/^\s+SUCCESS$/gm)].length, files.length, r.output);
});

test("every alert has a severity, a summary, a description, a runbook in docs/operations.md, and tests that fire, do not fire and resolve", async () => {
  const rules = await loadRules();
  const expected = [
    "KioskOffline",
    "KioskBacklogGrowing",
    "KioskOldestUnackedHigh",
    "KioskPaperOut",
    "KioskExposureNearCap",
    "IngestStalled",
    "IngestGapUnresolved",
    "ApiErrorRatioHigh",
    "ScrapeTargetDown",
    "BackupOverdue",
    "BackupNeverSucceeded",
    "WalArchivingFailing",
  ];
  assert.equal(rules.map((r) => r.alert).sort(), [...expected].sort(), "the alerts issue 18 lists");
  const files = await loadRuleTests();
  for (const f of files) assert.equal(f.rule_files, ["../rules.yml"], `${f.file} tests the project's rules`);
  const anchors = await markdownAnchors(join(root, "docs/operations.md"));
  assert.equal(problems(rules, coverage(files), anchors), []);
});

test("the coverage check refuses a new rule without tests, and a test that never resolves", async () => {
  const rules = await loadRules();
  const files = await loadRuleTests();
  const anchors = await markdownAnchors(join(root, "docs/operations.md"));
  const added: Rule = {
    alert: "KioskOnFire",
    expr: "paylane_kiosk_temperature_celsius > 80",
    labels: { severity: "critical" },
    annotations: { summary: "hot", description: "hot", runbook_url: "docs/operations.md#kioskoffline" },
  };
  assert.equal(problems([...rules, added], coverage(files), anchors), [
    "KioskOnFire: no promtool test case where it fires",
    "KioskOnFire: no promtool test case where it does not fire",
    "KioskOnFire: no promtool test case where it resolves after firing",
  ]);
  // KioskOffline's tests without their last (resolving) case
  const cut = files.map((f) => ({
    ...f,
    tests: f.tests.map((t) => ({
      ...t,
      alert_rule_test: t.alert_rule_test?.filter((c) => !(c.alertname === "KioskOffline" && c.eval_time === "16m")),
    })),
  }));
  assert.equal(problems(rules, coverage(cut), anchors), [
    "KioskOffline: no promtool test case where it resolves after firing",
  ]);
});

test("amtool check-config: the Alertmanager config; critical pages PagerDuty and the webhook, warning the webhook", async () => {
  const r = await tool("amtool", ["check-config", alertmanagerConfig]);
  assert.is(r.code, 0, r.output);
  assert.match(r.output, /SUCCESS/);
  const route = async (...labels: string[]) =>
    (
      await tool("amtool", ["config", "routes", "test", `--config.file=${alertmanagerConfig}`, ...labels])
    ).stdout.trim();
  assert.is(
    await route("alertname=KioskOffline", "severity=critical", "site=demo", "device=k1"),
    "pagerduty-and-webhook",
  );
  assert.is(await route("alertname=KioskBacklogGrowing", "severity=warning", "site=demo", "device=k1"), "ops-webhook");
  const config = parseYaml(await readFile(alertmanagerConfig, "utf8")) as {
    receivers: { name: string; pagerduty_configs?: Record<string, unknown>[]; webhook_configs?: unknown[] }[];
  };
  const pd = config.receivers.flatMap((x) => x.pagerduty_configs ?? []);
  assert.is(pd.length, 1);
  assert.ok(pd[0]!.routing_key_file, "the Events v2 routing key is read from a file");
  const text = await readFile(alertmanagerConfig, "utf8");
  assert.not.match(text, /^\s*(routing_key|service_key|credentials|bearer_token|password):/m, "no inline secret");
  for (const x of config.receivers) assert.ok(x.webhook_configs?.length, `${x.name} also goes to the webhook`);
});

test("the dashboards: valid JSON, a datasource variable, no hard-coded datasource UID, the variables each needs", async () => {
  const boards = await loadDashboards();
  assert.equal([...boards.keys()].sort(), [...DASHBOARDS].sort());
  const uids = new Set<string>();
  for (const [file, d] of boards) {
    assert.ok(d.uid && !uids.has(d.uid), `${file}: a uid of its own`);
    uids.add(d.uid);
    const vars = new Map(d.templating.list.map((v) => [v.name, v]));
    const ds = vars.get("datasource");
    assert.ok(ds, `${file}: a datasource variable`);
    assert.is(ds.type, "datasource", `${file}: the datasource variable picks a data source`);
    assert.is(ds.query, "prometheus", `${file}: of type prometheus`);
    for (const { path, ref } of datasourceRefs(d)) {
      // the built-in annotations query uses Grafana's own pseudo-datasource, which every Grafana has
      if (path.startsWith(".annotations")) continue;
      assert.equal(ref, { type: "prometheus", uid: DATASOURCE_VARIABLE }, `${file}${path}`);
    }
    for (const p of allPanels(d)) {
      if (p.type === "row") continue;
      assert.ok(p.targets?.length, `${file}: panel "${p.title}" has a query`);
    }
  }
  const detail = boards.get("kiosk-detail.json")!;
  const names = detail.templating.list.map((v) => v.name);
  assert.ok(names.includes("device") && names.includes("site"), "the kiosk detail picks a site and a device");
});

test("every dashboard query and variable query parses (promtool, as recording rules)", async () => {
  const boards = await loadDashboards();
  const rules: { record: string; expr: string }[] = [];
  const where: string[] = [];
  for (const [file, d] of boards) {
    for (const q of dashboardQueries(file, d)) {
      assert.not.match(q.expr, /\$/, `${q.where}: a variable left after substitution: ${q.expr}`);
      rules.push({ record: `dashboard:query:${rules.length}`, expr: q.expr });
      where.push(q.where);
    }
    for (const v of d.templating.list) {
      if (v.type !== "query") continue;
      const text = typeof v.query === "string" ? v.query : (v.query as { query: string }).query;
      const m = /^label_values\((.+),\s*(\w+)\)$/.exec(text);
      assert.ok(m, `${file}: variable ${v.name} is label_values(<selector>, <label>): ${text}`);
      rules.push({ record: `dashboard:query:${rules.length}`, expr: substitute(m[1]!) });
      where.push(`${file} variable ${v.name}`);
    }
  }
  assert.ok(rules.length > 60, `${rules.length} queries`);
  const dir = await mkdtemp(join(tmpdir(), "paylane-dash-"));
  try {
    const file = join(dir, "dashboards.yml");
    await writeFile(file, JSON.stringify({ groups: [{ name: "dashboards", rules }] }));
    const r = await tool("promtool", ["check", "rules", file]);
    // promtool names the failing rule by its index in the group: say which panel it is
    const named = r.output.replace(/dashboard:query:(\d+)/g, (_, i) => where[Number(i)]!);
    assert.is(r.code, 0, named);
    assert.match(r.output, `SUCCESS: ${rules.length} rules found`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  // and the grammar the metric names are read with agrees: it finds a name in every query
  for (const [file, d] of boards) {
    for (const q of dashboardQueries(file, d)) {
      assert.ok(metricNames(q.expr).length > 0, `${q.where}: no metric found in ${q.expr}`);
    }
  }
});

test("metricNames reads the selected series, not functions, labels or keywords", () => {
  assert.equal(
    metricNames(
      'histogram_quantile(0.95, sum by (le, route) (rate(paylane_http_request_duration_seconds_bucket{code=~"5.."}[1m]))) / on () up and ALERTS{alertstate="firing"} or {__name__="x_total"}',
    ),
    ["ALERTS", "paylane_http_request_duration_seconds_bucket", "up", "x_total"],
  );
  assert.equal(metricNames("time() - paylane_kiosk_last_seen_timestamp_seconds offset 5m"), [
    "paylane_kiosk_last_seen_timestamp_seconds",
  ]);
});

test.run();
