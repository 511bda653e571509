/**
 * The drain benchmark's backlog: a real kiosk journal (`Journal` from
 * `@paylane/device`, its own schema, trigger-assigned seqs and
 * synchronous=FULL) filled with offline check-ins through `append`, the call
 * the check-in desk makes, so every entry was durable on its own commit as on
 * a kiosk that spent a long partition journaling.
 */
import { createHash } from "node:crypto";
import { performance } from "node:perf_hooks";
import { Journal } from "@paylane/device";
import { type CheckinBody, CheckinBodySchema } from "@paylane/protocol";

/**
 * Check-in number `n` as the desk journals it offline. Members are distinct:
 * the desk never journals one member twice on a day (it answers "already").
 */
export function offlineCheckin(n: number): CheckinBody {
  return CheckinBodySchema.parse({
    memberId: `m-${n}`,
    credential: { type: "card", uid: "04A2B3C4" },
    replicaVersion: 1,
    offline: true,
  });
}

export interface FillResult {
  lastSeq: number;
  ms: number;
}

/**
 * Appends `entries` check-ins to the journal at `path` (which must be new or
 * empty), `inFlight` appends at a time; `onProgress` gets the count about
 * once a second.
 */
export async function fillJournal(
  path: string,
  entries: number,
  inFlight: number,
  onProgress: (appended: number) => void,
): Promise<FillResult> {
  const journal = await Journal.open(path);
  try {
    const before = await journal.stats();
    if (before.lastSeq !== 0) throw new Error(`journal ${path} already holds entries up to seq ${before.lastSeq}`);
    const t0 = performance.now();
    let started = 0;
    let appended = 0;
    let reported = t0;
    const worker = async () => {
      while (started < entries) {
        const n = ++started;
        const at = new Date();
        await journal.append("checkin", offlineCheckin(n), at, {
          memberId: `m-${n}`,
          day: at.toISOString().slice(0, 10),
        });
        appended++;
        const now = performance.now();
        if (now - reported >= 1000) {
          reported = now;
          onProgress(appended);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, inFlight) }, worker));
    const ms = performance.now() - t0;
    const after = await journal.stats();
    if (after.lastSeq !== entries || after.backlog !== entries)
      throw new Error(`journal filled to seq ${after.lastSeq} with backlog ${after.backlog}, expected ${entries}`);
    return { lastSeq: after.lastSeq, ms };
  } finally {
    await journal.close();
  }
}

/**
 * md5 over the entry ids joined by "\n" in seq order: the same digest the
 * cloud side computes over its inbox with `string_agg(entry_id, E'\n' ORDER BY seq)`,
 * so equal digests mean each seq holds exactly the journal's entry.
 */
export async function journalIdDigest(journal: Journal): Promise<{ count: number; md5: string }> {
  const rows = await journal.db.all<{ id: string }>("SELECT id FROM journal ORDER BY seq");
  return {
    count: rows.length,
    md5: createHash("md5")
      .update(rows.map((r) => r.id).join("\n"))
      .digest("hex"),
  };
}
