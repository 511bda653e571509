/**
 * Replica sync with a cursor: the kiosk asks for the members changed since
 * the version it holds and gets only those; a cursor the cloud cannot serve
 * (from another timeline: the cloud's versions went back) gets a full
 * snapshot that the kiosk follows.
 */
import { join } from "node:path";
import { Replica } from "@paylane/device";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { loud } from "../support/hooks.ts";
import { TestSite } from "../support/site.ts";

const it = suite("replica delta sync");
let site: TestSite;

it.before(
  loud("replica site setup", async () => {
    site = new TestSite({ db: "pglite", presence: "memory", broker: "aedes", kiosks: ["k1"], probes: [] });
    await site.start();
  }),
);
it.after(async () => {
  await site?.stop();
});

/** Changes one member the way an operator would: the site's version moves up, and that member gets it. */
async function revoke(memberId: string): Promise<number> {
  const v = await site.db.query<{ members_version: number }>(
    "UPDATE sites SET members_version = members_version + 1 WHERE id = $1 RETURNING members_version",
    [site.site],
  );
  const version = v.rows[0]!.members_version;
  await site.db.query("UPDATE members SET status = 'revoked', version = $3 WHERE site_id = $1 AND id = $2", [
    site.site,
    memberId,
    version,
  ]);
  return version;
}

it("once the kiosk holds a version, a pull with nothing new is an empty delta, and a change is a delta of just that member", async () => {
  const k1 = site.kiosk("k1");
  await k1.replicaSync.syncNow(); // the kiosk holds the version of its first (full) pull
  assert.equal(k1.replicaSync.lastSync, {
    full: false,
    members: 0,
    version: k1.replicaSync.lastSync!.version,
    applied: true,
  });
  const before = k1.replicaSync.lastSync!.version;
  const version = await revoke("m-alan");
  await k1.replicaSync.syncNow();
  assert.equal(k1.replicaSync.lastSync, { full: false, members: 1, version, applied: true });
  assert.ok(version > before);
  const r = await k1.tap("04C0FFEE");
  assert.is(r.outcome, "refused", "the revocation is in force at the kiosk");
});

it("a cursor from another timeline gets a full snapshot, which the kiosk follows back", async () => {
  const k1 = site.kiosk("k1");
  const cloudVersion = k1.replicaSync.lastSync!.version;
  // The kiosk holds a version the cloud never issued (e.g. the cloud was restored from a backup).
  const side = await Replica.open(join(site.dir, "k1", "replica.db"));
  await side.replace(
    { site: site.site, version: cloudVersion + 500, timezone: "UTC", siteName: "?", members: [] },
    new Date(),
  );
  await side.close();
  await k1.replicaSync.syncNow();
  assert.equal(k1.replicaSync.lastSync, { full: true, members: 5, version: cloudVersion, applied: true });
  assert.is((await k1.tap("04A2B3C4")).outcome, "welcome", "the members are back");
});

it("a malformed cursor is refused, naming it", async () => {
  const res = await fetch(`${site.cloud!.url}/api/v1/sites/${site.site}/members?since=abc`, {
    headers: { authorization: `Basic ${Buffer.from(`${site.site}/k1:${site.secrets.get("k1")}`).toString("base64")}` },
  });
  assert.is(res.status, 400);
  assert.match(((await res.json()) as { detail: string }).detail, /^since: /);
});

it.run();
