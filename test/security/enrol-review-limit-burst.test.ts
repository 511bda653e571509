/**
 * The failed-enrolment limit (10 a minute per address by default) was
 * checked before a request and counted after its answer: every request sent
 * at once passed the check before the first failure was counted, so an
 * address guessing claim codes in parallel got as many guesses a minute as
 * it could keep in flight. A burst must be held to the limit too.
 */
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { EnrolmentHarness, enrolRequest, newKiosk } from "../../cloud/test/enrolment-harness.ts";
import { loud } from "../support/hooks.ts";

const LIMIT = 3;
const it = suite("enrolment limit under a burst");
const h = new EnrolmentHarness({ enrolFailuresPerMinute: LIMIT });

it.before(loud("harness", () => h.start()));
it.after(() => h.stop());

it("guesses sent all at once from one address are refused past the limit", async () => {
  const kiosk = await newKiosk(h.site, "kiosk-guessing");
  const guesses = Array.from({ length: 30 }, (_, i) =>
    enrolRequest(kiosk, `${String(i).padStart(5, "0")}-00000-00000-00000`, h.now()),
  );
  const answers = await Promise.all(
    guesses.map((body) => h.request("POST", "/api/v1/enrol", { body, from: "203.0.113.50" })),
  );
  const looked = answers.filter((a) => a.status !== 429);
  assert.ok(
    looked.length <= LIMIT,
    `${looked.length} of 30 guesses were looked up (${looked.map((a) => a.body.reason).join(", ")}); at most ${LIMIT}`,
  );
  assert.ok(
    looked.every((a) => a.body.reason === "claim-unknown"),
    "the ones looked up were unknown codes",
  );
});

it("a kiosk that enrols is not held back by its own success", async () => {
  const [a, b] = await h.claims(2);
  for (const [i, claim] of [a!, b!].entries()) {
    const kiosk = await newKiosk(h.site, `kiosk-ok-${i}`);
    const res = await h.request("POST", "/api/v1/enrol", {
      body: enrolRequest(kiosk, claim.code, h.now()),
      from: "203.0.113.51",
    });
    assert.is(res.status, 201);
  }
  for (let i = 0; i < LIMIT + 2; i++) {
    const kiosk = await newKiosk(h.site, `kiosk-more-${i}`);
    const [claim] = await h.claims();
    const res = await h.request("POST", "/api/v1/enrol", {
      body: enrolRequest(kiosk, claim!.code, h.now()),
      from: "203.0.113.51",
    });
    assert.is(res.status, 201, `enrolment ${i + 3} from one address: ${JSON.stringify(res.body)}`);
  }
});

it.run();
