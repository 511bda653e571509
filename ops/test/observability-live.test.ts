import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { kioskPost } from "../../test/support/kiosk-api.ts";
import { freePortRun } from "../../test/support/private-mosquitto.ts";
import { type SiteProcess, startSiteProcess } from "../../test/support/site-process.ts";
import {
  dashboardQueries,
  exposedNames,
  loadDashboards,
  loadRules,
  metricNames,
  PROMETHEUS_OWN,
} from "./support/observability.ts";

const it = suite("observability, live");

/**
 * Polls `check` until it returns a value; a wall-clock deadline, since what
 * is waited for happens in other processes (Prometheus' scrape and rule
 * evaluation every 5 s). The site exiting ends the wait at once.
 */
async function until<T>(
  site: SiteProcess,
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  void site.exited.then(() => {
    exited = true;
  });
  let last: unknown;
  for (;;) {
    if (exited) throw new Error(`the site exited while waiting for ${what}:\n${site.output()}`);
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`no ${what} within ${timeoutMs / 1000} s${last ? ` (last: ${String(last)})` : ""}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function stopSite(site: SiteProcess): Promise<void> {
  if (site.child.exitCode !== null || site.child.signalCode !== null) return;
  site.child.kill("SIGINT");
  // The deadline is cleared once the site has exited: left pending, it held the test process 30 s after its last test.
  let deadline: NodeJS.Timeout | undefined;
  const code = await Promise.race([
    site.exited,
    new Promise((r) => {
      deadline = setTimeout(() => r("timeout"), 30_000);
    }),
  ]);
  clearTimeout(deadline);
  if (code === "timeout") site.child.kill("SIGKILL");
}

it("--prometheus without Prometheus installed is one line naming the package", async () => {
  const dir = await mkdtemp(join(tmpdir(), "paylane-prom-"));
  try {
    // a PATH with no prometheus on it (node is run by its absolute path)
    const site = startSiteProcess({ PAYLANE_DATA: dir, PATH: dir }, ["--prometheus"]);
    assert.is(await site.exited, 2, site.output());
    const lines = site.output().trim().split("\n");
    assert.is(lines.length, 1, site.output());
    assert.match(lines[0]!, /^npm start: --prometheus needs Prometheus.*apt-get install prometheus$/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

it("--prometheus-port without --prometheus, or not a port, is one line saying what to give", async () => {
  for (const [args, said] of [
    [["--prometheus-port", "9091"], /^npm start: --prometheus-port is Prometheus' port: give --prometheus too$/],
    [["--prometheus", "--prometheus-port", "99999"], /"99999" is not a port: give a number from 1 to 65535/],
  ] as const) {
    const site = startSiteProcess({ PAYLANE_DATA: join(tmpdir(), "paylane-never-made") }, [...args]);
    assert.is(await site.exited, 2, site.output());
    assert.is(site.output().trim().split("\n").length, 1, site.output());
    assert.match(site.output().trim(), said);
  }
});

it("npm start -- --prometheus: targets up, rules loaded, every dashboard and rule metric exposed, a stopped kiosk pending offline", async () => {
  const started = Date.now();
  const dir = await mkdtemp(join(tmpdir(), "paylane-prom-"));
  // MQTT, gateway HTTP, cloud, kiosks k1 and k2, Prometheus
  const base = await freePortRun(6);
  const port = { mqtt: base, gatewayHttp: base + 1, cloud: base + 2, kiosks: base + 3, prometheus: base + 5 };
  const site = startSiteProcess(
    {
      PAYLANE_DATA: dir,
      MQTT_PORT: String(port.mqtt),
      GATEWAY_HTTP_PORT: String(port.gatewayHttp),
      CLOUD_PORT: String(port.cloud),
      KIOSK_PORT_BASE: String(port.kiosks),
    },
    ["--prometheus", "--prometheus-port", String(port.prometheus)],
  );
  try {
    await until(site, '"PayLane site is running"', async () =>
      site.output().includes("PayLane site is running") ? true : undefined,
    );
    const phases: string[] = [];
    const phase = (name: string) => phases.push(`${name} ${Date.now() - started} ms`);
    phase("site running");
    const promUrl = `http://127.0.0.1:${port.prometheus}`;
    assert.match(site.output(), new RegExp(`Prometheus\\s+${promUrl.replaceAll(".", "\\.")}`), "prints its URL");
    const api = async <T>(path: string): Promise<T> => {
      const res = await fetch(`${promUrl}${path}`);
      const body = (await res.json()) as { status: string; data: T };
      if (body.status !== "success") throw new Error(`${path}: ${JSON.stringify(body)}`);
      return body.data;
    };

    // both targets up, from Prometheus' own API
    type Targets = { activeTargets: { labels: { job: string }; health: string; lastError: string }[] };
    const targets = await until(site, "both targets up in /api/v1/targets", async () => {
      const t = await api<Targets>("/api/v1/targets");
      const up = t.activeTargets.filter((x) => x.health === "up").map((x) => x.labels.job);
      return up.length === 2 ? t : undefined;
    });
    assert.equal(targets.activeTargets.map((t) => t.labels.job).sort(), ["paylane-cloud", "paylane-gateway"]);
    phase("targets up");

    // every rule of ops/prometheus/rules.yml loaded
    type Rules = { groups: { rules: { name: string; type: string; health: string }[] }[] };
    const loaded = (await api<Rules>("/api/v1/rules")).groups.flatMap((g) => g.rules);
    const rules = await loadRules();
    assert.equal(loaded.map((r) => r.name).sort(), rules.map((r) => r.alert).sort());
    assert.ok(loaded.every((r) => r.type === "alerting"));

    // some traffic: a check-in, a payment, operator reads, a refused read
    const k1 = join(dir, "kiosks", "k1");
    const tap = await (await kioskPost(port.kiosks, k1, "/api/sim/tap", { uid: "04A2B3C4" })).json();
    assert.is((tap as { outcome?: string }).outcome, "welcome", JSON.stringify(tap));
    await (await kioskPost(port.kiosks, k1, "/api/payments", { itemId: "coffee" })).json();
    const paid = (await (await kioskPost(port.kiosks, k1, "/api/sim/tap", { uid: "04B1C2D3" })).json()) as {
      outcome?: string;
    };
    assert.is(paid.outcome, "approved", JSON.stringify(paid));
    const cloud = `http://127.0.0.1:${port.cloud}`;
    const token = (await readFile(join(dir, "operator-token"), "utf8")).trim();
    for (const path of ["/api/v1/devices", "/api/v1/checkins", "/api/v1/devices/k1", "/api/v1/nothing-here"]) {
      await (await fetch(`${cloud}${path}`, { headers: { authorization: `Bearer ${token}` } })).arrayBuffer();
    }
    assert.is((await fetch(`${cloud}/api/v1/devices`, { headers: { authorization: "Bearer nope" } })).status, 401);

    // what the services expose, scraped as Prometheus does
    const metricsToken = (await readFile(join(dir, "metrics-token"), "utf8")).trim();
    const scrape = async () => {
      const gw = await (await fetch(`http://127.0.0.1:${port.gatewayHttp}/metrics`)).text();
      const cl = await (
        await fetch(`${cloud}/metrics`, { headers: { authorization: `Bearer ${metricsToken}` } })
      ).text();
      return { text: `${gw}\n${cl}`, names: new Set([...exposedNames(gw), ...exposedNames(cl)]) };
    };
    const wanted = new Map<string, string>();
    const boards = await loadDashboards();
    for (const [file, d] of boards) {
      for (const q of dashboardQueries(file, d)) for (const n of metricNames(q.expr)) wanted.set(n, q.where);
    }
    for (const r of rules) for (const n of metricNames(r.expr)) if (!wanted.has(n)) wanted.set(n, `rule ${r.alert}`);
    for (const n of PROMETHEUS_OWN) wanted.delete(n);
    // declared (# TYPE) is exposed: a labelled series has no sample until its first event (a gap, a
    // refusal), and kiosk telemetry comes every 30 s; presence is there from the kiosks' births
    const { text, names } = await until(site, "the kiosks' presence in the cloud's /metrics", async () => {
      const s = await scrape();
      return /^paylane_kiosk_up\{[^}]*device="k2"[^}]*\} 1$/m.test(s.text) ? s : undefined;
    });
    phase("scraped");
    const missing = [...wanted].filter(([n]) => !names.has(n)).map(([n, where]) => `${n} (${where})`);
    assert.equal(missing, [], `selected by a dashboard or rule, exposed by no service:\n${missing.join("\n")}`);
    assert.match(text, /^paylane_http_requests_total\{[^}]*code="401"/m, "the refused read is counted");
    assert.ok(wanted.size > 40, `${wanted.size} metric names checked`);

    // Prometheus holds the kiosks' series, and KioskOffline goes pending for a kiosk stopped with `kill <pid>`
    type Vector = { result: { metric: Record<string, string>; value: [number, string] }[] };
    await until(site, "paylane_kiosk_up for k1 and k2 in Prometheus", async () => {
      const v = await api<Vector>(`/api/v1/query?query=${encodeURIComponent("paylane_kiosk_up == 1")}`);
      return v.result.length === 2 ? true : undefined;
    });
    const k2pid = Number(/Kiosk k2\s+\S+\s+\(pid (\d+)\)/.exec(site.output())?.[1]);
    assert.ok(k2pid > 0, "prints k2's pid");
    phase("kiosks in Prometheus");
    process.kill(k2pid, "SIGTERM");
    type Alerts = { alerts: { labels: Record<string, string>; state: string }[] };
    const pending = await until(site, "KioskOffline pending for k2 in /api/v1/alerts", async () => {
      const a = await api<Alerts>("/api/v1/alerts");
      return a.alerts.find((x) => x.labels.alertname === "KioskOffline" && x.labels.device === "k2");
    });
    assert.is(pending.state, "pending", "it fires only after 5 minutes");
    assert.is(pending.labels.severity, "critical");
    phase("KioskOffline pending");
    console.log(`observability live: ${wanted.size} metric names exposed; ${phases.join(", ")}`);
  } finally {
    await stopSite(site);
    await rm(dir, { recursive: true, force: true });
  }
  // Prometheus stopped with the site: its port is closed
  const stillUp = await fetch(`http://127.0.0.1:${port.prometheus}/-/ready`).then(
    () => true,
    () => false,
  );
  assert.not.ok(stillUp, "Prometheus outlived the site");
});

it.run();
