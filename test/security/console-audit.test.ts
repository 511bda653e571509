/**
 * Issue 16, the audit log's integrity: a site-scoped operator must not hide a
 * state-changing call from their site's admin. The row's site came from the
 * query string when the route named none, so a finance of s1 refunding an s1
 * payment with `?site=s2` filed the row under s2, out of s1's admin's sight;
 * a finance of every site did so too, until the refund's row took the payment's site.
 */
import { randomUUID } from "node:crypto";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { ConsoleCloud } from "./console-harness.ts";

const it = suite("console: audit integrity");
const cloud = new ConsoleCloud();
it.before(() => cloud.start());
it.after(() => cloud.close());

for (const who of ["fred", "fiona"] as const) {
  it(`${who === "fred" ? "a site's" : "an every-site"} finance cannot file their refund under another site with ?site=`, async () => {
    const paymentId = await cloud.purchase(randomUUID());
    const finance = await cloud.login(who);
    const refund = await cloud.call("POST", `/api/v1/payments/${paymentId}/refunds?site=s2`, {
      bearer: finance.access,
      body: { amount: 50, reason: "hidden refund" },
      headers: { "idempotency-key": randomUUID() },
    });
    assert.is(refund.status, 201, refund.text);
    const sam = await cloud.login("sam");
    const seen = await cloud.call("GET", "/api/v1/audit?site=s1", { bearer: sam.access });
    assert.is(seen.status, 200, seen.text);
    const row = (seen.body.items as Array<Record<string, unknown>>).find(
      (r) => r.actor === who && r.target === `id ${paymentId}`,
    );
    assert.ok(row, "the refund is missing from the site admin's audit log");
    assert.is(row.site, "s1");
  });
}

it("an every-site operator cannot file a collision's resolution under another site with ?site=", async () => {
  const { rows } = await cloud.db.query<{ id: string }>(
    `INSERT INTO seq_collisions (site_id, device_id, seq, entry_id, kind, held_entry_id, held_kind, received_at)
     VALUES ('s1', 'k1', 7, $1, 'checkin', $2, 'checkin', now()) RETURNING id`,
    [randomUUID(), randomUUID()],
  );
  const id = rows[0]!.id;
  const olga = await cloud.login("olga");
  const resolved = await cloud.call("POST", `/api/v1/collisions/${id}/resolve?site=s2`, {
    bearer: olga.access,
    body: { kept: "held", note: "the kiosk's own" },
  });
  assert.is(resolved.status, 200, resolved.text);
  const sam = await cloud.login("sam");
  const seen = await cloud.call("GET", "/api/v1/audit?site=s1", { bearer: sam.access });
  assert.is(seen.status, 200, seen.text);
  const row = (seen.body.items as Array<Record<string, unknown>>).find((r) => r.actor === "olga");
  assert.ok(row, "the resolution is missing from the site admin's audit log");
  assert.is(row.site, "s1");
});

it.run();
