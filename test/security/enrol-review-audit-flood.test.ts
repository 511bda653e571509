/**
 * A refused address is answered 429 before its request is read, and it may
 * keep asking (the API's own limit allows 50 000 requests per 10 s per
 * address). Each 429 wrote a row to the enrolment audit, which is never
 * purged and which admins read newest first, 1000 at most: an address could
 * grow the table without bound, and push an attack's earlier refusals out
 * of the admins' view. One row says an address was limited; the rest are noise.
 */
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { EnrolmentHarness, enrolRequest, newKiosk } from "../../cloud/test/enrolment-harness.ts";
import { loud } from "../support/hooks.ts";

const it = suite("enrolment audit under a flood");
const h = new EnrolmentHarness({ enrolFailuresPerMinute: 2 });

it.before(loud("harness", () => h.start()));
it.after(() => h.stop());

it("an address past its limit is audited once a window, not once a request", async () => {
  const kiosk = await newKiosk(h.site, "kiosk-flooding");
  const address = "203.0.113.77";
  const guess = (i: number) => enrolRequest(kiosk, `${String(i).padStart(5, "0")}-11111-11111-11111`, h.now());
  for (let i = 0; i < 2; i++) {
    const res = await h.request("POST", "/api/v1/enrol", { body: guess(i), from: address });
    assert.is(res.body.reason, "claim-unknown");
  }
  const flood = await Promise.all(
    Array.from({ length: 60 }, (_, i) => h.request("POST", "/api/v1/enrol", { body: guess(i + 2), from: address })),
  );
  assert.ok(
    flood.every((a) => a.status === 429),
    "every request past the limit is refused",
  );
  const limited = await h.count(
    "SELECT count(*) AS n FROM enrolment_audit WHERE address = $1 AND reason = 'rate-limited'",
    [address],
  );
  assert.is(limited, 1, `${limited} audit rows for one limited address`);
  const all = await h.count("SELECT count(*) AS n FROM enrolment_audit WHERE address = $1", [address]);
  assert.is(all, 3, "two refused guesses and one limit");
});

it.run();
