/**
 * Payment intents in the journal's file: the entry that records a payment
 * settles its intent in the same statement, and the journal's compaction
 * takes settled intents with it while a pending one stays until its outcome
 * is known.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Journal } from "../src/journal.ts";
import { type PaymentIntent, PaymentIntents } from "../src/payments/intents.ts";

const intent = (key: string, createdAt: string): PaymentIntent => ({
  key,
  kind: "purchase",
  memberId: "m-ada",
  amount: 250,
  currency: "EUR",
  request: { key, amount: 250 },
  createdAt,
});

test("journaling a payment settles its intent; compaction removes settled intents, never a pending one", async () => {
  const dir = await mkdtemp(join(tmpdir(), "paylane-intents-"));
  const journal = await Journal.open(join(dir, "journal.db"));
  try {
    const intents = await PaymentIntents.open(journal);
    const old = "2024-05-01T09:00:00.000Z";
    await intents.record(intent("paid", old));
    await intents.record(intent("declined", old));
    await intents.record(intent("unknown", old));
    assert.equal(
      (await intents.pending()).map((i) => i.key),
      ["paid", "declined", "unknown"],
    );

    const entry = await journal.append("payment", { key: "paid", amount: 250 }, new Date(old));
    await intents.close("declined", "declined");
    assert.equal(
      (await intents.pending()).map((i) => i.key),
      ["unknown"],
      "the entry settled its intent",
    );
    assert.equal((await intents.pending())[0]?.request, { key: "unknown", amount: 250 });

    await journal.markAcked(entry.seq);
    assert.is(await journal.compact(new Date("2024-05-10T00:00:00.000Z")), 1);
    const left = await journal.db.all<{ key: string }>("SELECT key FROM payment_intents ORDER BY key");
    assert.equal(
      left.map((r) => r.key),
      ["unknown"],
      "settled intents went with the journal's compaction; the pending one stays",
    );
  } finally {
    await journal.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test("reopening the intents of a journal keeps what was recorded", async () => {
  const dir = await mkdtemp(join(tmpdir(), "paylane-intents-"));
  const path = join(dir, "journal.db");
  try {
    const first = await Journal.open(path);
    await (await PaymentIntents.open(first)).record(intent("k1", "2024-05-01T09:00:00.000Z"));
    await first.close();
    const again = await Journal.open(path);
    assert.equal(
      (await (await PaymentIntents.open(again)).pending()).map((i) => i.key),
      ["k1"],
    );
    await again.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test.run();
