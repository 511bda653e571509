/**
 * The MQTT side of the cloud: subscribes to every device's `events`,
 * `status` and `telemetry`, feeds events to the ingestor, publishes `ack`
 * after commit and `errors` for what was refused, and keeps the cloud's own
 * retained STATE (`paylane/v1/cloud/status`, with a Will of offline).
 *
 * Backpressure: mqtt.js handles incoming packets one at a time, and
 * `handleMessage` decides when the PUBACK goes out. We PUBACK at once while
 * the ingestor has room and hold it (stalling this connection) only when the
 * database falls far behind — PUBACK is never used as a durability signal.
 */

import { randomBytes, randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import {
  AckSchema,
  CloudStatusSchema,
  type Command,
  type CommandResult,
  CommandResultSchema,
  CommandSchema,
  type DesiredConfig,
  DesiredConfigSchema,
  type DeviceAddress,
  decode,
  ErrorReportSchema,
  encode,
  parseTopic,
  REPLAY_FROM,
  type ReportedState,
  ReportedStateSchema,
  realTimers,
  type Status,
  StatusSchema,
  type Telemetry,
  TelemetrySchema,
  type Timers,
  topics,
} from "@paylane/protocol";
import { redactUrl } from "@paylane/protocol/service";
import mqtt, { type IPublishPacket, type MqttClient } from "mqtt";
import type { Logger } from "pino";
import { Counter, Gauge, Histogram, type Registry as MetricsRegistry } from "prom-client";
import type { Database } from "../db/database.ts";
import type { PresenceStore } from "../presence/presence-store.ts";
import { admitEvents, clip } from "./admit.ts";
import { GapTracker } from "./gaps.ts";
import { type FlushOutcome, Ingestor } from "./ingest.ts";

export interface BridgeOptions {
  url: string;
  username?: string;
  password?: string;
  db: Database;
  presence: PresenceStore;
  /** Whether a device is enrolled; events from others are refused. */
  isKnownDevice: (d: DeviceAddress) => boolean;
  logger: Logger;
  metrics: MetricsRegistry;
  now: () => Date;
  /** Identifies this cloud instance in its STATE message. */
  instance: string;
  /** Only these sites' topics (CLOUD_SITES; tests on a shared broker), or every site. */
  sites?: readonly string[];
  /**
   * The shared-subscription group of the ingest (CLOUD_SHARE_GROUP): events are taken on
   * `$share/<group>/paylane/v1/<site>/+/events`, so the bridges of one group split them.
   * Unset: a plain subscription (every bridge would take every event; the inbox deduplicates).
   */
  shareGroup?: string;
  /**
   * Whether this instance ingests (CLOUD_ROLE all or bridge; default true). Without, it takes no
   * events, keeps no gap tracker and announces no cloud STATE: the fleet's other channels only.
   */
  ingest?: boolean;
  /** Fires after each commit, after the acks were handed to the client. */
  onCommitted?: (outcome: FlushOutcome) => void;
  timers?: Timers;
  /** How long a gap in a device's seqs may stay open before the device is asked to replay. */
  gapWaitMs?: number;
  /**
   * The retained STATE is republished this often while connected, with a
   * fresh `heartbeatAt` (default 3): kiosks take a cloud silent for their
   * liveness window as unreachable (docs/status.md).
   */
  heartbeatSeconds?: number;
}

/**
 * What the bridge hears from the fleet, decoded, for the cloud's other parts
 * (commands, configuration, telemetry history, alerts). Listeners run inside
 * the bridge's one-message-at-a-time handler: they must not block or throw.
 */
export interface FleetEvents {
  status: [device: DeviceAddress, status: Status];
  telemetry: [device: DeviceAddress, telemetry: Telemetry];
  /** A `cmd/{name}` seen on the broker: sent by this cloud, or by an operator's tool. */
  command: [device: DeviceAddress, name: string, command: Command];
  "cmd-result": [device: DeviceAddress, result: CommandResult];
  /** The device's reported configuration. */
  state: [device: DeviceAddress, state: ReportedState];
  /** The retained desired configuration (null: cleared). */
  config: [device: DeviceAddress, config: DesiredConfig | null];
  /** After each ingest commit (acks already handed to the client). */
  committed: [outcome: FlushOutcome];
}

const LAST_SEEN_WRITE_MS = 1000;

/**
 * One device's contiguous high-water mark from the inbox (every row holds its place, applied or
 * quarantined, as in INGEST_SQL's `runs`), stored as its stream's mark if higher, and returned.
 */
const RECHECK_SQL = `WITH m AS (
    SELECT coalesce((SELECT acked_seq FROM device_streams WHERE site_id = $1 AND device_id = $2), 0) AS acked
  ),
  run AS (
    SELECT coalesce(max(r.seq), (SELECT acked FROM m)) AS up_to
    FROM (
      SELECT i.seq, i.seq - row_number() OVER (ORDER BY i.seq) AS base
      FROM inbox i, m WHERE i.site_id = $1 AND i.device_id = $2 AND i.seq > m.acked
    ) r
    WHERE r.base = (SELECT acked FROM m)
  )
  INSERT INTO device_streams AS s (site_id, device_id, acked_seq) SELECT $1, $2, up_to FROM run
  ON CONFLICT (site_id, device_id) DO UPDATE SET acked_seq = greatest(s.acked_seq, excluded.acked_seq)
  RETURNING acked_seq`;
/** How long stop() waits for the broker's goodbye PUBACK and a graceful end. */
const STOP_GRACE_MS = 2000;

/** `p`'s value, or undefined once `ms` passed (the timer never outlives the wait). */
async function withinMs<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export class Bridge {
  readonly #o: BridgeOptions;
  #client: MqttClient | undefined;
  #ingestor: Ingestor | undefined;
  readonly #lastSeenWritten = new Map<string, number>();
  readonly #entries: Counter<"outcome">;
  readonly #refusals: Counter<"code">;
  readonly #failures: Counter;
  readonly #gapsDetected: Counter;
  readonly #replaysAsked: Counter;
  readonly #staleWills: Counter;
  readonly #commitSeconds: Histogram;
  readonly #lastCommit: Gauge;
  #heartbeatTimer: unknown;
  /** Set from stop()/kill() on: the echo of our own goodbye must not be answered with an online STATE. */
  #stopping = false;
  /**
   * `publish` calls waiting for their PUBACK. mqtt.js keeps one whose connection dropped to resend
   * after the reconnect, and never settles it once ended: a stop fails them, or whoever awaits one
   * (the config desk's queue, the command redelivery) holds the cloud's stop for ever.
   */
  readonly #unconfirmed = new Set<(err: Error) => void>();
  #gaps: GapTracker | undefined;
  #since: Date | undefined;
  /** Every decoded message of the fleet; see FleetEvents. */
  readonly fleet = new EventEmitter<FleetEvents>();

  constructor(o: BridgeOptions) {
    this.#o = o;
    this.#entries = new Counter({
      name: "paylane_bridge_entries_total",
      help: "Journal entries received, by outcome (applied, duplicate, quarantined, collision)",
      labelNames: ["outcome"],
      registers: [o.metrics],
    });
    this.#refusals = new Counter({
      name: "paylane_bridge_refusals_total",
      help: "Messages or entries refused, by error code",
      labelNames: ["code"],
      registers: [o.metrics],
    });
    this.#failures = new Counter({
      name: "paylane_bridge_commit_failures_total",
      help: "Ingest transactions that failed (nothing acked; devices resend)",
      registers: [o.metrics],
    });
    this.#gapsDetected = new Counter({
      name: "paylane_bridge_gaps_detected_total",
      help: "Gaps seen in a device's seqs (N+2 committed before N+1)",
      registers: [o.metrics],
    });
    this.#staleWills = new Counter({
      name: "paylane_bridge_stale_wills_total",
      help: "Offline statuses ignored because the device's birth in force has a newer session (late Wills)",
      registers: [o.metrics],
    });
    this.#replaysAsked = new Counter({
      name: "paylane_bridge_replays_requested_total",
      help: "cmd/replay-from requests sent to devices for a gap that stayed open",
      registers: [o.metrics],
    });
    this.#commitSeconds = new Histogram({
      name: "paylane_bridge_commit_duration_seconds",
      help: "Duration of one ingest transaction (a batch of entries committed to Postgres before its acks)",
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [o.metrics],
    });
    this.#lastCommit = new Gauge({
      name: "paylane_bridge_last_commit_timestamp_seconds",
      help: "When this bridge last committed an ingest transaction, or started if it has not yet (Unix time)",
      registers: [o.metrics],
    });
    const bridge = this;
    new Gauge({
      name: "paylane_bridge_open_gaps",
      help: "Devices with a gap in their seqs seen and not yet filled (the device is asked to replay)",
      registers: [o.metrics],
      collect() {
        this.set(bridge.#gaps?.open.length ?? 0);
      },
    });
    new Gauge({
      name: "paylane_bridge_oldest_open_gap_age_seconds",
      help: "How long the oldest open gap has been open (0 when none)",
      registers: [o.metrics],
      collect() {
        const now = bridge.#o.now().getTime();
        const oldest = Math.min(now, ...(bridge.#gaps?.open ?? []).map((g) => g.since.getTime()));
        this.set(Math.max(0, (now - oldest) / 1000));
      },
    });
  }

  /**
   * What this instance subscribes, per channel (docs/scale-bridges.md has the why of each):
   * `events` through the share group (each batch to one bridge of the group; the inbox is the
   * truth, see gaps.ts), only when this instance ingests; every other channel plainly, because
   * every instance needs it: `status`, `config` and `state` are retained, and retained messages
   * are not sent on a shared subscription (MQTT 5 §4.8.2), so a shared member would never learn
   * the births and configs held before it connected; `cmd-result` wakes the API instance whose
   * request awaits it; `telemetry` feeds every instance's alert and metrics view. Their writes are
   * idempotent or done by the leader alone (leader.ts). `cloud/status`: an ingesting instance
   * answers another's offline STATE (its Will) with its own online one at once.
   */
  get subscriptions(): string[] {
    const sites = this.#o.sites && this.#o.sites.length > 0 ? this.#o.sites : ["+"];
    const group = this.#o.shareGroup;
    return [
      ...(this.#ingests
        ? [
            ...sites.map((s) => (group ? `$share/${group}/${topics.fleet("events", s)}` : topics.fleet("events", s))),
            topics.cloudStatus,
          ]
        : []),
      ...sites.flatMap((s) => [
        topics.fleet("status", s),
        topics.fleet("telemetry", s),
        topics.fleet("state", s),
        topics.fleet("cmd-result", s),
        topics.fleetConfig(s),
        topics.fleetCommands(s),
      ]),
    ];
  }

  get #ingests(): boolean {
    return this.#o.ingest ?? true;
  }

  get connected(): boolean {
    return this.#client?.connected ?? false;
  }

  get ingestor(): Ingestor {
    if (!this.#ingestor) throw new Error("bridge is not started");
    return this.#ingestor;
  }

  async start(): Promise<void> {
    const { logger } = this.#o;
    this.#stopping = false;
    this.#since = this.#o.now();
    // From the start, not absent: a bridge that never commits after a restart is the stall an alert must see.
    this.#lastCommit.set(this.#since.getTime() / 1000);
    this.#gaps = new GapTracker({
      waitMs: this.#o.gapWaitMs ?? 2000,
      timers: this.#o.timers ?? realTimers,
      now: this.#o.now,
      onGap: (device, from) => {
        this.#gapsDetected.inc();
        logger.info({ site: device.site, device: device.device, from }, "gap in a device's seqs");
      },
      requestReplay: (device, from) => this.#requestReplay(device, from),
      recheck: (device) => this.#recheck(device),
    });
    this.#ingestor = new Ingestor({
      db: this.#o.db,
      now: this.#o.now,
      logger,
      onCommitted: (outcome) => this.#afterCommit(outcome),
      onFailed: () => this.#failures.inc(),
      onTimed: (seconds) => this.#commitSeconds.observe(seconds),
    });
    const client = mqtt.connect(this.#o.url, {
      // Unguessable: on a broker that lets any login take over any client id (Mosquitto), an
      // operator who knew it could kick the cloud off and fire its Will at every kiosk.
      clientId: `paylane-cloud-${this.#o.instance}-${randomBytes(6).toString("hex")}`,
      username: this.#o.username,
      password: this.#o.password,
      protocolVersion: 4,
      clean: true,
      reconnectPeriod: 1000,
      // Only an ingesting instance speaks for the cloud: an API instance's end says nothing to kiosks.
      ...(this.#ingests
        ? {
            will: {
              topic: topics.cloudStatus,
              payload: encode(CloudStatusSchema, { state: "offline" }),
              qos: 1 as const,
              retain: true,
            },
          }
        : {}),
    });
    this.#client = client;
    client.handleMessage = (packet, done) => {
      this.#onPublish(packet).then(
        () => done(),
        (err: Error) => {
          logger.error({ err: err.message, topic: packet.topic }, "message handling failed");
          done();
        },
      );
    };
    client.on("connect", () => {
      const stream = client.stream as { setNoDelay?: (on: boolean) => void };
      stream.setNoDelay?.(true);
      client.subscribe(this.subscriptions, { qos: 1 }, (err) => {
        if (err) logger.error({ err: err.message }, "bridge subscription failed");
        // Announce only once subscribed, so a device that resends on our birth is heard.
        if (this.#ingests) this.#heartbeat(client);
      });
      logger.info({ url: redactUrl(this.#o.url) }, "bridge connected to broker");
    });
    client.on("error", (err) => logger.warn({ err: err.message }, "bridge mqtt error"));
    client.on("close", () => logger.debug("bridge disconnected"));
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) =>
        reject(new Error(`cannot connect to MQTT_URL ${redactUrl(this.#o.url)}: ${err.message}`));
      client.once("connect", () => {
        client.off("error", onError);
        resolve();
      });
      client.once("error", onError);
    });
  }

  /**
   * The retained STATE, online, with this beat's time; the next beat is
   * armed here, so beats stop by themselves when the connection is gone.
   */
  #heartbeat(client: MqttClient): void {
    this.#stopHeartbeat();
    if (this.#client !== client || !client.connected) return;
    const heartbeatSeconds = this.#o.heartbeatSeconds ?? 3;
    client.publish(
      topics.cloudStatus,
      encode(CloudStatusSchema, {
        state: "online",
        since: this.#since!.toISOString(),
        instance: this.#o.instance,
        heartbeatAt: this.#o.now().toISOString(),
        heartbeatSeconds,
      }),
      { qos: 1, retain: true },
    );
    this.#heartbeatTimer = (this.#o.timers ?? realTimers).setTimeout(
      () => this.#heartbeat(client),
      heartbeatSeconds * 1000,
    );
  }

  #stopHeartbeat(): void {
    (this.#o.timers ?? realTimers).clearTimeout(this.#heartbeatTimer);
    this.#heartbeatTimer = undefined;
  }

  /**
   * Stops taking messages, commits what was already received and acks it,
   * then says goodbye on the cloud's STATE topic.
   */
  async stop(): Promise<void> {
    const client = this.#client;
    if (!client) return;
    this.#stopping = true;
    this.#stopHeartbeat();
    await this.#ingestor?.stop();
    // A batch still committing must not arm a new gap timer after this.
    this.#gaps?.stop();
    this.#gaps = undefined;
    if (client.connected) {
      const goodbye = client
        .publishAsync(topics.cloudStatus, encode(CloudStatusSchema, { state: "offline" }), { qos: 1, retain: true })
        .catch(() => {});
      // A broker going away may never PUBACK: the Will says offline for us then.
      await withinMs(goodbye, STOP_GRACE_MS);
    }
    // mqtt.js's graceful end waits for in-flight messages and, while reconnecting (broker
    // restarting), for a connection that may never come: that hung the cloud's stop. Force it then.
    if (!client.connected) {
      await client.endAsync(true);
    } else if (
      !(await withinMs(
        client.endAsync().then(() => true),
        STOP_GRACE_MS,
      ))
    ) {
      // A second end() while the graceful one waits returns at once without forcing anything.
      client.stream.destroy();
    }
    this.#client = undefined;
    this.#failUnconfirmed();
  }

  /** Simulates a crash for tests: the connection drops without goodbye, so the broker fires the Will. */
  async kill(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    this.#stopping = true;
    this.#stopHeartbeat();
    // A batch still committing must not arm a new gap timer after this.
    this.#gaps?.stop();
    this.#gaps = undefined;
    client?.stream.destroy();
    await client?.endAsync(true);
    this.#failUnconfirmed();
  }

  #failUnconfirmed(): void {
    const err = new Error("the cloud stopped before the broker confirmed the message");
    for (const fail of this.#unconfirmed) fail(err);
    this.#unconfirmed.clear();
  }

  async #onPublish(packet: IPublishPacket): Promise<void> {
    if (packet.topic === topics.cloudStatus) {
      this.#onCloudStatus(packet);
      return;
    }
    const parsed = parseTopic(packet.topic);
    if (!parsed) return;
    const addr = { site: parsed.site, device: parsed.device };
    const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
    const now = this.#o.now();
    if (parsed.channel === "events") {
      if (!this.#o.isKnownDevice(addr)) {
        const reason = `device ${addr.site}/${addr.device} is not enrolled`;
        this.ingestor.add([], [{ ...addr, code: "unknown-device", reason, payload: clip(payload) }]);
        return;
      }
      const { entries, refusals } = admitEvents(addr, payload);
      this.ingestor.add(entries, refusals);
      void this.#touch(addr, now);
      await this.ingestor.whenReady();
    } else if (parsed.channel === "status") {
      if (payload.length === 0) return; // a cleared retained message
      const status = decode(StatusSchema, payload);
      if (!status.ok) {
        this.ingestor.add(
          [],
          [{ ...addr, code: "invalid-status", reason: `status: ${status.error}`, payload: clip(payload) }],
        );
        return;
      }
      const s = status.value;
      const session = s.session === undefined ? {} : { session: s.session };
      const applied = await this.#o.presence.setStatus(
        addr,
        s.state === "online"
          ? { state: "online", at: now, version: s.version, bootedAt: s.bootedAt, ...session }
          : { state: "offline", at: now, ...session },
      );
      // A late Will of a connection the device has already replaced: its birth stays in force.
      if (!applied) {
        this.#staleWills.inc();
        this.#o.logger.info({ ...addr, session: s.session }, "a Will older than the device's session ignored");
        return;
      }
      this.#emit("status", addr, s);
    } else if (parsed.channel === "telemetry") {
      void this.#touch(addr, now);
      // Only the payments part is kept (ops watch exposure live); the rest is for whoever subscribes.
      const telemetry = decode(TelemetrySchema, payload);
      if (telemetry.ok) this.#emit("telemetry", addr, telemetry.value);
      if (telemetry.ok && telemetry.value.payments) {
        // Not awaited, like #touch: events queued behind this message need not wait for the store,
        // which keeps the newest report whatever order the writes land in.
        void this.#o.presence
          .setExposure(addr, telemetry.value.payments, new Date(telemetry.value.at))
          .catch((err: Error) => this.#o.logger.warn({ err: err.message }, "exposure write failed"));
      }
    } else if (parsed.channel === "cmd" && parsed.command) {
      const command = decode(CommandSchema, payload);
      if (command.ok) this.#emit("command", addr, parsed.command, command.value);
    } else if (parsed.channel === "cmd-result") {
      const result = decode(CommandResultSchema, payload);
      if (result.ok) this.#emit("cmd-result", addr, result.value);
      else this.#o.logger.warn({ ...addr, error: result.error }, "malformed cmd-result ignored");
    } else if (parsed.channel === "state") {
      if (payload.length === 0) return;
      const state = decode(ReportedStateSchema, payload);
      if (state.ok) this.#emit("state", addr, state.value);
      else this.#o.logger.warn({ ...addr, error: state.error }, "malformed reported state ignored");
    } else if (parsed.channel === "config") {
      if (payload.length === 0) {
        this.#emit("config", addr, null);
        return;
      }
      const config = decode(DesiredConfigSchema, payload);
      if (config.ok) this.#emit("config", addr, config.value);
      else this.#o.logger.warn({ ...addr, error: config.error }, "malformed desired config on the broker ignored");
    }
  }

  /**
   * Another ingesting instance of this cloud went away (its Will, or its goodbye): the retained
   * STATE now says offline although this one still takes the events. Saying online again at once
   * turns the kiosks' "cloud away" into a blip, and the live online makes them resend what is not
   * acked yet (what the gone instance had received and not committed), which this one takes.
   */
  #onCloudStatus(packet: IPublishPacket): void {
    const client = this.#client;
    if (packet.retain || !client || this.#stopping) return;
    const status = decode(CloudStatusSchema, Buffer.from(packet.payload));
    if (status.ok && status.value.state === "offline") {
      this.#o.logger.info("another cloud instance said offline: announcing this one online");
      this.#heartbeat(client);
    }
  }

  #emit<K extends keyof FleetEvents>(event: K, ...args: FleetEvents[K]): void {
    try {
      (this.fleet.emit as (e: K, ...a: FleetEvents[K]) => boolean)(event, ...args);
    } catch (err) {
      this.#o.logger.error({ event, err: (err as Error).message }, "a fleet listener threw");
    }
  }

  /**
   * Publishes as the cloud (a command, a desired config, an alert). Resolves
   * once the broker has it (PUBACK for QoS 1); rejects when not connected.
   */
  async publish(topic: string, payload: Buffer | string, opts: { qos: 0 | 1; retain?: boolean }): Promise<void> {
    const client = this.#client;
    if (!client?.connected) throw new Error("the cloud is not connected to the broker");
    await new Promise<void>((resolve, reject) => {
      this.#unconfirmed.add(reject);
      client
        .publishAsync(topic, payload, { qos: opts.qos, retain: opts.retain ?? false })
        .then(() => resolve(), reject)
        .finally(() => this.#unconfirmed.delete(reject));
    });
  }

  async #touch(addr: DeviceAddress, at: Date): Promise<void> {
    const key = `${addr.site}/${addr.device}`;
    const last = this.#lastSeenWritten.get(key) ?? 0;
    if (at.getTime() - last < LAST_SEEN_WRITE_MS) return;
    this.#lastSeenWritten.set(key, at.getTime());
    await this.#o.presence
      .touch(addr, at)
      .catch((err: Error) => this.#o.logger.warn({ err: err.message }, "presence write failed"));
  }

  #afterCommit(outcome: FlushOutcome): void {
    const client = this.#client;
    this.#lastCommit.set(this.#o.now().getTime() / 1000);
    this.#entries.inc({ outcome: "applied" }, outcome.applied);
    this.#entries.inc({ outcome: "duplicate" }, outcome.duplicates);
    for (const ack of outcome.acks) {
      if (ack.upTo > 0) {
        const conflicts = ack.conflicts.length > 0 ? { conflicts: ack.conflicts } : {};
        client?.publish(topics.ack(ack), encode(AckSchema, { upTo: ack.upTo, ...conflicts }), { qos: 1 });
      }
      this.#gaps?.observe(ack, ack.upTo, ack.maxSeq);
    }
    for (const r of outcome.refusals) {
      if (r.seq !== undefined) this.#entries.inc({ outcome: "quarantined" });
    }
    this.#entries.inc({ outcome: "collision" }, outcome.collisions.length);
    const at = this.#o.now().toISOString();
    for (const c of outcome.collisions) {
      const reason = `the cloud holds another entry at seq ${c.seq}; both are kept for ops, keep yours`;
      client?.publish(topics.errors(c), encode(ErrorReportSchema, { code: "seq-collision", reason, seq: c.seq, at }), {
        qos: 1,
      });
    }
    if (outcome.newCollisions > 0) {
      this.#o.logger.error(
        { collisions: outcome.collisions.map((c) => `${c.site}/${c.device}#${c.seq}`) },
        "another entry arrived at a seq the inbox holds: both kept for ops (a forged publish, or a restored journal)",
      );
    }
    this.#report(outcome.refusals);
    this.#o.onCommitted?.(outcome);
    this.#emit("committed", outcome);
  }

  /**
   * The device's contiguous mark as the inbox has it now, advanced in `device_streams`: another
   * bridge of the share group may have committed the "missing" seqs (a device's batches land on
   * different instances), or committed them at the same moment as this one's batch, whose
   * statement could not see them. When the mark moved, the device hears it (an ack is only ever
   * sent for rows committed).
   */
  async #recheck(device: DeviceAddress): Promise<number> {
    const { rows } = await this.#o.db.query<{ acked_seq: number }>(RECHECK_SQL, [device.site, device.device]);
    const upTo = Number(rows[0]?.acked_seq ?? 0);
    if (upTo > 0) this.#client?.publish(topics.ack(device), encode(AckSchema, { upTo }), { qos: 1 });
    return upTo;
  }

  /** Asks a device to resend its journal from `from` (the first missing seq). */
  #requestReplay(device: DeviceAddress, from: number): void {
    this.#replaysAsked.inc();
    this.#o.logger.warn({ site: device.site, device: device.device, from }, "gap still open: asking for a replay");
    const command = { id: randomUUID(), args: { from } };
    this.#client?.publish(topics.cmd(device, REPLAY_FROM), encode(CommandSchema, command), { qos: 1 });
  }

  /** Reports refusals (already stored in quarantine) on each device's `errors` topic. */
  #report(refusals: FlushOutcome["refusals"]): void {
    const at = this.#o.now().toISOString();
    for (const r of refusals) {
      this.#refusals.inc({ code: r.code });
      this.#o.logger.warn({ site: r.site, device: r.device, code: r.code, seq: r.seq, reason: r.reason }, "refused");
      const report = {
        code: r.code,
        reason: r.reason,
        at,
        ...(r.seq !== undefined ? { seq: r.seq } : {}),
        ...(r.id ? { id: r.id } : {}),
      };
      this.#client?.publish(topics.errors(r), encode(ErrorReportSchema, report), { qos: 1 });
    }
  }
}
