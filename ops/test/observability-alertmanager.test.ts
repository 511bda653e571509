/**
 * ops/alertmanager/alertmanager.yml run by Debian's Alertmanager: a critical
 * alert reaches PagerDuty (an Events API v2 stand-in, with the routing key
 * read from its file) and the webhook (with its bearer token from its file),
 * a warning reaches the webhook only, and a resolve follows on both.
 *
 * The copy under test differs from the file only where a test must: the
 * receivers' URLs point at this test's HTTP server, the secret files are
 * stand-ins in a temp folder, and the group timings are a second instead of
 * 30 s / 5 min so the test does not wait on the wall clock for them.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { parse as parseYaml, stringify } from "yaml";
import { alertmanagerConfig } from "./support/observability.ts";

interface Received {
  path: string;
  authorization?: string;
  body: Record<string, unknown>;
}

type Receiver = {
  name: string;
  pagerduty_configs?: Record<string, unknown>[];
  webhook_configs?: Record<string, unknown>[];
};

test("critical pages PagerDuty (Events v2) and the webhook, warning only the webhook, and both resolve", async () => {
  const dir = await mkdtemp(join(tmpdir(), "paylane-am-"));
  const received: Received[] = [];
  let heard: () => void = () => {};
  const server = createServer(async (req: IncomingMessage, res) => {
    let text = "";
    for await (const chunk of req) text += chunk;
    received.push({ path: req.url ?? "", authorization: req.headers.authorization, body: JSON.parse(text) });
    heard();
    res.writeHead(202, { "content-type": "application/json" }).end('{"status":"success"}');
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const sink = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  let am: ChildProcess | undefined;
  try {
    // the production config with the test's URLs, secrets and timings
    const config = parseYaml(await readFile(alertmanagerConfig, "utf8")) as {
      route: Record<string, unknown>;
      receivers: Receiver[];
    };
    Object.assign(config.route, { group_wait: "1s", group_interval: "1s" });
    await writeFile(join(dir, "routing-key"), "pd-routing-key-for-test\n", { mode: 0o600 });
    await writeFile(join(dir, "webhook-token"), "webhook-token-for-test\n", { mode: 0o600 });
    for (const r of config.receivers) {
      for (const p of r.pagerduty_configs ?? []) {
        assert.ok(p.routing_key_file, "the routing key comes from a file");
        Object.assign(p, { routing_key_file: join(dir, "routing-key"), url: `${sink}/v2/enqueue` });
      }
      for (const w of r.webhook_configs ?? []) {
        const auth = (w.http_config as { authorization: { credentials_file: string } }).authorization;
        assert.ok(auth.credentials_file, "the webhook's token comes from a file");
        auth.credentials_file = join(dir, "webhook-token");
        w.url = `${sink}/webhook`;
      }
    }
    await writeFile(join(dir, "alertmanager.yml"), stringify(config));

    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, "127.0.0.1", () => {
        const p = (probe.address() as AddressInfo).port;
        probe.close(() => resolve(p));
      });
    });
    let log = "";
    am = spawn(
      "prometheus-alertmanager",
      [
        `--config.file=${join(dir, "alertmanager.yml")}`,
        `--storage.path=${join(dir, "data")}`,
        `--web.listen-address=127.0.0.1:${port}`,
        "--cluster.listen-address=",
        "--log.level=warn",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    am.stdout?.on("data", (d) => {
      log += d;
    });
    am.stderr?.on("data", (d) => {
      log += d;
    });
    const spawned = await Promise.race([
      once(am, "spawn").then(() => true),
      once(am, "error").then(([err]) => {
        throw new Error(`${(err as Error).message}: apt-get install prometheus-alertmanager`);
      }),
    ]);
    assert.ok(spawned);
    const api = `http://127.0.0.1:${port}/api/v2`;
    // ready: its API answers (a process that exited is said with its log)
    for (;;) {
      if (am.exitCode !== null) throw new Error(`alertmanager exited: ${log}`);
      const ok = await fetch(`${api}/status`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) break;
      await new Promise((r) => setTimeout(r, 100));
    }

    /** Resolves once `n` deliveries matching `pick` have arrived. */
    const delivered = async (what: string, pick: (r: Received) => boolean, n: number): Promise<Received[]> => {
      const deadline = Date.now() + 20_000;
      for (;;) {
        const got = received.filter(pick);
        if (got.length >= n) return got;
        if (Date.now() > deadline) {
          throw new Error(`no ${what} within 20 s; received: ${JSON.stringify(received, null, 1)}\n${log}`);
        }
        await new Promise<void>((r) => {
          heard = r;
          setTimeout(r, 500);
        });
      }
    };
    const alert = (name: string, severity: string, device: string, endsAt?: string) => ({
      labels: { alertname: name, severity, site: "demo", device, job: "paylane-cloud" },
      annotations: {
        summary: `${name} on demo/${device}`,
        description: "test",
        runbook_url: `docs/operations.md#${name.toLowerCase()}`,
      },
      startsAt: new Date(Date.now() - 60_000).toISOString(),
      ...(endsAt ? { endsAt } : {}),
    });
    const post = async (alerts: unknown[]) => {
      const res = await fetch(`${api}/alerts`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(alerts),
      });
      assert.is(res.status, 200, await res.text());
    };

    await post([alert("KioskOffline", "critical", "k1"), alert("KioskBacklogGrowing", "warning", "k2")]);
    const webhookFiring = (name: string) => (r: Received) =>
      r.path === "/webhook" &&
      r.body.status === "firing" &&
      (r.body.commonLabels as Record<string, string>).alertname === name;
    const [pd] = await delivered("PagerDuty trigger", (r) => r.path === "/v2/enqueue", 1);
    await delivered("webhook for the critical alert", webhookFiring("KioskOffline"), 1);
    const [warn] = await delivered("webhook for the warning", webhookFiring("KioskBacklogGrowing"), 1);

    // PagerDuty Events API v2: the key from the file, a trigger, the summary and the runbook
    assert.is(pd!.body.routing_key, "pd-routing-key-for-test");
    assert.is(pd!.body.event_action, "trigger");
    const payload = pd!.body.payload as { summary: string; severity: string; custom_details: Record<string, string> };
    assert.is(payload.summary, "KioskOffline on demo/k1");
    assert.is(payload.severity, "critical");
    assert.is(payload.custom_details.runbook, "docs/operations.md#kioskoffline");
    assert.equal(pd!.body.links, [{ href: "docs/operations.md#kioskoffline", text: "runbook" }]);
    // the webhook with its bearer token from the file
    assert.is(warn!.authorization, "Bearer webhook-token-for-test");
    // the warning never paged
    assert.is(received.filter((r) => r.path === "/v2/enqueue").length, 1, "one page: the critical alert only");

    // resolved: PagerDuty resolves the same incident, the webhook hears it
    await post([alert("KioskOffline", "critical", "k1", new Date().toISOString())]);
    const [, resolved] = await delivered("PagerDuty resolve", (r) => r.path === "/v2/enqueue", 2);
    assert.is(resolved!.body.event_action, "resolve");
    assert.is(resolved!.body.dedup_key, pd!.body.dedup_key, "the same incident");
    await delivered("webhook resolve", (r) => r.path === "/webhook" && r.body.status === "resolved", 1);
    assert.is(received.filter((r) => r.path === "/v2/enqueue").length, 2);
  } finally {
    am?.kill("SIGTERM");
    if (am && am.exitCode === null) await once(am, "exit");
    server.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test.run();
