/**
 * `POST /api/v1/enrol` is the one route anyone may call without credentials,
 * so fast-check throws at it what an attacker would: wrong JSON types, NUL
 * characters and other unicode in every field, claim codes of every shape,
 * keys that are not Ed25519 (or not keys), signatures of the right length
 * over nothing, times out of range. Every answer is a 4xx problem+json, never
 * a 500 and never a 201, and no claim is burned by any of it.
 *
 *   FUZZ_SEED=n FUZZ_RUNS=n   replay a failure (the seed is printed) or search harder
 */
import { generateKeyPairSync, randomBytes } from "node:crypto";
import fc from "fast-check";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { EnrolmentHarness, enrolRequest, newKiosk } from "../../cloud/test/enrolment-harness.ts";
import { loud } from "../support/hooks.ts";

const RUNS = Number(process.env.FUZZ_RUNS ?? 150);
const SEED = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);

const it = suite("enrol: fuzzed requests");
const h = new EnrolmentHarness({ devices: ["probe"], enrolFailuresPerMinute: 0 });
let claim = "";
let valid: Record<string, string> = {};

it.before(
  loud("harness", async () => {
    await h.start();
    claim = (await h.claims())[0]!.code;
    valid = { ...enrolRequest(await newKiosk(h.site, "kiosk-fuzz"), claim, h.now()) };
  }),
);
it.after(() => h.stop());

const NASTY = ["\u0000", "a\u0000b", "\ud800", "é", "../../etc/passwd", "' OR 1=1 --", "𝕏".repeat(40), ""];
const rsaKey = generateKeyPairSync("rsa", { modulusLength: 1024 })
  .publicKey.export({ format: "der", type: "spki" })
  .toString("base64url");
const x25519Key = generateKeyPairSync("x25519").publicKey.export({ format: "der", type: "spki" }).toString("base64url");

const anyValue = fc.oneof(
  fc.constantFrom(...NASTY),
  fc.string(),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.string(), { maxLength: 3 }),
  fc.dictionary(fc.string(), fc.string(), { maxKeys: 3 }),
);
const fieldValues: Record<string, fc.Arbitrary<unknown>> = {
  claim: fc.oneof(anyValue, fc.stringMatching(/^[0-9 -]{0,40}$/)),
  site: fc.oneof(anyValue, fc.constantFrom("cloud", "CLOUD", "a/b", "+", "#")),
  device: fc.oneof(anyValue, fc.constantFrom("probe", "a/b", "+", "#")),
  publicKey: fc.oneof(
    anyValue,
    fc.constantFrom(rsaKey, x25519Key, "A".repeat(59), randomBytes(44).toString("base64url")),
  ),
  secretHash: fc.oneof(anyValue, fc.constant(`scrypt$2$8$1$${"ab".repeat(16)}$${"cd".repeat(32)}`)),
  at: fc.oneof(anyValue, fc.constantFrom("2026-02-30T00:00:00Z", "275760-09-13T00:00:00Z", "0000-01-01T00:00:00Z")),
  signature: fc.oneof(anyValue, fc.constant(randomBytes(64).toString("base64url"))),
};

it("no fuzzed enrolment is answered 500 or 201, every error is problem+json, and the claim stays unused", async () => {
  let n = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.record(
        Object.fromEntries(Object.keys(fieldValues).map((k) => [k, fc.option(fieldValues[k]!, { nil: undefined })])),
      ),
      fc.option(fc.dictionary(fc.string({ maxLength: 8 }), anyValue, { maxKeys: 2 }), { nil: undefined }),
      async (changes, extra) => {
        const body: Record<string, unknown> = { ...valid, ...extra };
        let changed = extra !== undefined && Object.keys(extra).length > 0;
        for (const [k, v] of Object.entries(changes)) {
          if (v === undefined) continue;
          body[k] = v;
          changed = true;
        }
        if (!changed) body.signature = randomBytes(64).toString("base64url");
        const res = await h.request("POST", "/api/v1/enrol", { body, from: `10.${n >> 8}.${n++ & 255}.9` });
        assert.ok(res.status >= 400 && res.status < 500, `answered ${res.status}: ${JSON.stringify(res.body)}`);
        assert.type(res.body.detail, "string");
        assert.not.match(String(res.body.detail), /syntax|relation|column|violates/i);
      },
    ),
    { numRuns: RUNS, seed: SEED, verbose: true },
  );
  assert.is(await h.count("SELECT count(*) AS n FROM enrol_claims WHERE used_at IS NULL"), 1);
  const ok = await h.request("POST", "/api/v1/enrol", { body: valid });
  assert.is(ok.status, 201, "the rightful kiosk still enrols");
});

it("the admin routes (claims, audit, revoke, rotate) answer fuzzed bodies, queries and paths below 500", async () => {
  const admin = await h.token("admin");
  // A lone surrogate cannot be percent-encoded: sent as the bytes it would be, invalid UTF-8.
  const enc = (v: string) => {
    try {
      return encodeURIComponent(v);
    } catch {
      return "%ED%A0%80";
    }
  };
  const segment = fc.oneof(fc.constantFrom(...NASTY.filter((x) => x !== "")), fc.string({ minLength: 1 }));
  await fc.assert(
    fc.asyncProperty(
      fc.record({
        site: fc.option(fc.oneof(anyValue, fc.constant(h.site)), { nil: undefined }),
        count: fc.option(fc.oneof(anyValue, fc.integer({ min: -5, max: 200 })), { nil: undefined }),
        ttlSeconds: fc.option(fc.oneof(anyValue, fc.double({ min: -1, max: 1e12 })), { nil: undefined }),
      }),
      segment,
      segment,
      fc.constantFrom("revoke", "rotate"),
      async (body, site, device, action) => {
        const answers = [
          await h.request("POST", "/api/v1/claims", { token: admin, body }),
          await h.request("GET", `/api/v1/claims?site=${enc(site)}&limit=${enc(device)}`, {
            token: admin,
          }),
          await h.request("GET", `/api/v1/enrolment/audit?site=${enc(site)}`, { token: admin }),
          await h.request("POST", `/api/v1/devices/${enc(site)}/${enc(device)}/${action}`, { token: admin }),
        ];
        for (const res of answers) {
          assert.ok(res.status < 500, `answered ${res.status}: ${JSON.stringify(res.body)}`);
          if (res.status >= 400) assert.type(res.body.detail, "string");
        }
      },
    ),
    { numRuns: Math.ceil(RUNS / 3), seed: SEED, verbose: true },
  );
  // The hand-registered probe is still in the registry: no fuzzed path revoked it.
  assert.not.ok(await h.refuses(h.site, "probe", h.secrets.get("probe")!));
});

it.run();
