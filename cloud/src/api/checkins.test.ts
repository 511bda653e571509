/**
 * The check-in routes through the whole API stack, in process (`app.request`):
 * the operators' list of check-ins (`GET /api/v1/checkins`) and the member
 * replica a kiosk decides check-ins from (`GET /api/v1/sites/{site}/members`).
 * Check-ins are what the bridge committed to the inbox; here they are put
 * there directly, so each test says exactly what the cloud holds.
 */
import { randomUUID } from "node:crypto";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { ApiHarness } from "../../../test/support/cloud-api.ts";

interface Checkin {
  id: string;
  site: string;
  device: string;
  seq: number;
  memberId: string;
  memberName: string | null;
  credential: string;
  at: string;
  receivedAt: string;
  offline: boolean;
  replicaVersion: number;
}

const test = suite<{ api: ApiHarness }>("check-in routes", {} as never);

test.before(async (ctx) => {
  ctx.api = new ApiHarness({ db: "pglite" });
  await ctx.api.start();
});
test.after(async (ctx) => {
  await ctx.api.close();
});
test.before.each(async ({ api }) => {
  await api.db.query("DELETE FROM inbox");
});

let seq = 0;
/** A check-in as the bridge commits it: an applied `checkin` entry of the device's stream. */
async function checkin(
  api: ApiHarness,
  o: { site?: string; device?: string; member: string; at: string; offline?: boolean; id?: string },
): Promise<string> {
  const id = o.id ?? randomUUID();
  const body = {
    memberId: o.member,
    credential: { type: "card", uid: "04A2B3C4" },
    replicaVersion: 7,
    offline: o.offline ?? false,
  };
  await api.db.query(
    `INSERT INTO inbox (site_id, device_id, seq, entry_id, kind, outcome, at, body, received_at)
     VALUES ($1, $2, $3, $4, 'checkin', 'applied', $5, $6, $7)`,
    [o.site ?? api.site, o.device ?? "k1", ++seq, id, o.at, JSON.stringify(body), "2026-12-04T12:00:00Z"],
  );
  return id;
}

async function list(api: ApiHarness, query: string, token?: string) {
  const res = await api.request(`/api/v1/checkins${query}`, {
    headers: { authorization: `Bearer ${token ?? (await api.token("viewer"))}` },
  });
  return { res, body: (await res.json()) as { items: Checkin[]; next: string | null; detail?: string } };
}

test("an operator lists a site's check-ins newest first, with who, how and when", async ({ api }) => {
  await checkin(api, { member: "m-ada", at: "2026-12-04T10:00:00Z" });
  const late = await checkin(api, { member: "m-grace", at: "2026-12-04T11:00:00Z", offline: true });
  const { res, body } = await list(api, `?site=${api.site}`);
  assert.is(res.status, 200);
  assert.is(res.headers.get("content-type"), "application/json");
  assert.equal(
    body.items.map((c) => c.memberId),
    ["m-grace", "m-ada"],
  );
  assert.equal(body.items[0], {
    id: late,
    site: api.site,
    device: "k1",
    seq: body.items[0]!.seq,
    memberId: "m-grace",
    memberName: "Grace Hopper",
    credential: "card",
    at: "2026-12-04T11:00:00.000Z",
    receivedAt: "2026-12-04T12:00:00.000Z",
    offline: true,
    replicaVersion: 7,
  });
  assert.is(body.next, null, "one page holds them all");
});

test("a check-in by a member the cloud does not know is listed, without a name", async ({ api }) => {
  await checkin(api, { member: "m-nobody", at: "2026-12-04T10:00:00Z" });
  const { body } = await list(api, `?site=${api.site}`);
  assert.is(body.items.length, 1);
  assert.is(body.items[0]!.memberName, null);
});

test("pages follow one another by cursor: none skipped, none repeated, ties in time ordered by id", async ({ api }) => {
  const same = "2026-12-04T10:00:00Z";
  const ids = [
    await checkin(api, { member: "m-ada", at: same }),
    await checkin(api, { member: "m-alan", at: same }),
    await checkin(api, { member: "m-grace", at: same }),
    await checkin(api, { member: "m-katherine", at: "2026-12-04T09:00:00Z" }),
    await checkin(api, { member: "m-ada", at: "2026-12-04T08:00:00Z" }),
  ];
  const seen: string[] = [];
  let query = `?site=${api.site}&limit=2`;
  for (let page = 0; page < 5; page++) {
    const { res, body } = await list(api, query);
    assert.is(res.status, 200);
    seen.push(...body.items.map((c) => c.id));
    if (!body.next) break;
    query = `?site=${api.site}&limit=2&before=${body.next}`;
  }
  const tied = ids.slice(0, 3).sort().reverse();
  assert.equal(seen, [...tied, ids[3], ids[4]]);
});

