/**
 * The kiosk's stores, opened in order and closed last (after every part that
 * uses them): the journal (recovered from the cloud's mark if its file is
 * damaged), the member and wallet replicas, and the card terminal; and the
 * monitor that watches the journal's disk.
 */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { CloudClient } from "../cloud/cloud-client.ts";
import { createTerminal } from "../hardware/terminal/factory.ts";
import { Journal } from "../journal.ts";
import { openOrRecoverJournal } from "../journal-recovery.ts";
import { CloudStream } from "../journal-rollback.ts";
import { WalletReplica } from "../payments/wallet-replica.ts";
import { Replica } from "../replica.ts";
import { StorageMonitor, type StorageStatus } from "../storage-monitor.ts";
import type { KioskKit } from "./kit.ts";
import type { Lifecycle } from "./lifecycle.ts";

export async function openStores(
  kit: KioskKit,
  cloud: CloudClient,
  life: Lifecycle,
  openJournal = (path: string) => Journal.open(path),
) {
  const { config: c, log: logger, now, timers } = kit;
  await mkdir(c.dataDir, { recursive: true });
  const stream = new CloudStream(cloud);
  const file = (name: string) => join(c.dataDir, name);
  const { journal, recovered } = await life.open(
    "journal",
    () =>
      openOrRecoverJournal(file("journal.db"), {
        fetchAckedSeq: () => stream.ackedSeq(),
        logger,
        now,
        open: openJournal,
      }),
    (opened) => opened.journal.close(),
  );
  journal.events.on("appended", (entry) => kit.bus.emit("entry-journaled", entry));
  const replica = await life.open(
    "member replica",
    () => Replica.open(file("replica.db")),
    (r) => r.close(),
  );
  const wallets = await life.open(
    "wallet replica",
    () => WalletReplica.open(file("wallets.db")),
    (w) => w.close(),
  );
  const terminal = await life.open(
    "card terminal",
    // The terminal's state (ready, busy, disconnected: hot-plug) reaches the screen, telemetry and /healthz at once.
    () =>
      createTerminal(c.terminal, { timers, logger, onStateChange: () => kit.bus.emit("peripheral-changed", "state") }),
    (t) => t.close(),
  );
  return { journal, recovered, replica, wallets, terminal };
}

/** The kiosk's storage monitor: probes at `storageProbeMs`, and says each change on the bus. */
export function kioskStorageMonitor(kit: KioskKit, journal: Journal): StorageMonitor {
  const { timers, log: logger, bus } = kit;
  const onChange = (status: StorageStatus) => bus.emit("storage-changed", status);
  return new StorageMonitor({ journal, timers, logger, probeMs: kit.config.storageProbeMs, onChange });
}
