/**
 * The backup → restore → verify → check drill `npm run drill` runs: a backup,
 * a point-in-time restore to the moment just after it into a fresh cluster on
 * a free port, `pgbackrest verify`, and the consistency check against the
 * source, with each step's time, the row counts and the checksums compared.
 */
import { rm } from "node:fs/promises";
import { join } from "node:path";
import pg from "pg";
import { backup, restore, type Say, verify } from "./backup.ts";
import { freePort } from "./cluster.ts";
import type { BackupType, DrConfig } from "./config.ts";
import type { CheckReport } from "./consistency.ts";

export interface DrillOptions {
  config: DrConfig;
  /** Backup type (default incr; pgBackRest takes a full when there is none). */
  type?: BackupType;
  /** Where the restored cluster goes (default: `<stateDir>/drill-<time>`); removed afterwards unless keep. */
  workDir?: string;
  keepRestored?: boolean;
  say?: Say;
}

export interface Report {
  ok: boolean;
  backup: { label: string; type: BackupType; seconds: number; sizeBytes: number; repoSizeBytes: number };
  restore: { point: string; seconds: number; port: number; dataDir: string };
  verify: { ok: boolean; seconds: number; backups: number; problems: string[] };
  check: CheckReport;
  /** Per table: rows restored and the checksum compared (append-only tables). */
  counts: Array<{ table: string; source: number | null; restored: number; checksum?: string; verdict: string }>;
  totalSeconds: number;
}

export async function backupRestoreDrill(o: DrillOptions): Promise<Report> {
  const say = o.say ?? (() => {});
  const started = performance.now();
  const t0 = performance.now();
  const b = await backup(o.config, { type: o.type ?? "incr", say });
  const backupSeconds = (performance.now() - t0) / 1000;
  // pgBackRest keeps stop times in whole seconds and restores to a time only from a backup that stopped before
  // it: the point is in a later second than the backup's stop.
  const nextSecond = (Math.floor(b.finishedAt.getTime() / 1000) + 1) * 1000;
  while (Date.now() < nextSecond) await new Promise((r) => setTimeout(r, 20));
  // The point: the source's clock now, after the backup.
  const client = new pg.Client({ connectionString: o.config.databaseUrl });
  await client.connect();
  const { rows } = await client.query<{ now: Date }>("SELECT clock_timestamp() AS now");
  await client.end();
  const point = rows[0]!.now;
  // Recovery to a time ends at the first commit after it: never reached on a clock that has not moved on.
  while (Date.now() <= point.getTime()) await new Promise((r) => setImmediate(r));
  const port = await freePort();
  const dataDir = o.workDir ?? join(o.config.stateDir, `drill-${point.getTime()}`);
  const r = await restore(o.config, { to: point.toISOString(), target: dataDir, port, check: true, say });
  try {
    const v = await verify(o.config);
    const check = r.check!;
    return {
      ok: check.ok && v.ok,
      backup: {
        label: b.label,
        type: b.type,
        seconds: backupSeconds,
        sizeBytes: b.sizeBytes,
        repoSizeBytes: b.repoSizeBytes,
      },
      restore: { point: point.toISOString(), seconds: r.seconds, port, dataDir },
      verify: { ok: v.ok, seconds: v.seconds, backups: v.backups.length, problems: v.problems },
      check,
      counts: check.tables.map((t) => ({
        table: t.table,
        source: t.source,
        restored: t.restored,
        ...(t.restoredChecksum ? { checksum: t.restoredChecksum } : {}),
        verdict: t.verdict,
      })),
      totalSeconds: (performance.now() - started) / 1000,
    };
  } finally {
    if (!o.keepRestored) {
      await r.cluster.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  }
}
