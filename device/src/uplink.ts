/**
 * The kiosk's MQTT link: birth and Last Will on `status`, journal entries out
 * on `events`, the cloud's `ack` back in.
 *
 * Delivery: a PUBACK only means the broker has the message, not that it is
 * committed, so the journal frees nothing on PUBACK. Entries are published in
 * order in batches with a bounded window of unacked entries; the cloud's
 * cumulative `ack {upTo}` advances the journal. If no ack progress is seen for
 * `ackTimeoutMs` while connected, everything after the last ack is resent
 * (covers a broker that dropped queued messages, or a cloud restart). The
 * cloud's inbox makes resends harmless.
 *
 * Status (docs/status.md): each CONNECT takes the next session number
 * (session-counter.ts); its birth and its Will carry it, so the cloud can
 * tell a late Will of a replaced connection from the live one. The kiosk also
 * reads its own `status`: a Will of another session that overwrote its birth
 * while it is connected is answered with the birth again (Sparkplug's
 * rebirth). The cloud's heartbeat and acks feed cloud-liveness.ts: silence
 * for the window while the broker is up means the cloud is unreachable.
 */
import {
  AckSchema,
  CloudStatusSchema,
  type CommandResult,
  CommandResultSchema,
  CommandSchema,
  type DeviceAddress,
  decode,
  deviceIdentity,
  type Entry,
  ErrorReportSchema,
  EventBatchSchema,
  encode,
  MAX_RESULT_REASON_CHARS,
  PROTOCOL_VERSION,
  REPLAY_FROM,
  ReplayFromArgsSchema,
  type ReportedState,
  ReportedStateSchema,
  StatusSchema,
  type Telemetry,
  TelemetrySchema,
  topics,
  validate,
} from "@paylane/protocol";
import { redactUrl } from "@paylane/protocol/service";
import { ExponentialBackoff, fullJitterGenerator, type IBackoff } from "cockatiel";
import mqtt, { type MqttClient } from "mqtt";
import type { Logger } from "pino";
import { CloudLiveness } from "./cloud-liveness.ts";
import { AckBeyondJournalError, type Journal } from "./journal.ts";
import { SessionCounter } from "./session-counter.ts";
import type { Timers } from "./timers.ts";
import { WorkInProgress } from "./work.ts";

/** Drain progress is logged at most this often, and only above this backlog. */
const DRAIN_LOG_MS = 5000;
const DRAIN_LOG_MIN_BACKLOG = 1000;
/** How long stop() waits for the broker to take its DISCONNECT before it drops the socket. */
const GRACEFUL_END_MS = 2000;

/**
 * Whether `work` settled within `ms` of real time and, given `openClient`, before that client's
 * connection closed: without reconnects, a QoS 1 publish whose connection drops waits for a PUBACK
 * that never comes.
 */
async function settlesWithin(work: Promise<unknown>, ms: number, openClient?: MqttClient): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const closed = () => giveUp(false);
  let giveUp: (v: false) => void = () => {};
  const givenUp = new Promise<false>((resolve) => {
    giveUp = resolve;
    timer = setTimeout(() => resolve(false), ms);
  });
  openClient?.once("close", closed);
  try {
    return await Promise.race([work.then(ok, ok), givenUp]);
  } finally {
    clearTimeout(timer);
    openClient?.off("close", closed);
  }
}
const ok = () => true as const;

/**
 * Whether `client` ended gracefully (DISCONNECT sent, socket closed) within `ms` of real time. An
 * end that failed did not: its socket may still be open, so the caller drops it as for a late one.
 */
async function endsWithin(client: MqttClient, ms: number): Promise<boolean> {
  let failed = false;
  const ended = client.endAsync(false).catch(() => {
    failed = true;
  });
  return (await settlesWithin(ended, ms)) && !failed;
}

