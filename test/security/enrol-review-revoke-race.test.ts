/**
 * A stolen kiosk holds its key, its secret and (recovered from the card's
 * FAT boot partition, where firstrun.sh only unlinked it) the claim code it
 * was baked with. That is everything an enrolment retry needs, and a retry
 * is never rate-limited: the thief sends them in a loop. An admin revokes
 * the kiosk. A retry that read the device's row before the revoke marked it,
 * and wrote the registry after the revoke emptied it, put the thief back in:
 * the listing said revoked, the broker let it in.
 *
 * The interleaving is forced here rather than hoped for: the retry's
 * registry write (the injected writer, called inside its transaction) starts
 * the admin's revoke and lets it run as far as it can — to the end, or until
 * it waits on a lock the retry holds.
 */

import { Registry, updateRegistryFile } from "@paylane/protocol";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { Enrolment } from "../../cloud/src/enrolment/enrolment.ts";
import { EnrolmentHarness, enrolRequest, newKiosk } from "../../cloud/test/enrolment-harness.ts";
import { loud } from "../support/hooks.ts";

const it = suite("enrolment retry racing a revoke");
const h = new EnrolmentHarness();

it.before(loud("harness", () => h.start()));
it.after(() => h.stop());

/** Whether a session of this database waits on a lock while revoking. */
async function revokeWaitsOnLock(): Promise<boolean> {
  const { rows } = await h.db.query<{ n: string }>(
    `SELECT count(*) AS n FROM pg_stat_activity
     WHERE wait_event_type = 'Lock' AND query LIKE '%SET revoked_at%' AND datname = current_database()`,
  );
  return Number(rows[0]?.n ?? 0) > 0;
}

it("a revoke that lands during a stolen kiosk's enrolment retry stays revoked", async () => {
  const [claim] = await h.claims();
  const kiosk = await newKiosk(h.site, "kiosk-stolen");
  const first = await h.request("POST", "/api/v1/enrol", { body: enrolRequest(kiosk, claim!.code, h.now()) });
  assert.is(first.status, 201);
  await h.mqttWithin(h.site, kiosk.device, kiosk.secret);

  const admin = new Enrolment({ db: h.db, registryPath: h.registryPath, now: h.now });
  let revoke: Promise<unknown> | undefined;
  const thief = new Enrolment({
    db: h.db,
    registryPath: h.registryPath,
    now: h.now,
    writeRegistry: async (mutate) => {
      if (!revoke) {
        let done = false;
        revoke = admin.revoke(h.address(kiosk.device), { actor: "admin-test", address: "192.0.2.9" }).finally(() => {
          done = true;
        });
        const deadline = Date.now() + 10_000;
        while (!done && !(await revokeWaitsOnLock())) {
          if (Date.now() > deadline) throw new Error("the revoke neither finished nor waited on a lock");
          await new Promise((r) => setTimeout(r, 5));
        }
      }
      await updateRegistryFile(h.registryPath, mutate);
    },
  });
  const retry = await thief.enrol(enrolRequest(kiosk, claim!.code, h.now()), "198.51.100.7").catch((e: Error) => e);
  assert.ok(revoke, "the retry reached the registry");
  const revoked = await revoke;
  assert.ok(revoked, `the revoke answered: ${JSON.stringify(revoked)} (retry: ${String(retry)})`);

  const registry = await Registry.load(h.registryPath);
  assert.not.ok(registry.hasDevice(h.address(kiosk.device)), "the revoked kiosk is out of the registry");
  const row = await h.db.query<{ revoked_at: Date | null }>(
    "SELECT revoked_at FROM enrolled_devices WHERE site_id = $1 AND device_id = $2",
    [h.site, kiosk.device],
  );
  assert.ok(row.rows[0]?.revoked_at, "and marked revoked");
  // The gateway's watch is debounced: give it the time to see the last version.
  const deadline = Date.now() + 3000;
  while (!(await h.refuses(h.site, kiosk.device, kiosk.secret))) {
    assert.ok(Date.now() < deadline, "the broker still lets the revoked kiosk in");
    await new Promise((r) => setTimeout(r, 50));
  }

  const again = await h.request("POST", "/api/v1/enrol", {
    body: enrolRequest(kiosk, claim!.code, h.now()),
    from: "198.51.100.8",
  });
  assert.is(again.status, 409, "a later retry is refused");
});

it.run();
