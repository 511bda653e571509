/**
 * Attack on a real cloud (Postgres, aedes): a desired config with a setting
 * named like an Object.prototype member is a 400 naming it, not a 500.
 */
import { mintOperatorToken } from "@paylane/cloud";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { loud } from "../support/hooks.ts";
import { TestSite } from "../support/site.ts";

const it = suite("ops attacks on a whole site");
let site: TestSite;

it.before(
  loud("site setup", async () => {
    site = new TestSite({ db: "pg", presence: "memory", broker: "aedes", kiosks: [], probes: ["probe"] });
    await site.start();
  }),
);
it.after(async () => {
  await site?.stop();
});

// ATTACK: checkSettings throws on a setting named like an Object.prototype
// member; the PUT answers 500 (an unexpected error, logged with a stack)
// instead of a 400 naming the field.
it("PUT config with a setting named constructor is a 400 naming it", async () => {
  const token = await mintOperatorToken(site.jwtSecret, { sub: "ops-a", role: "operator", sites: [site.site] });
  for (const field of ["constructor", "toString", "hasOwnProperty"]) {
    const res = await fetch(new URL(`/api/v1/devices/${site.site}/probe/config`, site.cloud!.url), {
      method: "PUT",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ settings: { [field]: 1, mode: "maintenance" } }),
    });
    const text = await res.text();
    assert.equal(
      { field, status: res.status, namesField: text.includes(`settings.${field}`) },
      { field, status: 400, namesField: true },
      text,
    );
  }
});

it.run();