export interface UplinkOptions {
  address: DeviceAddress;
  secret: string;
  url: string;
  journal: Journal;
  version: string;
  bootedAt: Date;
  logger: Logger;
  timers: Timers;
  now: () => Date;
  /** Entries per `events` message. */
  batchSize?: number;
  /** Unacked entries allowed on the wire at once. */
  window?: number;
  /**
   * Unacked `events` messages allowed at once, whatever `window` says: below
   * the broker's receive maximum (Mosquitto's max_inflight_messages is 20),
   * so QoS 1 publishes never queue behind the broker's flow control.
   */
  maxInflightBatches?: number;
  ackTimeoutMs?: number;
  /** An `events` message is cut to fewer entries above this size (default 192 KiB, under the gateway's 256 KiB packet limit). */
  maxMessageBytes?: number;
  /**
   * No heartbeat and no ack from a cloud whose STATE is online for this long
   * (default 10 s): the cloud is unreachable (`online` false) though the
   * broker is up. See cloud-liveness.ts.
   */
  cloudLivenessMs?: number;
  /** Reconnect backoff bounds; the delay is exponential with full jitter, so a fleet does not return in lockstep. */
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  onChange?: () => void;
  /** Fires after the journal records an ack. */
  onAcked?: (upTo: number) => void;
  /**
   * The cloud acked past the journal's last seq: it holds entries this
   * journal does not have (restored from an older copy, or forged). Resolves
   * once the journal has moved beyond `upTo`; the ack is then recorded.
   */
  onCloudAhead?: (upTo: number) => Promise<void>;
  /**
   * An ack covers entries in (after, upTo] that this session has not sent:
   * an earlier session sent them (and lost the ack), or someone else put
   * other entries at those seqs. Resolves once each of ours that the cloud
   * holds under another id is recorded as a conflict; only then is the ack
   * recorded, so no ack makes an entry compactable that the cloud does not hold.
   */
  verifyHeld?: (after: number, upTo: number) => Promise<void>;
  /** The cloud holds other entries at these seqs than this kiosk's own (they are kept, not compacted). */
  onConflicts?: (seqs: number[]) => void;
  /**
   * A `cmd/{name}` addressed to this kiosk. When set, every command goes here
   * (replay-from too: the handler calls `resendFromAck`); unset, the uplink
   * answers replay-from itself and ignores the rest.
   */
  onCommand?: (name: string, payload: Buffer) => void;
  /** The retained desired configuration (an empty payload: it was cleared). */
  onDesiredConfig?: (payload: Buffer) => void;
}

type Hooks = "onChange" | "onAcked" | "onCloudAhead" | "onConflicts" | "verifyHeld" | "onCommand" | "onDesiredConfig";

/** How the kiosk sees its cloud (telemetry's `cloudLink`). */
export type LinkState = "online" | "unreachable" | "broker-down";

export class Uplink {
  readonly #o: Required<Omit<UplinkOptions, Hooks>> & Pick<UplinkOptions, Hooks>;
  #client: MqttClient | undefined;
  #brokerConnected = false;
  #cloudOnline = false;
  readonly #liveness: CloudLiveness;
  #sessions: SessionCounter | undefined;
  /** The session number of the current (or next) connection: its birth and its Will carry it. */
  #session = 0;
  /** Our own birth of this connection came back on `status`: later offline news there is a late Will. */
  #birthSeen = false;
  /** Highest seq put on the wire since the last (re)connect or resend. */
  #sentUpTo = 0;
  #ackedUpTo = 0;
  #pumping = false;
  #pumpAgain = false;
  /** Bumped by every resend, so a pump that was reading the journal meanwhile does not skip ahead. */
  #generation = 0;
  #ackTimer: unknown;
  #reconnectTimer: unknown;
  #backoff: IBackoff<unknown> | undefined;
  readonly #backoffFactory: ExponentialBackoff<unknown>;
  #stopped = true;
  /** Work on the journal started by a message: `stop()` waits for it, so the journal outlives it. */
  readonly #work = new WorkInProgress();
  /** Batches on the wire this connection, oldest first: the last seq of each and when it went out (ms). */
  #awaitingAck: Array<{ upTo: number; at: number }> = [];
  /** The slowest publish → ack round trip since `takeSlowestAckSeconds()` was last called (ms). */
  #slowestAckMs: number | undefined;
  /** The last drain progress line: when, and the ack then. */
  #drainLog: { at: number; ackedUpTo: number; draining: boolean } | undefined;
  lastError: string | undefined;

