/**
 * What the kiosk does when its journal file is damaged (integrity_check
 * fails, or the file is not a database any more): it never patches the file
 * and never reuses a seq. It asks the cloud where its stream stands (the
 * contiguous acked seq), moves the damaged file aside (kept, with its -wal
 * and -shm, for ops to salvage whatever was not acked), and starts a new
 * journal whose first seq follows the cloud's mark. The daemon then journals
 * a `journal-recovered` alert, which reaches ops like any entry.
 *
 * If the cloud cannot be asked, nothing is moved and opening fails with a
 * clear error: continuing without knowing the mark could reuse seqs the
 * cloud already holds, and those entries would be taken for duplicates.
 */
import { access, rename } from "node:fs/promises";
import { basename } from "node:path";
import type { JournalRecoveredBody } from "@paylane/protocol";
import type { Logger } from "pino";
import { Journal, JournalError } from "./journal.ts";

export interface JournalRecovery {
  /** The damaged file's new name (same folder). */
  damagedFile: string;
  /** The cloud's acked seq: the new journal's first entry is this + 1. */
  continuedAfter: number;
  /** Why the old journal could not be used. */
  reason: string;
}

export interface OpenOrRecoverOptions {
  /** The cloud's contiguous acked seq for this device. */
  fetchAckedSeq: () => Promise<number>;
  logger: Logger;
  now: () => Date;
  /** Opens the existing journal (default Journal.open; tests wrap it). The new one after damage is always a plain Journal. */
  open?: (path: string) => Promise<Journal>;
}

export async function openOrRecoverJournal(
  path: string,
  o: OpenOrRecoverOptions,
): Promise<{ journal: Journal; recovered?: JournalRecovery }> {
  try {
    return { journal: await (o.open ?? Journal.open)(path) };
  } catch (err) {
    if (!(err instanceof JournalError) || !err.damaged) throw err;
    const reason = err.message;
    let continuedAfter: number;
    try {
      continuedAfter = await o.fetchAckedSeq();
    } catch (cloudErr) {
      throw new JournalError(
        `${reason}; the journal was left in place because the cloud could not say where this kiosk's seqs continue (${(cloudErr as Error).message})`,
        { cause: err },
      );
    }
    const damagedFile = `${path}.damaged-${o.now().toISOString().replace(/[:.]/g, "-")}`;
    await rename(path, damagedFile);
    for (const suffix of ["-wal", "-shm"]) {
      const side = `${path}${suffix}`;
      if (await exists(side)) await rename(side, `${damagedFile}${suffix}`);
    }
    o.logger.error(
      { damagedFile: basename(damagedFile), continuedAfter, reason },
      "journal damaged: kept aside, a new journal continues after the cloud's acked seq",
    );
    return {
      journal: await Journal.open(path, { startAfterSeq: continuedAfter }),
      recovered: { damagedFile, continuedAfter, reason },
    };
  }
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** Journals the `journal-recovered` alert for a recovery, so ops learn of it like any entry. */
export async function journalRecoveryAlert(journal: Journal, recovered: JournalRecovery, at: Date): Promise<void> {
  const body: JournalRecoveredBody = {
    damagedFile: basename(recovered.damagedFile),
    continuedAfter: recovered.continuedAfter,
    reason: recovered.reason.slice(0, 1000),
  };
  await journal.append("journal-recovered", body, at);
}
