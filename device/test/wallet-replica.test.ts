/** The wallet replica: a sync is applied whole, and lookups never see one half-way. */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { WalletSync } from "@paylane/protocol";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { WalletReplica } from "../src/payments/wallet-replica.ts";

const WALLETS = 500;

function sync(version: number, full: boolean, balance: number): WalletSync {
  return {
    site: "s1",
    full,
    version,
    currency: "EUR",
    limits: { perPayment: 1000, perCardDaily: 2000, kioskExposure: 5000 },
    items: [
      { id: "coffee", name: "Coffee", price: 250 },
      { id: "water", name: "Water", price: 150 },
    ],
    wallets: Array.from({ length: WALLETS }, (_, i) => ({ memberId: `m-${i}`, balance, offlineBlocked: false })),
    appliedUpTo: version,
  };
}

test("a payment looking up a wallet or the price list while a sync applies sees the sync before or after, never half of it", async () => {
  const dir = await mkdtemp(join(tmpdir(), "paylane-wallets-"));
  const wallets = await WalletReplica.open(join(dir, "wallets.db"));
  try {
    assert.ok(await wallets.apply(sync(1, true, 700), null, new Date()));
    let applying = true;
    const applied = wallets.apply(sync(2, true, 900), 1, new Date()).finally(() => {
      applying = false;
    });
    const seen = new Set<string>();
    let lookups = 0;
    while (applying) {
      // The lookups of one payment decision, as the payment desk makes them: on one snapshot.
      const [info, items, last] = await wallets.snapshot(() =>
        Promise.all([wallets.info(), wallets.items(), wallets.wallet(`m-${WALLETS - 1}`)]),
      );
      seen.add(`${info.version}:${items.length}:${last.balance}`);
      lookups++;
    }
    assert.ok(await applied);
    assert.ok(lookups > 0, "looked up while the sync was applying");
    for (const s of seen) assert.ok(s === "1:2:700" || s === "2:2:900", `a half-applied sync was seen: ${s}`);
    assert.equal((await wallets.wallet("m-0")).balance, 900);
  } finally {
    await wallets.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test("a delta applies only on top of the version it was asked from", async () => {
  const dir = await mkdtemp(join(tmpdir(), "paylane-wallets-"));
  const wallets = await WalletReplica.open(join(dir, "wallets.db"));
  try {
    assert.ok(await wallets.apply(sync(1, true, 700), null, new Date()));
    assert.not.ok(await wallets.apply(sync(3, false, 100), 2, new Date()), "asked from 2, the replica holds 1");
    assert.is((await wallets.info()).version, 1);
    assert.is((await wallets.wallet("m-0")).balance, 700);
    assert.ok(await wallets.apply(sync(2, false, 800), 1, new Date()));
    assert.is((await wallets.info()).version, 2);
    assert.is((await wallets.wallet("m-0")).balance, 800);
  } finally {
    await wallets.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test.run();