test("?device= lists one kiosk's check-ins only", async ({ api }) => {
  await checkin(api, { device: "k1", member: "m-ada", at: "2026-12-04T10:00:00Z" });
  await checkin(api, { device: "k2", member: "m-alan", at: "2026-12-04T10:01:00Z" });
  const { body } = await list(api, `?site=${api.site}&device=k2`);
  assert.equal(
    body.items.map((c) => [c.device, c.memberId]),
    [["k2", "m-alan"]],
  );
});

test("a token scoped to one site reads that site only, and is refused another", async ({ api }) => {
  await checkin(api, { member: "m-ada", at: "2026-12-04T10:00:00Z" });
  await checkin(api, { site: api.otherSite, device: "x1", member: "m-ada", at: "2026-12-04T10:00:00Z" });
  const scoped = await api.token("viewer", { sites: [api.site] });
  const own = await list(api, "", scoped);
  assert.is(own.res.status, 200);
  assert.equal(
    own.body.items.map((c) => c.site),
    [api.site],
    "without ?site=, the token's only site",
  );
  const other = await list(api, `?site=${api.otherSite}`, scoped);
  assert.is(other.res.status, 403);
  assert.is(other.res.headers.get("content-type"), "application/problem+json");
  assert.match(other.body.detail ?? "", api.otherSite);
});

test("bad queries are refused with a problem naming the parameter", async ({ api }) => {
  for (const [query, name] of [
    ["?limit=0", /^limit:/],
    ["?limit=501", /^limit:/],
    ["?before=not-a-cursor", /^before:/],
  ] as const) {
    const { res, body } = await list(api, `?site=${api.site}&${query.slice(1)}`);
    assert.is(res.status, 400, query);
    assert.is(res.headers.get("content-type"), "application/problem+json");
    assert.match(body.detail ?? "", name, query);
  }
});

test("without an operator token, or with a device's credentials, nothing is listed", async ({ api }) => {
  await checkin(api, { member: "m-ada", at: "2026-12-04T10:00:00Z" });
  for (const authorization of [undefined, api.device()]) {
    const res = await api.request(`/api/v1/checkins?site=${api.site}`, {
      headers: authorization ? { authorization } : {},
    });
    assert.is(res.status, 401, authorization ?? "no credentials");
    assert.not.match(await res.text(), "m-ada");
  }
});

test("a kiosk pulls the member replica it checks members in from: whole, then changes since its version", async ({
  api,
}) => {
  const auth = { authorization: api.device() };
  const full = await api.request(`/api/v1/sites/${api.site}/members`, { headers: auth });
  assert.is(full.status, 200);
  const snapshot = (await full.json()) as {
    full: boolean;
    version: number;
    members: Array<{ id: string; status: string; cardUid: string | null }>;
  };
  assert.is(snapshot.full, true);
  const mallory = snapshot.members.find((m) => m.id === "m-mallory");
  assert.equal(mallory && { status: mallory.status, cardUid: mallory.cardUid }, {
    status: "revoked",
    cardUid: "04DEAD00",
  });
  // Ada is revoked after the kiosk's version: the delta carries her, and only her.
  await api.db.query("UPDATE sites SET members_version = members_version + 1 WHERE id = $1", [api.site]);
  await api.db.query(
    "UPDATE members SET status = 'revoked', version = (SELECT members_version FROM sites WHERE id = $1) WHERE site_id = $1 AND id = 'm-ada'",
    [api.site],
  );
  const delta = await api.request(`/api/v1/sites/${api.site}/members?since=${snapshot.version}`, { headers: auth });
  assert.is(delta.status, 200);
  const changes = (await delta.json()) as {
    full: boolean;
    since: number;
    changes: Array<{ id: string; status: string }>;
  };
  assert.is(changes.full, false);
  assert.is(changes.since, snapshot.version);
  assert.equal(
    changes.changes.map((m) => [m.id, m.status]),
    [["m-ada", "revoked"]],
  );
});

test("the member replica is a kiosk's own site's only, and needs its credentials", async ({ api }) => {
  const other = await api.request(`/api/v1/sites/${api.otherSite}/members`, {
    headers: { authorization: api.device() },
  });
  assert.is(other.status, 403);
  const anonymous = await api.request(`/api/v1/sites/${api.site}/members`);
  assert.is(anonymous.status, 401);
  const operator = await api.request(`/api/v1/sites/${api.site}/members`, {
    headers: { authorization: `Bearer ${await api.token("admin")}` },
  });
  assert.is(operator.status, 401, "an operator token is not a kiosk's credential");
});

test.run();