  constructor(opts: UplinkOptions) {
    this.#o = {
      batchSize: 100,
      // unset: as many entries as the in-flight cap allows (maxInflightBatches full batches)
      window: Number.POSITIVE_INFINITY,
      maxInflightBatches: 10,
      ackTimeoutMs: 10_000,
      cloudLivenessMs: 10_000,
      maxMessageBytes: 192 * 1024,
      reconnectMinMs: 500,
      reconnectMaxMs: 30_000,
      ...opts,
    };
    // At most maxInflightBatches full batches unacked: a small batchSize must not mean hundreds of messages in flight.
    this.#o.window = Math.min(this.#o.window, this.#o.batchSize * this.#o.maxInflightBatches);
    this.#liveness = new CloudLiveness({
      windowMs: this.#o.cloudLivenessMs,
      timers: this.#o.timers,
      onChange: (alive) => {
        if (alive) this.#o.logger.info("the cloud is heard again: online");
        else
          this.#o.logger.warn(
            { silentMs: this.#liveness.effectiveWindowMs },
            "no heartbeat and no ack from the cloud: taking it as unreachable",
          );
        this.#o.onChange?.();
      },
    });
    this.#backoffFactory = new ExponentialBackoff({
      initialDelay: this.#o.reconnectMinMs,
      maxDelay: this.#o.reconnectMaxMs,
      generator: fullJitterGenerator,
    });
  }

  get brokerConnected(): boolean {
    return this.#brokerConnected;
  }

  /**
   * The cloud is reachable end to end: broker up, the cloud's STATE online,
   * and the cloud heard from within the liveness window.
   */
  get online(): boolean {
    return this.#brokerConnected && this.#cloudOnline && this.#liveness.alive;
  }

  /** What the cloud's retained STATE says (a hung cloud's still says online: see `linkState`). */
  get cloudOnline(): boolean {
    return this.#cloudOnline;
  }

  /** "unreachable": the broker is up but the cloud said offline, or has been silent for the liveness window. */
  get linkState(): LinkState {
    if (!this.#brokerConnected) return "broker-down";
    return this.online ? "online" : "unreachable";
  }

  /** This connection's session number (0 before the first CONNECT). */
  get session(): number {
    return this.#session;
  }

  /** The liveness window, live (desired configuration). */
  setCloudLivenessMs(ms: number): void {
    this.#liveness.setWindowMs(ms);
    this.#o.cloudLivenessMs = ms;
  }

  async start(): Promise<void> {
    this.#stopped = false;
    // Every durable entry is sent without its writer having to say so.
    this.#o.journal.events.on("appended", this.#onAppended);
    this.#ackedUpTo = (await this.#o.journal.stats()).ackedUpTo;
    this.#sessions = await SessionCounter.open(this.#o.journal.db, this.#o.now);
    this.#session = await this.#sessions.next();
    const { address } = this.#o;
    const client = mqtt.connect(this.#o.url, {
      clientId: deviceIdentity.clientId(address),
      username: deviceIdentity.username(address),
      password: this.#o.secret,
      protocolVersion: 4,
      clean: true,
      keepalive: 30,
      connectTimeout: 10_000,
      // Reconnects are ours: exponential backoff with jitter, so a fleet does not return in lockstep.
      reconnectPeriod: 0,
      resubscribe: false,
      will: { topic: topics.status(address), payload: this.#willPayload(), qos: 1, retain: true },
    });
    this.#client = client;
    client.on("connect", () => this.#onConnect(client));
    client.on("close", () => this.#onClose());
    client.on("error", (err) => {
      // While stopping, the socket closes under writes still queued (a PUBACK, a ping): "write after
      // end" then is the stop itself, not a fault to warn ops about.
      if (this.#stopped) {
        this.#o.logger.debug({ err: err.message }, "mqtt error while stopping");
        return;
      }
      this.lastError = err.message;
      this.#o.logger.warn({ err: err.message }, "mqtt error");
    });
    client.on("message", (topic, payload, packet) => this.#onMessage(topic, payload, packet.retain));
    // Small messages on an interactive path: no Nagle (with delayed ACKs it adds ~40 ms to each ack).
    client.on("connect", () => {
      const stream = client.stream as { setNoDelay?: (on: boolean) => void };
      stream.setNoDelay?.(true);
    });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#o.journal.events.off("appended", this.#onAppended);
    this.#o.timers.clearTimeout(this.#ackTimer);
    this.#o.timers.clearTimeout(this.#reconnectTimer);
    this.#ackTimer = undefined;
    this.#reconnectTimer = undefined;
    const client = this.#client;
    this.#client = undefined;
    if (client) {
      // A clean stop says goodbye explicitly; the Will only fires on a crash.
      if (client.connected) {
        const goodbye = client.publishAsync(
          topics.status(this.#o.address),
          encode(StatusSchema, { state: "offline", at: this.#o.now().toISOString(), session: this.#session }),
          { qos: 1, retain: true },
        );
        // Bounded in real time, and ended by a dropped connection: either would otherwise hold the stop forever.
        await settlesWithin(goodbye, GRACEFUL_END_MS, client);
      }
      // A graceful end sends DISCONNECT, on which the broker discards the Will [MQTT-3.14.4-3]; a
      // forced one (socket destroyed) fires it, replacing the goodbye above with a bare offline.
      // Bounded in real time: a broker gone silent must not hold the stop. (A second end() while
      // one is under way returns at once without forcing anything, so the socket is destroyed here.)
      if (!client.connected) await client.endAsync(true);
      else if (!(await endsWithin(client, GRACEFUL_END_MS))) client.stream.destroy();
    }
    // acks being recorded, and a pump reading the journal, finish before the journal may close
    await this.#work.idle();
    this.#brokerConnected = false;
    this.#cloudOnline = false;
    this.#liveness.unwatch();
  }

  #willPayload(): Buffer {
    return encode(StatusSchema, { state: "offline", session: this.#session });
  }

  readonly #onAppended = () => this.notifyAppended();

  /** Sends what the journal holds now (the uplink also does so by itself after each append). */
  notifyAppended(): void {
    void this.#pump();
  }

  /**
   * Sends the entries found to conflict with what the cloud holds at their
   * seqs (see journal-rollback.ts) and that no ack has listed yet, so that
   * the cloud keeps them beside its own; their ack lists them and marks them
   * reported. Outside the window: they are already acked.
   */
  sendConflicts(): void {
    void this.#work.track(
      this.#sendConflicts().catch((err: Error) =>
        this.#o.logger.warn({ err: err.message }, "conflicting entries could not be sent"),
      ),
    );
  }

  /**
   * The batch as one `events` payload, shortened until it is under
   * `maxMessageBytes`: the gateway closes a connection whose packet exceeds
   * its limit (256 KiB by default), so an oversized batch would never land.
   */
  #batchPayload(entries: Entry[]): { payload: Buffer; sent: Entry[] } {
    const { address, maxMessageBytes } = this.#o;
    let sent = entries;
    for (;;) {
      const payload = encode(EventBatchSchema, { device: address.device, entries: sent });
      if (sent.length === 1 || payload.length <= maxMessageBytes) return { payload, sent };
      sent = sent.slice(0, Math.ceil(sent.length / 2));
    }
  }

  async #sendConflicts(): Promise<void> {
    const entries = await this.#o.journal.unreportedConflicts(this.#o.batchSize);
    const client = this.#client;
    if (entries.length === 0 || !client?.connected) return;
    const { address } = this.#o;
    client.publish(topics.events(address), this.#batchPayload(entries).payload, { qos: 1 });
  }

  publishTelemetry(t: Telemetry): void {
    if (!this.#client?.connected) return;
    const message = { cloudLink: this.linkState, ...t };
    this.#client.publish(topics.telemetry(this.#o.address), encode(TelemetrySchema, message), { qos: 0 });
  }

  #onConnect(client: MqttClient): void {
    this.#backoff = undefined;
    this.#brokerConnected = true;
    this.#birthSeen = false;
    this.lastError = undefined;
    const { address } = this.#o;
    this.#o.logger.info({ url: redactUrl(this.#o.url) }, "connected to broker");
    const subscriptions = [
      topics.ack(address),
      topics.errors(address),
      this.#o.onCommand ? topics.cmdAll(address) : topics.cmd(address, REPLAY_FROM),
      ...(this.#o.onDesiredConfig ? [topics.config(address)] : []),
      topics.cloudStatus,
      // our own status: a late Will of an older session overwriting the birth is answered (#onOwnStatus)
      topics.status(address),
    ];
    client.subscribe(subscriptions, { qos: 1 }, (err, granted) => {
      const refused = granted?.filter((g) => g.qos === 128).map((g) => g.topic) ?? [];
      if (err || refused.length > 0) this.#o.logger.error({ err: err?.message, refused }, "subscription refused");
    });
    this.#announce();
    this.#resendFromAck("connected");
    this.sendConflicts();
    this.#o.onChange?.();
  }

  #announce(): void {
    this.#client?.publish(
      topics.status(this.#o.address),
      encode(StatusSchema, {
        state: "online",
        version: this.#o.version,
        bootedAt: this.#o.bootedAt.toISOString(),
        protocol: PROTOCOL_VERSION,
        session: this.#session,
      }),
      { qos: 1, retain: true },
    );
  }

  #onClose(): void {
    const wasConnected = this.#brokerConnected;
    this.#brokerConnected = false;
    // Without the broker the kiosk cannot see the cloud; its STATE will say again after reconnecting.
    this.#cloudOnline = false;
    this.#liveness.unwatch();
    this.#o.timers.clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
    if (wasConnected) {
      // A stop's own disconnect is no news; a broker gone away is.
      if (!this.#stopped) this.#o.logger.warn("disconnected from broker");
      this.#o.onChange?.();
    }
    if (this.#stopped || this.#reconnectTimer !== undefined) return;
    this.#backoff = this.#backoff ? this.#backoff.next(undefined) : this.#backoffFactory.next();
    const delay = this.#backoff.duration;
    this.#reconnectTimer = this.#o.timers.setTimeout(() => {
      this.#reconnectTimer = undefined;
      void this.#work.track(this.#reconnect());
    }, delay);
  }

  /** A new session for each CONNECT: recorded first, then put in the Will the CONNECT carries. */
  async #reconnect(): Promise<void> {
    if (this.#stopped || !this.#sessions) return;
    try {
      this.#session = await this.#sessions.next();
    } catch (err) {
      // The journal's file refused the write: try again after the next backoff rather than reuse a number.
      this.#o.logger.error({ err: (err as Error).message }, "no new session number: reconnect postponed");
      this.#onClose();
      return;
    }
    const client = this.#client;
    if (this.#stopped || !client) return;
    if (client.options.will) client.options.will.payload = this.#willPayload();
    client.reconnect();
  }

  /** `retained`: delivered because we subscribed (a stored message), not published live. */
  #onMessage(topic: string, payload: Buffer, retained = false): void {
    const { address } = this.#o;
    if (topic === topics.ack(address)) {
      const ack = decode(AckSchema, payload);
      if (!ack.ok) {
        this.#o.logger.error({ error: ack.error }, "malformed ack ignored");
        return;
      }
      // Only the cloud acks (the broker never does): it is alive.
      this.#liveness.heard();
      void this.#work.track(this.#onAck(ack.value.upTo, ack.value.conflicts ?? []));
    } else if (topic === topics.status(address)) {
      this.#onOwnStatus(payload, retained);
    } else if (topic === topics.cloudStatus) {
      const status = decode(CloudStatusSchema, payload);
      if (!status.ok) return;
      const wasCloudOnline = this.#cloudOnline;
      const s = status.value;
      this.#cloudOnline = s.state === "online";
      if (s.state === "online" && s.heartbeatSeconds !== undefined) {
        // The first online STATE starts the window; a live one after it is a heartbeat (which
        // reports a return from silence itself, through the liveness' onChange).
        if (!wasCloudOnline || !this.#liveness.watching) this.#liveness.watch(s.heartbeatSeconds);
        else if (!retained) this.#liveness.heard();
      } else {
        // Offline, or a cloud that sends no heartbeats: its STATE alone says whether it is there.
        const wasAlive = this.#liveness.alive;
        this.#liveness.unwatch();
        // A silent cloud that now says online without heartbeats is back: nothing else reports that.
        if (!wasAlive && wasCloudOnline && this.#cloudOnline) this.#o.onChange?.();
      }
      if (this.#cloudOnline !== wasCloudOnline) {
        this.#o.logger.info({ cloud: status.value.state }, "cloud status changed");
        if (this.#cloudOnline) {
          // The cloud came back: re-announce (it may have lost our birth) and resend what it has not
          // acked. Not for the retained STATE delivered on our own (re)subscribe: the connect already
          // resent from the last ack and the cloud was listening, so again would double every batch.
          // A live "online" means the cloud has just (re)subscribed and may have missed everything.
          this.#announce();
          if (!retained) this.#resendFromAck("cloud online");
        }
        this.#o.onChange?.();
      }
    } else if (topic === topics.config(address)) {
      this.#o.onDesiredConfig?.(payload);
    } else if (this.#o.onCommand && topic.startsWith(topics.cmdPrefix(address))) {
      this.#o.onCommand(topic.slice(topics.cmdPrefix(address).length), payload);
    } else if (topic === topics.cmd(address, REPLAY_FROM)) {
      this.#onReplayFrom(payload);
    } else if (topic === topics.errors(address)) {
      const report = decode(ErrorReportSchema, payload);
      this.#o.logger.error(report.ok ? report.value : { error: report.error }, "cloud refused a message");
    }
  }

  /**
   * Our own retained `status`, read back. Our birth coming back marks the
   * point after which the retained message is ours; a live `offline` of another
   * session after that is a Will the broker fired late for a connection we
   * already replaced (or a goodbye of an older run), and it now stands on
   * the topic while we are connected: the birth goes out again.
   */
  #onOwnStatus(payload: Buffer, retained: boolean): void {
    if (payload.length === 0) return;
    const status = decode(StatusSchema, payload);
    if (!status.ok) return;
    const s = status.value;
    if (s.state === "online") {
      if (s.session === this.#session) this.#birthSeen = true;
      return;
    }
    // A retained copy was stored before our SUBSCRIBE, so before our birth, which replaced it.
    if (retained || !this.#birthSeen || !this.#brokerConnected || s.session === this.#session) return;
    this.#o.logger.warn(
      { staleSession: s.session ?? null, session: this.#session },
      "a late Will of an older connection overwrote our status: announcing again",
    );
    this.#announce();
  }

  /**
   * The cloud saw a gap and asks for everything from `from`. Acks stop at a
   * gap, so the journal's unacked entries start there: a resend from the last
   * ack covers it (and a stale request only causes harmless duplicates).
   */
  #onReplayFrom(payload: Buffer): void {
    const command = decode(CommandSchema, payload);
    if (!command.ok) {
      this.#o.logger.error({ error: command.error }, "malformed replay-from command ignored");
      return;
    }
    const { id } = command.value;
    const args = validate(ReplayFromArgsSchema, command.value.args, "args");
    const at = this.#o.now().toISOString();
    let result: CommandResult;
    if (!args.ok) {
      result = { id, command: REPLAY_FROM, status: "failed", reason: args.error, at };
    } else {
      this.#o.logger.info({ from: args.value.from, ackedUpTo: this.#ackedUpTo }, "cloud asked for a replay");
      void this.replayFrom(args.value.from).then((replay) =>
        this.publishCommandResult({ id, command: REPLAY_FROM, status: "done", result: replay, at }),
      );
      return;
    }
    this.publishCommandResult(result);
  }

  /** Resends everything after the last ack (what a plain reconnect needs); says from where. */
  resendFromAck(reason: string): { resendingFrom: number } {
    this.#resendFromAck(reason);
    return { resendingFrom: this.#ackedUpTo + 1 };
  }

  /**
   * What `cmd/replay-from` asks for. Usually `from` is past our ack and this is
   * a resend from the ack. But a cloud restored to an earlier point, or one
   * that failed over to an asynchronous replica, has lost entries it had
   * acked: it asks from below our ack, and we send those again from the
   * journal while it still holds them (compaction keeps acked entries for the
   * retention window), so the loss heals from the kiosks. Entries already
   * compacted cannot come back; the answer says from where it really resends.
   */
  async replayFrom(from: number): Promise<{ resendingFrom: number; compactedBefore?: number }> {
    const acked = this.#ackedUpTo;
    if (from > acked) return this.resendFromAck("replay-from");
    let next = from - 1;
    let first: number | undefined;
    try {
      while (next < acked) {
        const entries = (await this.#o.journal.entriesAfter(next, this.#o.batchSize)).filter((e) => e.seq <= acked);
        if (entries.length === 0) break;
        first ??= entries[0]!.seq;
        const client = this.#client;
        if (!client?.connected) break;
        for (let batch = entries; batch.length > 0; ) {
          const { payload, sent } = this.#batchPayload(batch);
          client.publish(topics.events(this.#o.address), payload, { qos: 1 });
          batch = batch.slice(sent.length);
        }
        next = entries[entries.length - 1]!.seq;
      }
    } catch (err) {
      this.#o.logger.error({ err: (err as Error).message, from }, "acked entries could not be read for a replay");
    }
    this.#resendFromAck("replay-from");
    const resendingFrom = first ?? acked + 1;
    if (resendingFrom > from) {
      this.#o.logger.error(
        { from, resendingFrom },
        "the cloud lost acked entries this kiosk has already compacted: they need ops (docs/disaster-recovery.md)",
      );
      return { resendingFrom, compactedBefore: resendingFrom };
    }
    this.#o.logger.warn({ from, ackedUpTo: acked }, "the cloud lost entries it had acked: sending them again");
    return { resendingFrom };
  }

  publishCommandResult(result: CommandResult): void {
    // A peripheral's error text can be long: clipped, so the result is still valid (and sent).
    if ("reason" in result && result.reason.length > MAX_RESULT_REASON_CHARS) {
      result = { ...result, reason: `${result.reason.slice(0, MAX_RESULT_REASON_CHARS - 1)}…` };
    }
    this.#client?.publish(topics.cmdResult(this.#o.address), encode(CommandResultSchema, result), { qos: 1 });
  }

  /** The reported configuration, retained (what `config` asked for and what was applied). */
  publishState(state: ReportedState): void {
    this.#client?.publish(topics.state(this.#o.address), encode(ReportedStateSchema, state), {
      qos: 1,
      retain: true,
    });
  }

  async #onAck(upTo: number, conflicts: number[]): Promise<void> {
    if (conflicts.length > 0) {
      // Before anything else: these entries must outlive the ack that covers them.
      try {
        await this.#o.journal.markAcked(this.#ackedUpTo, conflicts);
      } catch (err) {
        this.#o.logger.error(
          { err: (err as Error).message, conflicts },
          "conflicts could not be recorded; ack ignored",
        );
        return;
      }
      this.#o.logger.error(
        { conflicts },
        "the cloud holds other entries at these seqs than ours: ours are kept for ops to resolve",
      );
      this.#o.onConflicts?.(conflicts);
    }
    if (upTo <= this.#ackedUpTo) return;
    this.#timeAck(upTo);
    const early = upTo <= this.#sentUpTo;
    const unsentFrom = early ? null : Math.max(this.#ackedUpTo, this.#sentUpTo);
    if (early) {
      // An ack of what we sent this session is within the journal: open the window at once and
      // record it meanwhile (a backlog drains a round trip of fsync faster; losing the mark in a
      // crash only means entries the cloud already holds are sent again and absorbed).
      this.#ackedUpTo = upTo;
      this.#armAckTimer(true);
      void this.#pump();
    }
    try {
      this.#ackedUpTo = Math.max(this.#ackedUpTo, await this.#markAcked(upTo, unsentFrom));
    } catch (err) {
      this.#o.logger.error({ err: (err as Error).message, upTo }, "ack refused by journal");
      return;
    }
    this.#o.onAcked?.(this.#ackedUpTo);
    if (!early) {
      // an ack of what an earlier session sent: the window opens only now that the journal took it,
      // and the pump goes on after it rather than sending what the cloud just acked
      if (this.#sentUpTo < this.#ackedUpTo) {
        this.#sentUpTo = this.#ackedUpTo;
        this.#generation++;
      }
      this.#armAckTimer(true);
      void this.#pump();
    }
    this.#o.onChange?.();
    void this.#reportDrain().catch((err: Error) =>
      this.#o.logger.warn({ err: err.message }, "backlog progress could not be read"),
    );
  }

  /**
   * The slowest publish → ack round trip of a batch since the last call, in
   * seconds (undefined: no batch was acked meanwhile), and starts over: each
   * telemetry report carries the slowest since the one before.
   */
  takeSlowestAckSeconds(): number | undefined {
    const ms = this.#slowestAckMs;
    this.#slowestAckMs = undefined;
    return ms === undefined ? undefined : ms / 1000;
  }

  /** The batches `upTo` acks: each one's round trip since it went out. */
  #timeAck(upTo: number): void {
    const now = this.#o.now().getTime();
    let acked = 0;
    while (acked < this.#awaitingAck.length && this.#awaitingAck[acked]!.upTo <= upTo) {
      const ms = Math.max(0, now - this.#awaitingAck[acked]!.at);
      this.#slowestAckMs = Math.max(this.#slowestAckMs ?? 0, ms);
      acked++;
    }
    this.#awaitingAck.splice(0, acked);
  }

  /** Records an ack; one beyond the journal first moves the journal past it (a rolled-back journal). */
  async #markAcked(upTo: number, unsentFrom: number | null): Promise<number> {
    if (unsentFrom !== null && this.#o.verifyHeld) await this.#o.verifyHeld(unsentFrom, upTo);
    try {
      return await this.#o.journal.markAcked(upTo);
    } catch (err) {
      if (!(err instanceof AckBeyondJournalError) || !this.#o.onCloudAhead) throw err;
      await this.#o.onCloudAhead(upTo);
      return this.#o.journal.markAcked(upTo);
    }
  }

  /**
   * While a backlog of DRAIN_LOG_MIN_BACKLOG or more drains (after a
   * partition), logs what is left and how fast every DRAIN_LOG_MS, and once
   * when it is empty: long work shows progress.
   */
  async #reportDrain(): Promise<void> {
    const now = this.#o.now().getTime();
    const last = this.#drainLog;
    // Between progress lines, only an ack of everything sent can be the end: nothing else needs the journal.
    if (last && now - last.at < DRAIN_LOG_MS && !(last.draining && this.#ackedUpTo >= this.#sentUpTo)) return;
    const { backlog } = await this.#o.journal.stats();
    if (last?.draining && backlog === 0) {
      this.#o.logger.info({ ackedUpTo: this.#ackedUpTo }, "backlog drained");
      this.#drainLog = { at: now, ackedUpTo: this.#ackedUpTo, draining: false };
      return;
    }
    if (!last?.draining && backlog < DRAIN_LOG_MIN_BACKLOG) {
      this.#drainLog = { at: now, ackedUpTo: this.#ackedUpTo, draining: false };
      return;
    }
    if (last?.draining && now - last.at < DRAIN_LOG_MS) return;
    const rate = last?.draining ? ((this.#ackedUpTo - last.ackedUpTo) * 1000) / Math.max(1, now - last.at) : undefined;
    this.#drainLog = { at: now, ackedUpTo: this.#ackedUpTo, draining: true };
    this.#o.logger.info(
      { backlog, ackedUpTo: this.#ackedUpTo, perSecond: rate && Math.round(rate) },
      "draining backlog",
    );
  }

  #resendFromAck(reason: string): void {
    if (this.#sentUpTo > this.#ackedUpTo)
      this.#o.logger.info({ from: this.#ackedUpTo + 1, reason }, "resending unacked");
    // A resent batch's round trip counts from its resend (the first send's wait is the ack timeout's).
    this.#awaitingAck = [];
    this.#sentUpTo = this.#ackedUpTo;
    this.#generation++;
    void this.#pump();
  }

  /** (Re)arms the ack timer while entries are outstanding. `progress` restarts it. */
  #armAckTimer(progress: boolean): void {
    const { timers } = this.#o;
    if (progress || this.#sentUpTo <= this.#ackedUpTo) {
      timers.clearTimeout(this.#ackTimer);
      this.#ackTimer = undefined;
    }
    if (this.#ackTimer !== undefined || this.#sentUpTo <= this.#ackedUpTo || !this.#brokerConnected) return;
    this.#ackTimer = timers.setTimeout(() => {
      this.#ackTimer = undefined;
      if (this.#brokerConnected && this.#sentUpTo > this.#ackedUpTo) this.#resendFromAck("ack timeout");
    }, this.#o.ackTimeoutMs);
  }

  /** Publishes unsent entries while the window allows. One pump at a time; a request during a pump re-runs it. */
  #pump(): Promise<void> {
    if (this.#pumping) {
      this.#pumpAgain = true;
      return Promise.resolve();
    }
    this.#pumping = true;
    const run = (async () => {
      try {
        do {
          this.#pumpAgain = false;
          await this.#pumpOnce();
        } while (this.#pumpAgain);
      } catch (err) {
        this.#o.logger.error({ err: (err as Error).message }, "publishing from the journal failed");
      } finally {
        this.#pumping = false;
      }
    })();
    void this.#work.track(run);
    return run;
  }

  async #pumpOnce(): Promise<void> {
    const { journal, batchSize, window, address } = this.#o;
    while (this.#client?.connected && this.#sentUpTo - this.#ackedUpTo < window) {
      const room = Math.min(batchSize, window - (this.#sentUpTo - this.#ackedUpTo));
      const generation = this.#generation;
      const entries = await journal.entriesAfter(this.#sentUpTo, room);
      if (generation !== this.#generation) continue; // a resend moved the start while we read
      if (entries.length === 0) break;
      const client = this.#client;
      if (!client?.connected) break;
      const { payload, sent } = this.#batchPayload(entries);
      client.publish(topics.events(address), payload, { qos: 1 });
      this.#sentUpTo = sent[sent.length - 1]!.seq;
      this.#awaitingAck.push({ upTo: this.#sentUpTo, at: this.#o.now().getTime() });
      this.#armAckTimer(false);
    }
  }
}
