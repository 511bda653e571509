/**
 * The HTTP RED middleware on a small Hono app shaped like the API (a sub-app
 * mounted at "/", wildcard middleware, a guard that refuses before the
 * handler): the route label is the matched pattern, and each refused
 * authentication is counted under its reason.
 */
import { problemResponse } from "@paylane/protocol";
import { Hono } from "hono";
import { Registry as MetricsRegistry } from "prom-client";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { httpMetrics, noteAuthFailure } from "../src/metrics/http-metrics.ts";

const test = suite("http metrics");

function app(registry: MetricsRegistry): Hono {
  const app = new Hono();
  app.use(httpMetrics(registry));
  app.use("/api/v1/*", async (_c, next) => next());
  const devices = new Hono();
  devices.get("/api/v1/devices/:site/:device", (c) => c.json({ device: c.req.param("device") }));
  devices.use("/api/v1/secret/*", async (c, next) => {
    const auth = c.req.header("authorization");
    if (!auth) {
      noteAuthFailure(c, "missing-token");
      return problemResponse(
        { title: "Unauthorized", status: 401, detail: "operator token required" },
        { "www-authenticate": 'Bearer realm="paylane"' },
      );
    }
    if (auth === "Bearer old") {
      noteAuthFailure(c, "expired-token");
      return problemResponse(
        { title: "Unauthorized", status: 401, detail: "operator token refused: the token has expired (exp)" },
        { "www-authenticate": 'Bearer realm="paylane", error="invalid_token"' },
      );
    }
    if (auth.startsWith("Basic")) {
      noteAuthFailure(c, "bad-device-credentials");
      return problemResponse(
        {
          title: "Unauthorized",
          status: 401,
          detail: "device credentials required (HTTP Basic, {site}/{device}:secret)",
        },
        { "www-authenticate": 'Basic realm="paylane"' },
      );
    }
    return next();
  });
  devices.get("/api/v1/secret/:id", (c) => c.text("ok"));
  devices.post("/api/v1/auth/login", (c) => {
    noteAuthFailure(c, c.req.header("x-locked") ? "locked-out" : "bad-password");
    return c.req.header("x-locked")
      ? problemResponse({ title: "Too many requests", status: 429, detail: "too many failed logins" })
      : problemResponse({ title: "Unauthorized", status: 401, detail: "the username or the password is wrong" });
  });
  // A 401 that is no refused authentication (an upstream's answer passed on) names no reason and is not counted.
  devices.get("/api/v1/upstream", () =>
    problemResponse({ title: "Unauthorized", status: 401, detail: "operator token refused: upstream" }),
  );
  devices.get("/boom", () => {
    throw new Error("boom");
  });
  app.route("/", devices);
  app.onError(() => problemResponse({ title: "Internal Server Error", status: 500, detail: "see the log" }));
  return app;
}

async function count(registry: MetricsRegistry, name: string, labels: Record<string, string>): Promise<number> {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === name);
  const values = (metric?.values ?? []) as Array<{ labels: Record<string, string | number>; value: number }>;
  const found = values.filter((v) => Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want));
  return found.reduce((n, v) => n + v.value, 0);
}

test("the route label is the matched pattern of the handler, never the path; no handler is unmatched", async () => {
  const registry = new MetricsRegistry();
  const a = app(registry);
  assert.is((await a.request("/api/v1/devices/s1/k1")).status, 200);
  assert.is((await a.request("/api/v1/devices/s1/k2")).status, 200);
  assert.is((await a.request("/api/v1/members/04A2B3C4")).status, 404);
  assert.is((await a.request("/boom")).status, 500);
  assert.is((await a.request("/api/v1/devices/s1/k1", { method: "BREW" })).status, 404);
  const requests = "paylane_http_requests_total";
  assert.is(await count(registry, requests, { route: "/api/v1/devices/:site/:device", code: "200" }), 2);
  assert.is(await count(registry, requests, { route: "unmatched", method: "GET", code: "404" }), 1);
  assert.is(await count(registry, requests, { route: "/boom", code: "500" }), 1);
  assert.is(await count(registry, requests, { route: "unmatched", method: "other" }), 1);
  const routes = ((await registry.getMetricsAsJSON()).find((m) => m.name === requests)?.values ?? []).map((v) =>
    String(v.labels.route),
  );
  assert.equal([...new Set(routes)].sort(), ["/api/v1/devices/:site/:device", "/boom", "unmatched"]);
});

test("a refusal by a guard before its handler counts under the handler's route, with its reason", async () => {
  const registry = new MetricsRegistry();
  const a = app(registry);
  assert.is((await a.request("/api/v1/secret/1")).status, 401);
  assert.is((await a.request("/api/v1/secret/1", { headers: { authorization: "Bearer old" } })).status, 401);
  assert.is((await a.request("/api/v1/secret/1", { headers: { authorization: "Basic eDp5" } })).status, 401);
  assert.is((await a.request("/api/v1/secret/1", { headers: { authorization: "Bearer good" } })).status, 200);
  const login = (locked: boolean) =>
    a.request("/api/v1/auth/login", { method: "POST", headers: locked ? { "x-locked": "1" } : {} });
  assert.is((await login(false)).status, 401);
  assert.is((await login(true)).status, 429);
  assert.is((await a.request("/api/v1/upstream")).status, 401);
  const failures = "paylane_api_auth_failures_total";
  for (const reason of ["missing-token", "expired-token", "bad-device-credentials", "bad-password", "locked-out"])
    assert.is(await count(registry, failures, { reason }), 1, reason);
  assert.is(await count(registry, failures, {}), 5, "the accepted request is no failure");
  assert.is(await count(registry, "paylane_http_requests_total", { route: "/api/v1/secret/:id", code: "401" }), 3);
});

test("made twice on one registry (an API app built again), it keeps counting on the same series", async () => {
  const registry = new MetricsRegistry();
  await app(registry).request("/api/v1/devices/s1/k1");
  await app(registry).request("/api/v1/devices/s1/k1");
  assert.is(await count(registry, "paylane_http_requests_total", { route: "/api/v1/devices/:site/:device" }), 2);
  const histogram = (await registry.getMetricsAsJSON()).find((m) => m.name === "paylane_http_request_duration_seconds");
  const values = (histogram?.values ?? []) as Array<{ metricName?: string; value: number }>;
  const observed = values.find((v) => v.metricName === "paylane_http_request_duration_seconds_count");
  assert.is(observed?.value, 2, "both requests timed in the one histogram");
});

test.run();
