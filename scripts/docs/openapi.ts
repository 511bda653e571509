/**
 * The cloud's OpenAPI document without a server: the API app built as the
 * cloud builds it (every optional route group present, as in CLOUD_ROLE=all),
 * with stand-ins for the services its handlers would call, asked for
 * `/api/v1/openapi.json` in process. test/docs/openapi.test.ts checks it
 * equals what a started cloud serves.
 */
import { Registry as MetricsRegistry } from "prom-client";
import { createApi } from "../../cloud/src/api/app.ts";

/** Never called: building the routes only stores them. */
const unused = new Proxy(
  {},
  {
    get(_target, key) {
      throw new Error(`the OpenAPI dump called ${String(key)} on a stand-in service`);
    },
  },
) as never;

export async function buildOpenApi(): Promise<Record<string, unknown>> {
  const app = createApi({
    db: unused,
    presence: unused,
    registry: () => unused,
    metrics: new MetricsRegistry(),
    health: async () => ({ status: "ok" }),
    commands: unused,
    configs: unused,
    enrolment: unused,
    alerts: unused,
  });
  const res = await app.request("/api/v1/openapi.json");
  if (res.status !== 200) throw new Error(`/api/v1/openapi.json answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as Record<string, unknown>;
}
