/**
 * How the cloud serves the dashboard's files (cloud/src/api/dashboard.ts),
 * without a browser: the page and its assets under the strict CSP, nothing
 * outside the built folder, and a missing build that says how to make it.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { DASHBOARD_CSP, dashboardRoutes } from "../../cloud/src/api/dashboard.ts";

const test = suite("dashboard files");
let dist = "";

test.before(async () => {
  dist = await mkdtemp(join(tmpdir(), "paylane-dashboard-dist-"));
  await writeFile(join(dist, "index.html"), "<!doctype html><title>PayLane ops</title>");
  await writeFile(join(dist, "app.js"), "export {};");
  await writeFile(join(dist, "app.css"), "body{}");
  await writeFile(join(dist, ".secret"), "no");
});
test.after(() => rm(dist, { recursive: true, force: true }));

test("the page and its assets, each with its type and the strict CSP", async () => {
  const app = dashboardRoutes({ dist });
  for (const [path, type] of [
    ["/dashboard/", "text/html"],
    ["/dashboard/app.js", "text/javascript"],
    ["/dashboard/app.css", "text/css"],
  ] as const) {
    const res = await app.request(path);
    assert.is(res.status, 200, path);
    assert.ok(res.headers.get("content-type")?.startsWith(type), `${path}: ${res.headers.get("content-type")}`);
    assert.is(res.headers.get("content-security-policy"), DASHBOARD_CSP);
    assert.is(res.headers.get("x-frame-options"), "DENY");
    assert.is(res.headers.get("x-content-type-options"), "nosniff");
  }
  const root = await app.request("/");
  assert.is(root.status, 302);
  assert.is(root.headers.get("location"), "/dashboard/");
  assert.is((await app.request("/dashboard")).headers.get("location"), "/dashboard/");
});

test("nothing outside the built folder, no dot-files, no unknown types", async () => {
  const app = dashboardRoutes({ dist });
  for (const path of [
    "/dashboard/..%2f..%2fetc%2fpasswd",
    "/dashboard/%2e%2e%2fpackage.json",
    "/dashboard/.secret",
    "/dashboard/app.ts",
  ]) {
    const res = await app.request(path);
    assert.is(res.status, 404, path);
    assert.is(res.headers.get("content-type"), "application/problem+json", path);
  }
});

test("a missing build answers a problem saying to run npm run build", async () => {
  const app = dashboardRoutes({ dist: join(dist, "nowhere") });
  const res = await app.request("/dashboard/");
  assert.is(res.status, 404);
  const body = (await res.json()) as { title: string; detail: string };
  assert.is(body.title, "Dashboard not built");
  assert.match(body.detail, /npm run build/);
});

test.run();
