/**
 * The cloud's API on HTTPS (CLOUD_TLS_CERT / CLOUD_TLS_KEY), as kiosks enrol
 * over it: a certificate made here by openssl, trusted by the client through
 * a CA option only. One enrolment end to end, a client that does not trust
 * the certificate refused, and a half-set pair refused at configuration.
 * On PGlite, as `npm start` runs the cloud (the other enrolment tests use Postgres).
 */
import { request } from "node:https";
import { CloudService, parseCloudEnv } from "@paylane/cloud";
import pino from "pino";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { loud } from "../../test/support/hooks.ts";
import { EnrolmentHarness, enrolRequest, newKiosk } from "./enrolment-harness.ts";

const it = suite("enrolment over HTTPS");
const h = new EnrolmentHarness({ tls: true, db: "pglite" });

it.before(loud("harness", () => h.start()));
it.after(() => h.stop());

it("a kiosk enrols over HTTPS trusting the cloud's CA, and connects to the broker", async () => {
  assert.match(h.cloud.url, /^https:\/\//);
  const [claim] = await h.claims();
  const k = await newKiosk(h.site, "kiosk-tls");
  const res = await h.request("POST", "/api/v1/enrol", { body: enrolRequest(k, claim!.code, h.now()) });
  assert.is(res.status, 201, JSON.stringify(res.body));
  await h.mqttWithin(h.site, k.device, k.secret);
  const again = await h.request("POST", "/api/v1/enrol", { body: enrolRequest(k, claim!.code, h.now()) });
  assert.is(again.status, 201, "a retry gets the same answer");
  assert.equal(again.body, res.body);
  const revoked = await h.request("POST", `/api/v1/devices/${h.site}/${k.device}/revoke`, {
    token: await h.token("admin"),
  });
  assert.is(revoked.status, 200);
});

it("a client that does not trust the certificate is refused by TLS, not answered", async () => {
  const err = await new Promise<Error & { code?: string }>((resolve) => {
    const req = request(new URL("/healthz", h.cloud.url), (res) => {
      res.resume();
      resolve(new Error(`answered ${res.statusCode}`));
    });
    req.on("error", resolve);
    req.end();
  });
  assert.is(err.code, "DEPTH_ZERO_SELF_SIGNED_CERT");
});

it("a certificate without its key (or a key without its certificate) is one clear configuration error", () => {
  const base = { REGISTRY_PATH: "/tmp/registry.json" };
  assert.throws(
    () => parseCloudEnv({ ...base, CLOUD_TLS_CERT: "/tmp/cert.pem" }),
    /CLOUD_TLS_KEY: required when CLOUD_TLS_CERT is set/,
  );
  assert.throws(
    () => parseCloudEnv({ ...base, CLOUD_TLS_KEY: "/tmp/key.pem" }),
    /CLOUD_TLS_CERT: required when CLOUD_TLS_KEY is set/,
  );
});

it("a certificate file that cannot be read fails the start with one line naming the variable", async () => {
  const config = parseCloudEnv({
    REGISTRY_PATH: h.registryPath,
    CLOUD_PORT: "0",
    CLOUD_TLS_CERT: "/nonexistent/cert.pem",
    CLOUD_TLS_KEY: "/nonexistent/key.pem",
  });
  const cloud = new CloudService({ config, db: h.db, logger: pino({ level: "silent" }) });
  const err = await cloud.start().then(
    () => undefined,
    (e: Error) => e,
  );
  assert.ok(err, "the start fails");
  assert.match(err!.message, /^CLOUD_TLS_CERT: cannot read \/nonexistent\/cert\.pem: ENOENT$/);
});

it.run();
