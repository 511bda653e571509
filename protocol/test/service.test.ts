import { createServer } from "node:net";
import { Hono } from "hono";
import { Registry as MetricsRegistry } from "prom-client";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { listen, opsRoutes, PortInUseError, redactUrl } from "../src/service/index.ts";

test("a taken port is named together with the setting that moves it", async () => {
  const blocker = createServer();
  await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", () => r()));
  const port = (blocker.address() as { port: number }).port;
  try {
    await listen(new Hono(), { port, host: "127.0.0.1", setting: "CLOUD_PORT" });
    assert.unreachable("listen should have failed");
  } catch (err) {
    assert.instance(err, PortInUseError);
    assert.is((err as Error).message, `port ${port} on 127.0.0.1 is already in use; set CLOUD_PORT to another port`);
  } finally {
    blocker.close();
  }
});

test("listen reports the port it got and close frees it", async () => {
  const l = await listen(
    new Hono().get("/", (c) => c.text("hi")),
    { port: 0, host: "127.0.0.1", setting: "X" },
  );
  assert.is(await (await fetch(`http://127.0.0.1:${l.port}/`)).text(), "hi");
  await l.close();
  const again = await listen(new Hono(), { port: l.port, host: "127.0.0.1", setting: "X" });
  await again.close();
});

test("redactUrl hides passwords and keeps the rest", () => {
  assert.is(redactUrl("mqtt://svc:s3cret@broker:1883"), "mqtt://svc:***@broker:1883");
  assert.is(redactUrl("mqtt://broker:1883"), "mqtt://broker:1883");
  assert.not.match(redactUrl("postgres://u:hunter2@db/x"), /hunter2/);
  assert.is(redactUrl("not a url"), "(unparseable URL)");
});

test("healthz answers 503 when down, 200 when ok or degraded; metrics is Prometheus text", async () => {
  const metrics = new MetricsRegistry();
  let status: "ok" | "degraded" | "down" = "ok";
  const app = opsRoutes(() => ({ status }), metrics);
  assert.is((await app.request("/healthz")).status, 200);
  status = "degraded";
  assert.is((await app.request("/healthz")).status, 200);
  status = "down";
  const res = await app.request("/healthz");
  assert.is(res.status, 503);
  assert.equal(await res.json(), { status: "down" });
  const m = await app.request("/metrics");
  assert.match(m.headers.get("content-type") ?? "", /text\/plain/);
});

test("readyz sends work only when every dependency is ok: degraded and down answer 503", async () => {
  let status: "ok" | "degraded" | "down" = "ok";
  const app = opsRoutes(() => ({ status, database: { ok: status !== "down" } }), new MetricsRegistry());
  assert.is((await app.request("/readyz")).status, 200);
  status = "degraded";
  const degraded = await app.request("/readyz");
  assert.is(degraded.status, 503);
  assert.equal(await degraded.json(), { status: "degraded", database: { ok: true } });
  status = "down";
  assert.is((await app.request("/readyz")).status, 503);
});

test.run();
