/** Removes acked journal entries older than the retention window, every `compactEveryMs`. */
import type { Journal } from "../journal.ts";
import { Every } from "./every.ts";
import type { KioskKit } from "./kit.ts";

export function journalCompaction(kit: KioskKit, journal: Journal): Every {
  const { config, now, log } = kit;
  return new Every(kit, "journal compaction", config.compactEveryMs, async () => {
    const before = new Date(now().getTime() - config.journalRetentionDays * 86_400_000);
    try {
      const removed = await journal.compact(before);
      if (removed > 0) log.info({ removed, before: before.toISOString() }, "acked journal entries compacted");
    } catch (err) {
      log.warn({ err: (err as Error).message }, "journal compaction failed");
    }
  });
}
