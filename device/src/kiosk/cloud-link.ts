/**
 * The kiosk's link to its cloud: the MQTT uplink that sends the journal, the
 * guard that compares the journal with the cloud's stream (a restored SD
 * card is behind it), and what runs each time the cloud comes (back) online:
 * that comparison, a replica pull, and settling payments a crash or a cut
 * left unresolved.
 */
import { CloudClient } from "../cloud/cloud-client.ts";
import type { Journal } from "../journal.ts";
import { CloudStream, RollbackGuard } from "../journal-rollback.ts";
import type { ReplicaSync } from "../replica-sync.ts";
import { Uplink } from "../uplink.ts";
import { DEVICE_VERSION } from "../version.ts";
import { type KioskEvents, listen } from "./events.ts";
import type { KioskKit } from "./kit.ts";
import type { Part } from "./lifecycle.ts";

export interface CloudLinkDeps {
  journal: Journal;
  cloud: CloudClient;
  sync: ReplicaSync;
  /** Settles payments whose outcome is unknown (see PaymentDesk.resolvePending). */
  resolvePending: () => Promise<void>;
  /** Every `cmd/{name}` (the command desk); unset, the uplink answers replay-from itself. */
  onCommand?: (name: string, payload: Buffer) => void;
  /** The retained desired configuration (the config desk). */
  onDesiredConfig?: (payload: Buffer) => void;
}

export class CloudLink implements Part {
  readonly name = "cloud link";
  readonly uplink: Uplink;
  readonly #k: KioskKit;
  readonly #d: CloudLinkDeps;
  readonly #rollback: RollbackGuard;
  #wasOnline = false;
  #unlisten = () => {};

  constructor(kit: KioskKit, deps: CloudLinkDeps) {
    this.#k = kit;
    this.#d = deps;
    const { config: c, bus, work, log: logger, timers, now } = kit;
    const { journal } = deps;
    this.#rollback = new RollbackGuard({
      journal,
      stream: new CloudStream(deps.cloud),
      logger,
      now,
      onMoved: (entry) => {
        this.uplink.sendConflicts();
        bus.emit("journal-rolled-back", entry);
      },
      onConflicts: (seqs) => {
        this.uplink.sendConflicts();
        bus.emit("journal-conflicts", seqs);
      },
    });
    const uplink = new Uplink({
      ...{
        address: { site: c.site, device: c.device },
        secret: c.secret,
        url: c.mqttUrl,
        journal,
        version: DEVICE_VERSION,
      },
      ...{ bootedAt: kit.bootedAt, logger, timers, now, batchSize: c.batchSize, ackTimeoutMs: c.ackTimeoutMs },
      cloudLivenessMs: c.cloudLivenessSeconds * 1000,
      onAcked: (upTo) => bus.emit("entries-acked", upTo),
      onCloudAhead: (upTo) => work.track(this.#rollback.catchUp(upTo, "ack")),
      verifyHeld: (after, upTo) => work.track(this.#rollback.verifyHeld(after, upTo)),
      onConflicts: (seqs) => bus.emit("journal-conflicts", seqs),
      ...(deps.onCommand ? { onCommand: deps.onCommand } : {}),
      ...(deps.onDesiredConfig ? { onDesiredConfig: deps.onDesiredConfig } : {}),
      onChange: () => {
        const link = {
          online: uplink.online,
          broker: uplink.brokerConnected,
          cloud: uplink.cloudOnline,
          state: uplink.linkState,
        };
        bus.emit("cloud-link-changed", link);
      },
    });
    this.uplink = uplink;
  }

  async start(): Promise<void> {
    this.#wasOnline = false;
    this.#unlisten = listen(this.#k.bus, { "cloud-link-changed": this.#onLink });
    await this.uplink.start();
    // Not awaited: offline at start the kiosk carries on, and the check runs when the cloud is back.
    this.#checkJournal();
  }

  async stop(): Promise<void> {
    this.#unlisten();
    await this.uplink.stop();
  }

  readonly #onLink = (...[link]: KioskEvents["cloud-link-changed"]) => {
    if (link.online && !this.#wasOnline) {
      this.#checkJournal();
      void this.#d.sync.syncNow();
      this.#k.work
        .track(this.#d.resolvePending())
        .catch((err: Error) =>
          this.#k.log.warn({ err: err.message }, "interrupted payments could not be resolved yet"),
        );
    }
    this.#wasOnline = link.online;
  };

  #checkJournal(): void {
    this.#k.work
      .track(this.#rollback.check())
      .catch((err: Error) =>
        this.#k.log.warn({ err: err.message }, "could not compare the journal with the cloud's; again when it is back"),
      );
  }
}

/** The one client for every device→cloud HTTP call, set up from the kiosk's config. */
export function kioskCloudClient(kit: KioskKit, onAttempt?: (key: string, attempt: number) => void): CloudClient {
  const { config: c, timers } = kit;
  const address = { site: c.site, device: c.device };
  const tillTimeoutMs = c.payments.onlineTimeoutMs;
  return new CloudClient({ address, secret: c.secret, cloudUrl: c.cloudUrl, timers, tillTimeoutMs, onAttempt });
}
