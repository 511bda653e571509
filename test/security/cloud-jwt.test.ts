/**
 * Issue 12, the cloud API: "A JWT without `exp` is accepted; `aud` and `iss`
 * are not checked; an error message echoes the token." Operator tokens are
 * forged here the way an attacker holding (or guessing) parts of them would:
 * no exp, another audience or issuer, `alg: none`, another HMAC, expired,
 * garbage. Each is refused with 401 problem+json on an operator read and on
 * a money route, and no answer repeats the token or any part of it.
 */
import { base64url, SignJWT } from "jose";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { ApiHarness, JWT_SECRET, tokenParts } from "../support/cloud-api.ts";
import { loud } from "../support/hooks.ts";

const it = suite("cloud: operator JWTs");
const api = new ApiHarness({ db: "pg" });
it.before(loud("starting the API", () => api.start()));
it.after(loud("stopping the API", () => api.close()));

const key = new TextEncoder().encode(JWT_SECRET);
const now = () => Math.floor(Date.now() / 1000);

/** A token with exactly these claims (nothing added), signed HS256 with the cloud's own secret. */
function signed(claims: Record<string, unknown>, alg = "HS256"): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg, typ: "JWT" }).sign(key);
}

const good = () => ({
  sub: "mallory",
  role: "admin",
  iss: "paylane-cloud",
  aud: "paylane-api",
  iat: now(),
  exp: now() + 600,
});

async function refusedEverywhere(token: string, why: RegExp): Promise<void> {
  for (const path of [`/api/v1/checkins?site=${api.site}`, "/api/v1/devices", `/api/v1/wallets?site=${api.site}`]) {
    const res = await api.request(path, { headers: { authorization: `Bearer ${token}` } });
    const text = await res.text();
    assert.is(res.status, 401, `${path}: ${text}`);
    assert.is(res.headers.get("content-type"), "application/problem+json");
    assert.match(res.headers.get("www-authenticate") ?? "", /error="invalid_token"/);
    const body = JSON.parse(text) as { detail: string };
    assert.match(body.detail, why, path);
    for (const part of tokenParts(token)) assert.not.ok(text.includes(part), `${path}: the answer echoes the token`);
  }
}

it("a well-formed token is accepted (the baseline every forgery below differs from in one way)", async () => {
  const res = await api.request(`/api/v1/checkins?site=${api.site}`, {
    headers: { authorization: `Bearer ${await signed(good())}` },
  });
  assert.is(res.status, 200, await res.text());
});

it("a token without exp (valid forever if stolen) is refused", async () => {
  const { exp: _, ...claims } = good();
  await refusedEverywhere(await signed(claims), /no "exp" claim/);
});

it("a token for another audience or from another issuer is refused, as is one with neither", async () => {
  await refusedEverywhere(await signed({ ...good(), aud: "some-other-api" }), /"aud" claim/);
  await refusedEverywhere(await signed({ ...good(), iss: "someone-else" }), /"iss" claim/);
  const { iss: _i, aud: _a, ...bare } = good();
  await refusedEverywhere(await signed(bare), /no "(iss|aud)" claim/);
});

it("alg none, and another algorithm than HS256 with the same secret, are refused", async () => {
  const header = base64url.encode(JSON.stringify({ alg: "none", typ: "JWT" }));
  const payload = base64url.encode(JSON.stringify(good()));
  await refusedEverywhere(`${header}.${payload}.`, /HS256|well-formed/);
  await refusedEverywhere(await signed(good(), "HS512"), /HS256/);
});

it("an expired token is refused; a clock a few seconds behind is forgiven", async () => {
  await refusedEverywhere(await signed({ ...good(), iat: now() - 7200, exp: now() - 3600 }), /expired/);
  const justExpired = await signed({ ...good(), exp: now() - 5 });
  const res = await api.request("/api/v1/devices", { headers: { authorization: `Bearer ${justExpired}` } });
  assert.is(res.status, 200, "within the clock tolerance");
});

it("a token signed with another secret, or not a JWT at all, is refused without repeating it", async () => {
  const forged = await new SignJWT(good())
    .setProtectedHeader({ alg: "HS256" })
    .sign(new TextEncoder().encode("not-the-cloud-secret-but-32-characters-long"));
  await refusedEverywhere(forged, /signature/);
  await refusedEverywhere("not-a-jwt-but-a-long-secret-looking-string", /well-formed/);
  await refusedEverywhere("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXNpZ25hdHVyZQ", /signature|well-formed/);
});

it("a valid token without a role, or with an unknown one, is refused", async () => {
  const { role: _, ...noRole } = good();
  await refusedEverywhere(await signed(noRole), /sub and role/);
  await refusedEverywhere(await signed({ ...good(), role: "root" }), /sub and role/);
});

it("a token scoped to one site reads that site only", async () => {
  const scoped = `Bearer ${await api.token("viewer", { sites: [api.site] })}`;
  const own = await api.request(`/api/v1/alerts?site=${api.site}`, { headers: { authorization: scoped } });
  assert.is(own.status, 200);
  const other = await api.request(`/api/v1/alerts?site=${api.otherSite}`, { headers: { authorization: scoped } });
  assert.is(other.status, 403);
  const devices = await api.request("/api/v1/devices", { headers: { authorization: scoped } });
  const items = ((await devices.json()) as { items: Array<{ site: string }> }).items;
  assert.ok(items.length > 0);
  assert.ok(
    items.every((d) => d.site === api.site),
    "without ?site= a scoped token lists its own site only",
  );
});

it.run();
