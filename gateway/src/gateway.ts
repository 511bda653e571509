/**
 * The PayLane MQTT gateway: an aedes broker on plain TCP that authenticates
 * every CONNECT against the identity registry and applies the deny-by-default
 * topic ACLs of `acl.ts` to every PUBLISH, SUBSCRIBE and Will.
 *
 * aedes speaks MQTT 3.1 and 3.1.1 (not 5), so refusals use what 3.1.1 has:
 * - CONNECT: CONNACK return code 4 (bad user name or password) or 5 (not
 *   authorized) [MQTT-3.2.2-5], then the connection is closed.
 * - SUBSCRIBE: SUBACK return code 0x80 for that filter alone [MQTT-3.9.3-1];
 *   the connection and the client's other filters stay.
 * - PUBLISH: 3.1.1 has no negative PUBACK, so the connection is closed
 *   [MQTT-3.3.5-2]. A client publishing outside its ACL is misconfigured or
 *   hostile; a positive PUBACK for a dropped message would hide that from it.
 *
 * Hostile clients (limits.ts): every connection, on each listener (mqtt,
 * mqtts, wss), first passes a per-address connect-rate limit (refused: the
 * socket is closed, nothing else runs), then reaches aedes through a
 * `PacketSizeGuard` that closes it when a packet announces more than the
 * maximum size. aedes closes it if CONNECT does not come in time; password
 * checks are rationed per address; a device publishing faster than its
 * message rate is disconnected.
 *
 * Operators (people and their tools, `ops:{id}`): the ACL confines them by
 * role and granted site. A subscription may hold `+` for the site, so every
 * message about to be delivered to an operator is checked against its grant
 * (aedes' authorizeForward; Mosquitto checks read access per message too).
 * A command or desired configuration an operator publishes gets its `by`
 * field set to the operator's id by the gateway, so the audit of who sent
 * it cannot be forged.
 *
 * Revocation: `replaceRegistry` disconnects every live client whose identity
 * the new registry no longer has, has with another secret, or (operators)
 * has with another role or other sites.
 */
import { randomUUID } from "node:crypto";
import type { EventEmitter } from "node:events";
import { createServer as createHttpServer, type Server as HttpServer, type IncomingMessage } from "node:http";
import { createServer, type Server, type Socket } from "node:net";
import { type Duplex, Readable } from "node:stream";
import { createSecureContext, type SecureContext, TLSSocket } from "node:tls";
import { deviceIdentity, type Identity, parseTopic, type Registry, topics } from "@paylane/protocol";
import {
  Aedes,
  type AedesPublishPacket,
  type AuthenticateError,
  type Client,
  type ConnectPacket,
  type Subscription,
} from "aedes";
import type { Logger } from "pino";
import { Counter, Gauge, type Registry as MetricsRegistry } from "prom-client";
import { RateLimiterMemory, RateLimiterRes } from "rate-limiter-flexible";
import { createWebSocketStream, WebSocketServer } from "ws";
import { checkForward, checkPublish, checkSubscribe, checkWill, type Decision } from "./acl.ts";
import { DeadWills, type StoredWill } from "./dead-wills.ts";
import { boundEmitterDepth } from "./emitter-depth.ts";
import { DEFAULT_LIMITS, type GatewayLimits, KeyedSemaphore } from "./limits.ts";
import { PacketSizeGuard, type Violation } from "./packet-guard.ts";
import { RedisBackend, type RedisSharing } from "./redis.ts";
import {
  LocalDirectory,
  RedisDirectory,
  type ShareDirectory,
  SharedSubscriptions,
  type ShareOutcome,
} from "./shared-subscriptions.ts";
import { countRetained, WireBytes } from "./wire-metrics.ts";

export interface GatewayOptions {
  /** Who may connect; see `replaceRegistry` to swap it at run time. */
  registry: Registry;
  /** TCP port for MQTT; 0 picks a free one, readable as `gateway.port` after `start()`. */
  port: number;
  /** Interface to listen on. Default 127.0.0.1: exposing the broker is an explicit choice. */
  host?: string;
  logger: Logger;
  /** prom-client registry the gateway's metrics are registered on. */
  metrics: MetricsRegistry;
  /** Overrides of `DEFAULT_LIMITS`. */
  limits?: Partial<GatewayLimits>;
  /** PEM certificate (chain) and key for the mqtts and wss listeners. */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** Port for MQTT over TLS (mqtts); needs `tls`. 0 picks a free one. Unset: no mqtts listener. */
  tlsPort?: number;
  /** Port for MQTT over secure WebSocket (wss); needs `tls`. 0 picks a free one. Unset: no wss listener. */
  wssPort?: number;
  /**
   * Sessions, subscriptions, retained messages, Wills and shared-subscription
   * members in Redis, shared with every gateway on the same URL and prefix
   * (redis.ts). Unset: in memory, this instance alone.
   */
  redis?: RedisSharing;
  /** This instance's name (logs, metrics, Redis entries). Default gateway-1. */
  instance?: string;
  /** How often the shared-subscription directory in Redis is refreshed (default 1000 ms). */
  shareHeartbeatMs?: number;
}

export type Transport = "mqtt" | "mqtts" | "wss";

type Will = NonNullable<ConnectPacket["will"]>;
/** How long a stop waits for aedes' close while Redis is unreachable (it would wait for ever). */
const CLOSE_WITHOUT_REDIS_MS = 3000;

interface Session {
  /** Set once CONNECT authenticated; absent means nothing is authorized. */
  identity?: Identity;
  /** The username it authenticated with, and the secret hash it matched, to notice a revocation. */
  username?: string;
  secretHash?: string;
  /** The Will of the CONNECT, to recognise it when aedes asks to publish it. */
  will?: Will;
  /** Set once it went over its message rate: its connection is closing, later packets are refused quietly. */
  overRate?: boolean;
}

interface Listener {
  transport: Transport;
  server: Server;
  port: number;
}

const LISTENING: Record<Transport, string> = {
  mqtt: "MQTT gateway listening",
  mqtts: "MQTT over TLS listening",
  wss: "MQTT over secure WebSocket listening",
};

/** The message aedes' connect timer errors with (lib/client.js); nothing else tells a timeout apart. */
const AEDES_CONNECT_TIMEOUT = "connect did not arrive in time";

/** CONNACK return codes of MQTT 3.1.1 §3.2.2.3 (aedes' `AuthErrorCode` is an ambient const enum). */
const CONNACK = { serverUnavailable: 3, badUsernameOrPassword: 4, notAuthorized: 5 } as const;

/**
 * aedes' broker heartbeat with Redis (its default is 60 s): one instance
 * publishes the Wills of a dead instance's clients once it missed three, and
 * it looks every four (dead-wills.ts).
 */
const SHARED_HEARTBEAT_MS = 10_000;

/** aedes-persistence's getWill, which the persistence's typings leave out: this broker's stored Will of a client. */
interface WillReader {
  getWill(client: { id: string }): Promise<object | null>;
}

/** Device client ids are `paylane:{site}:{device}` (up to 135 characters); aedes limits MQTT 3.1 ids to 23. */
const MAX_CLIENT_ID_LENGTH = 256;

interface GatewayMetrics {
  connections: Counter;
  authFailures: Counter<"reason">;
  publishesRefused: Counter<"kind">;
  subscriptionsRefused: Counter<"kind">;
  messagesPublished: Counter<"channel">;
  clients: Gauge;
  rateLimited: Counter<"limit">;
  oversizePackets: Counter<"reason">;
  connectTimeouts: Counter;
  revocations: Counter<"reason">;
  forwardsFiltered: Counter;
  receivedBytes: Counter;
  sentBytes: Counter;
  retained: Gauge;
  shared: Counter<"outcome">;
  sharedMembers: Gauge;
  deadWills: Counter<"outcome">;
  willSweeps: Counter<"outcome">;
  reannounced: Counter;
  info: Gauge<"instance" | "persistence">;
}

/** What `start()` opened; one object, so `stop()` closes exactly what this start made. */
interface Running {
  broker: Aedes;
  /** Set with the redis option. */
  backend?: RedisBackend;
  deadWills?: DeadWills;
  shared: SharedSubscriptions;
  directory: ShareDirectory;
  listeners: Listener[];
  connectLimiter: RateLimiterMemory;
  messageLimiter: RateLimiterMemory;
  authChecks: KeyedSemaphore;
  authFailures: RateLimiterMemory;
  /** The wss listener's HTTP layer (not listening itself: it is fed decrypted sockets). */
  wssHttp?: HttpServer;
  wss?: WebSocketServer;
}

export class Gateway {
  readonly #options: GatewayOptions;
  readonly #limits: GatewayLimits;
  #registry: Registry;
  #running: Running | undefined;
  /** The step of the stop in progress: a stop that hangs names it. */
  #stage: string | undefined;
  readonly #sockets = new Set<Socket>();
  /** Bytes on every accepted socket, across restarts (the byte counters read it when scraped). */
  readonly #wire = new WireBytes();
  /** Clients that completed CONNECT, for revocation. */
  readonly #live = new Set<Client>();
  readonly #sessions = new WeakMap<Client, Session>();
  /** wss connections still in TLS or HTTP, and the timer that closes them if they never upgrade. */
  readonly #upgradeTimers = new WeakMap<Duplex, NodeJS.Timeout>();
  #metrics: GatewayMetrics | undefined;

  constructor(options: GatewayOptions) {
    this.#options = options;
    this.#limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.#registry = options.registry;
  }

  /** The TCP port of the plain MQTT listener. */
  get port(): number {
    return this.#listenerPort("mqtt");
  }

  /** The port of the mqtts listener. */
  get tlsPort(): number {
    return this.#listenerPort("mqtts");
  }

  /** The port of the wss listener. */
  get wssPort(): number {
    return this.#listenerPort("wss");
  }

  get limits(): Readonly<GatewayLimits> {
    return this.#limits;
  }

  get running(): boolean {
    return this.#running !== undefined;
  }

  /** Clients that completed CONNECT. */
  get clients(): number {
    return this.#running?.broker.connectedClients ?? 0;
  }

  get instance(): string {
    return this.#options.instance ?? "gateway-1";
  }

  /** Where sessions and retained messages live. */
  get persistence(): "memory" | "redis" {
    return this.#options.redis ? "redis" : "memory";
  }

  /** With Redis: "ok" while every connection to it is ready, "down" while one is lost. Undefined in memory. */
  get redis(): "ok" | "down" | undefined {
    if (!this.#options.redis) return undefined;
    return this.#running?.backend?.state ?? "down";
  }

  /** Instances (broker ids) holding members of `key`, as this instance sees them: the same everywhere once settled. */
  sharedHolders(key: string): readonly { broker: string; members: number }[] {
    return this.#running?.directory.holders(key) ?? [];
  }

  /** Connected members of the shared subscription `key` (`$share/{group}/{filter}`) on this instance. */
  sharedMembers(key: string): number {
    return this.#running?.shared.membersOf(key) ?? 0;
  }

  #listenerPort(transport: Transport): number {
    const listener = this.#running?.listeners.find((l) => l.transport === transport);
    if (!listener) throw new Error(`the gateway has no ${transport} listener running`);
    return listener.port;
  }

  /**
   * Later CONNECTs authenticate against `registry`, and every live client
   * whose identity it no longer holds, or holds with another secret, is
   * disconnected now. Its reconnect then fails with CONNACK 4.
   */
  replaceRegistry(registry: Registry): void {
    const previous = this.#registry;
    if (registry === previous) return;
    registry.adoptVerified(previous);
    this.#registry = registry;
    for (const client of this.#live) this.#closeIfRevoked(client);
  }

  /**
   * Closes a session whose identity the registry in force no longer has, or
   * has with another secret. Also run when a client becomes ready: one
   * authenticated just before a registry change is not live yet at the change.
   */
  #closeIfRevoked(client: Client): boolean {
    const session = this.#sessions.get(client);
    if (!session?.username) return false;
    const now = this.#registry.secretHashOf(session.username);
    let reason: string;
    if (now === undefined) reason = "removed";
    else if (now !== session.secretHash) reason = "secret-changed";
    else if (this.#grantChanged(session.identity)) reason = "grant-changed";
    else return false;
    this.#metrics?.revocations.inc({ reason });
    this.#options.logger.warn(
      { clientId: client.id, username: session.username, reason },
      "identity revoked by the new registry; disconnecting its session",
    );
    // No DISCONNECT in 3.1.1 from the server: the connection is closed (its Will is published).
    // Off the live set now, so clientDisconnect will not see it: off the list of connected ids in Redis too,
    // or the other instances would take it for connected here for as long as this one lives.
    if (this.#live.delete(client)) this.#running?.deadWills?.disconnected(client.id);
    client.close();
    return true;
  }

  /**
   * Closes a client whose Will another instance published while it took this
   * one for dead: it reconnects and announces itself online again.
   */
  #closeWithoutWill(client: Client): boolean {
    if (!this.#live.has(client)) return false;
    // aedes publishes the Will of a client the broker closes; this one went out once already, and a second
    // "offline" could land after the client's new birth.
    (client as Client & { will: Will | null }).will = null;
    client.close();
    return true;
  }

  /**
   * Whether an operator's role or sites differ in the registry in force: its
   * subscriptions were granted under the old ones, so the session is closed
   * and the operator reconnects under the new grant.
   */
  #grantChanged(identity: Identity | undefined): boolean {
    if (identity?.kind !== "operator") return false;
    const now = this.#registry.operators.find((o) => o.id === identity.id);
    if (!now) return true;
    const sameSites = now.sites.length === identity.sites.length && now.sites.every((s) => identity.sites.includes(s));
    return now.role !== identity.role || !sameSites;
  }

  async start(): Promise<{ port: number; tlsPort?: number; wssPort?: number }> {
    if (this.#running) throw new Error("the gateway is already started");
    const o = this.#options;
    const limits = this.#limits;
    const log = o.logger;
    if ((o.tlsPort !== undefined || o.wssPort !== undefined) && !o.tls) {
      throw new Error("an mqtts or wss port needs a TLS certificate and key (the tls option)");
    }
    // Throws on a bad certificate or key before anything listens.
    const secureContext = o.tls ? createSecureContext({ cert: o.tls.cert, key: o.tls.key }) : undefined;
    // Created once: a registry refuses a second metric of the same name on restart.
    this.#metrics ??= this.#createMetrics();
    const metrics = this.#metrics;

    // Unique per start: aedes tells brokers (and their packets) apart by id; the instance name helps a reader.
    const brokerId = `${this.instance}-${randomUUID().slice(0, 8)}`;
    const heartbeatMs = o.redis?.heartbeatMs ?? SHARED_HEARTBEAT_MS;
    let backend: RedisBackend | undefined;
    let deadWills: DeadWills | undefined;
    if (o.redis) {
      backend = new RedisBackend(o.redis);
      await backend.start({
        onLost: (err) => {
          deadWills?.redisLost();
          log.error(
            { redis: backend?.where, err: err.message },
            "Redis connection lost: not ready (/readyz 503) and nothing is delivered until it is back; reconnecting",
          );
        },
        onBack: () => {
          log.info({ redis: backend?.where }, "Redis connection back; ready");
          deadWills?.redisBack();
        },
      });
      log.info(
        { redis: backend.where, prefix: o.redis.prefix },
        "sessions, retained messages and delivery through Redis",
      );
    }
    if (backend) {
      const persistence = backend.persistence;
      const wills = new DeadWills({
        redis: backend.redis,
        brokerId,
        instance: this.instance,
        heartbeatMs,
        logger: log,
        publish: (will) =>
          new Promise<boolean>((resolve, reject) => {
            // Refused: logged and counted there; the sweep drops it and goes on.
            if (this.#refusePublish(null, will)) {
              resolve(false);
              return;
            }
            // Under this instance's id (a new Packet's): see dead-wills.ts on aedes' dedupe.
            broker.publish({ cmd: "publish", dup: false, ...will }, (err) => (err ? reject(err) : resolve(true)));
          }),
        deleteWill: (will) => persistence.delWill(will),
        heldWills: () =>
          [...this.#live]
            .filter((client) => this.#sessions.get(client)?.will !== undefined)
            .map((client) => ({ clientId: client.id, closeWithoutWill: () => this.#closeWithoutWill(client) })),
        willStored: async (clientId) =>
          (await (persistence as unknown as WillReader).getWill({ id: clientId })) != null,
        onReannounced: (clients) => metrics.reannounced.inc(clients),
        onWill: (outcome) => metrics.deadWills.inc({ outcome }),
        onSweep: (outcome) => metrics.willSweeps.inc({ outcome }),
      });
      deadWills = wills;
      // aedes publishes what this stream yields, under the dead broker's id: the sweep publishes the Wills of dead
      // brokers' gone clients itself, by one instance, and aedes gets an empty stream that ends (or fails, for
      // aedes to log) with it.
      const stream = persistence.streamWill.bind(persistence);
      persistence.streamWill = (brokers) => {
        const none = new Readable({ objectMode: true, read() {} });
        wills.sweep(stream(brokers) as AsyncIterable<StoredWill>).then(
          () => none.push(null),
          (err: Error) => none.destroy(err),
        );
        return none;
      };
      await wills.start();
    }
    const broker = await Aedes.createBroker({
      id: brokerId,
      // The Redis modules when shared; aedes' in-memory defaults otherwise.
      ...(backend ? { persistence: backend.persistence, mq: backend.mq, heartbeatInterval: heartbeatMs } : {}),
      maxClientsIdLength: MAX_CLIENT_ID_LENGTH,
      connectTimeout: limits.connectTimeoutMs,
      preConnect: (client, packet, done) => {
        this.#sessions.set(client, { will: packet.will });
        done(null, true);
      },
      authenticate: (client, username, password, done) => this.#authenticate(client, username, password, done),
      authorizePublish: (client, packet, done) => {
        const refusal = this.#refusePublish(client, packet);
        if (refusal || !client) {
          done(refusal);
          return;
        }
        this.#limitMessageRate(client, running.messageLimiter).then(done, done);
      },
      authorizeSubscribe: (client, subscription, done) => {
        done(null, this.#filterSubscription(client, subscription));
      },
      authorizeForward: (client, packet) => this.#forward(client, packet),
    });
    // A fleet dropping at once queues thousands of Wills on the bus; unbounded, that overflows the stack.
    boundEmitterDepth((broker as unknown as { mq: object }).mq);
    // Persistence failures surface here; without a listener they would crash the process.
    // (aedes' typings list no "error" event; it is an EventEmitter all the same.)
    const emitter: EventEmitter = broker;
    emitter.on("error", (err: unknown) => log.error({ err }, "broker error"));
    broker.on("clientReady", (client) => {
      if (this.#closeIfRevoked(client)) return;
      this.#live.add(client);
      deadWills?.connected(client.id);
      log.info({ clientId: client.id }, "client connected");
    });
    broker.on("clientDisconnect", (client) => {
      if (this.#live.delete(client)) deadWills?.disconnected(client.id);
      log.info({ clientId: client.id }, "client disconnected");
    });
    broker.on("clientError", (client, err) => log.info({ clientId: client.id, err: err.message }, "client error"));
    broker.on("connectionError", (client, err) => {
      if (err.message === AEDES_CONNECT_TIMEOUT) {
        metrics.connectTimeouts.inc();
        log.info({ remote: remoteAddress(client), timeoutMs: limits.connectTimeoutMs }, "no CONNECT in time; closed");
        return;
      }
      log.info({ clientId: client.id, err: err.message }, "connection error before CONNECT completed");
    });
    broker.on("publish", (packet, client) => {
      // client is null for the broker's own $SYS messages.
      if (!client) return;
      const channel = packet.topic === topics.cloudStatus ? "cloud-status" : parseTopic(packet.topic)?.channel;
      metrics.messagesPublished.inc({ channel: channel ?? "other" });
    });

    if (backend) {
      // aedes sends its first heartbeat one interval after start, and an instance that has not heard one
      // from a broker takes it for dead and publishes the Wills of its clients: tell the others now.
      const heartbeat = { topic: `$SYS/${broker.id}/heartbeat`, payload: Buffer.from(broker.id) };
      broker.publish({ cmd: "publish", qos: 0, retain: false, dup: false, ...heartbeat }, () => {});
    }
    const directory: ShareDirectory = backend
      ? new RedisDirectory({
          redis: backend.redis,
          broker,
          instance: this.instance,
          logger: log,
          heartbeatMs: o.shareHeartbeatMs,
        })
      : new LocalDirectory(broker.id);
    await directory.start();
    const shared = new SharedSubscriptions({
      broker,
      directory,
      onOutcome: (outcome: ShareOutcome) => metrics.shared.inc({ outcome }),
    });
    shared.start();
    metrics.info.reset();
    metrics.info.set({ instance: this.instance, persistence: this.persistence }, 1);

    const running: Running = {
      broker,
      backend,
      deadWills,
      shared,
      directory,
      listeners: [],
      connectLimiter: new RateLimiterMemory({
        keyPrefix: "connect",
        points: limits.connectsPerAddress,
        duration: limits.connectWindowSeconds,
      }),
      messageLimiter: new RateLimiterMemory({ keyPrefix: "messages", points: limits.messagesPerSecond, duration: 1 }),
      authChecks: new KeyedSemaphore(limits.authChecksPerAddress),
      authFailures: new RateLimiterMemory({ keyPrefix: "auth", points: limits.authFailuresPerAddress, duration: 60 }),
    };
    if (o.wssPort !== undefined) this.#createWss(running);

    const host = o.host ?? "127.0.0.1";
    const wanted: [Transport, number | undefined][] = [
      ["mqtt", o.port],
      ["mqtts", o.tlsPort],
      ["wss", o.wssPort],
    ];
    try {
      for (const [transport, port] of wanted) {
        if (port === undefined) continue;
        const server = createServer((socket) => this.#accept(socket, transport, running, secureContext));
        await new Promise<void>((resolve, reject) => {
          server.once("error", (err) => reject(Object.assign(err, { transport, port })));
          server.listen(port, host, () => {
            server.removeAllListeners("error");
            resolve();
          });
        });
        server.on("error", (err) => log.error({ err, transport }, "MQTT server error"));
        const address = server.address();
        if (address === null || typeof address === "string") throw new Error("expected a TCP address");
        running.listeners.push({ transport, server, port: address.port });
        log.info({ transport, host, port: address.port }, LISTENING[transport]);
      }
    } catch (err) {
      // The error carries the failed listener's transport and port; close the ones already open.
      await this.#close(running);
      throw err;
    }
    this.#running = running;
    log.info(
      {
        maxPacketBytes: limits.maxPacketBytes,
        connectTimeoutMs: limits.connectTimeoutMs,
        connectsPerAddress: `${limits.connectsPerAddress}/${limits.connectWindowSeconds}s`,
        messagesPerSecond: limits.messagesPerSecond,
      },
      "client limits in force",
    );
    return {
      port: this.port,
      tlsPort: o.tlsPort === undefined ? undefined : this.tlsPort,
      wssPort: o.wssPort === undefined ? undefined : this.wssPort,
    };
  }

  /** The step of the stop in progress (for a stop that hangs), else undefined. */
  get stoppingPart(): string | undefined {
    return this.#stage;
  }

  /** Closes the broker, the listeners and every socket, so the ports are free when this resolves. */
  async stop(): Promise<void> {
    const running = this.#running;
    this.#running = undefined;
    if (!running) return;
    try {
      await this.#close(running);
    } finally {
      this.#stage = undefined; // a stop that failed is not in progress either
    }
    this.#options.logger.info("MQTT gateway stopped");
  }

  async #close(running: Running): Promise<void> {
    // Stop accepting first; each callback fires once its connections are gone.
    const serversClosed = running.listeners.map(
      ({ server }) => new Promise<void>((resolve) => server.close(() => resolve())),
    );
    // Leaves every shared subscription and the directory first: the other instances take over its share.
    running.shared.stop();
    this.#stage = "the directory";
    await running.directory.stop();
    this.#stage = "dead Wills";
    await running.deadWills?.stop(running.backend?.state === "ok");
    this.#stage = "the broker";
    const closed = new Promise<void>((resolve) => running.broker.close(() => resolve()));
    if (running.backend?.state === "down") {
      // With Redis unreachable aedes' close never ends: mqemitter-redis QUITs connections that are
      // reconnecting and waits for an 'end' ioredis never emits. Give it a moment, then go on:
      // backend.stop() disconnects every connection.
      let timer: NodeJS.Timeout | undefined;
      const bounded = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, CLOSE_WITHOUT_REDIS_MS);
      });
      await Promise.race([closed, bounded]);
      clearTimeout(timer);
      this.#options.logger.warn(
        "stopped with Redis unreachable: sessions and Wills of this instance stay as Redis had them",
      );
    } else {
      await closed;
    }
    this.#stage = "the Redis backend";
    await running.backend?.stop();
    running.wss?.close();
    // Sockets that never completed CONNECT (or were still in TLS or HTTP) are not aedes clients: end them here.
    for (const socket of this.#sockets) socket.destroy();
    this.#sockets.clear();
    this.#live.clear();
    this.#stage = "the listeners";
    await Promise.all(serversClosed);
    this.#stage = undefined;
  }

  /**
   * A new TCP connection on any listener. The connect-rate limit is checked
   * first, on the raw socket: a refused connection costs no TLS handshake,
   * no HTTP parsing and no aedes client.
   */
  #accept(socket: Socket, transport: Transport, running: Running, secureContext: SecureContext | undefined): void {
    const log = this.#options.logger;
    const metrics = this.#metrics!;
    // Nagle plus the client's delayed ACKs cost ~40 ms per small message (p99 ~45 ms vs ~5 ms measured).
    socket.setNoDelay(true);
    this.#sockets.add(socket);
    this.#wire.track(socket);
    socket.once("close", () => this.#sockets.delete(socket));
    // A reset before the limiter answers must not be an unhandled error; later layers report their own.
    socket.on("error", () => {});
    const remote = socket.remoteAddress ?? "unknown";
    running.connectLimiter.consume(remote).then(
      () => {
        if (socket.destroyed || this.#running !== running) return;
        metrics.connections.inc();
        if (transport === "mqtt") {
          this.#handOver(socket, remote, running);
          return;
        }
        const tlsSocket = new TLSSocket(socket, { isServer: true, secureContext });
        // Handshake failures (a client that does not trust the certificate, a scanner) close the connection.
        tlsSocket.on("error", (err) => log.debug({ remote, transport, err: err.message }, "TLS error"));
        if (transport === "mqtts") this.#handOver(tlsSocket, remote, running);
        else this.#upgradeWss(socket, tlsSocket, running);
      },
      (refusal: unknown) => {
        metrics.rateLimited.inc({ limit: "connect" });
        // One line per address and window, not one per refused socket of a flood.
        if (refusal instanceof RateLimiterRes && refusal.consumedPoints === this.#limits.connectsPerAddress + 1) {
          log.warn(
            {
              remote,
              transport,
              limit: `${this.#limits.connectsPerAddress}/${this.#limits.connectWindowSeconds}s`,
            },
            "connect rate over the per-address limit; refusing connections from this address for the rest of the window",
          );
        }
        socket.destroy();
      },
    );
  }

  /** Hands a connection's byte stream to aedes behind the packet size guard. */
  #handOver(stream: Duplex, remote: string, running: Running, request?: IncomingMessage): void {
    const guarded = new PacketSizeGuard(stream, {
      maxPacketBytes: this.#limits.maxPacketBytes,
      remoteAddress: remote,
      onViolation: (violation) => this.#onViolation(violation, remote),
    });
    running.broker.handle(guarded, request);
  }

  #onViolation(violation: Violation, remote: string): void {
    this.#metrics!.oversizePackets.inc({ reason: violation.kind });
    if (violation.kind === "oversize") {
      this.#options.logger.warn(
        { remote, announced: violation.announced, maxPacketBytes: this.#limits.maxPacketBytes },
        "packet larger than the maximum packet size announced; connection closed before its payload (MQTT_MAX_PACKET_BYTES)",
      );
    } else {
      this.#options.logger.warn({ remote }, "malformed packet length (more than 4 bytes); connection closed");
    }
  }

  /** The wss listener's HTTP layer: decrypted sockets come in through `emit("connection")`. */
  #createWss(running: Running): void {
    const http = createHttpServer((_request, response) => {
      response.writeHead(426, { "content-type": "text/plain", connection: "close", upgrade: "websocket" });
      response.end("MQTT over WebSocket: connect with a WebSocket client (subprotocol mqtt)\n");
    });
    // A client that never finishes its request is closed like one that never sends CONNECT.
    http.headersTimeout = this.#limits.connectTimeoutMs;
    http.requestTimeout = this.#limits.connectTimeoutMs;
    // A WebSocket frame is read whole: cap it at one packet, so the frame layer cannot buffer more either.
    const wss = new WebSocketServer({ noServer: true, maxPayload: this.#limits.maxPacketBytes + 5 });
    http.on("upgrade", (request: IncomingMessage, socket: Duplex, head: Buffer) => {
      clearTimeout(this.#upgradeTimers.get(socket));
      wss.handleUpgrade(request, socket, head, (ws) => {
        const remote = request.socket.remoteAddress ?? "unknown";
        ws.on("error", (err) => this.#options.logger.debug({ remote, err: err.message }, "WebSocket error"));
        this.#handOver(createWebSocketStream(ws), remote, running, request);
      });
    });
    running.wssHttp = http;
    running.wss = wss;
  }

  #upgradeWss(raw: Socket, tlsSocket: TLSSocket, running: Running): void {
    // Until the upgrade, aedes' connect timeout does not run: this one does.
    const timer = setTimeout(() => raw.destroy(), this.#limits.connectTimeoutMs);
    raw.once("close", () => clearTimeout(timer));
    this.#upgradeTimers.set(tlsSocket, timer);
    running.wssHttp?.emit("connection", tlsSocket);
  }

  #authenticate(
    client: Client,
    username: string | undefined,
    password: Buffer | undefined,
    done: (error: AuthenticateError | null, success: boolean | null) => void,
  ): void {
    const log = this.#options.logger;
    const metrics = this.#metrics!;
    const session = this.#sessions.get(client) ?? {};
    const refuse = (returnCode: 3 | 4 | 5, reason: string, message: string) => {
      metrics.authFailures.inc({ reason });
      // Never the password: only who tried and why it failed.
      log.warn({ clientId: client.id, username, remote: remoteAddress(client), reason }, message);
      const error = Object.assign(new Error(message), { returnCode });
      done(error, null);
    };

    if (!username || !password) {
      refuse(CONNACK.badUsernameOrPassword, "missing-credentials", "CONNECT without username and password");
      return;
    }
    const registry = this.#registry;
    const running = this.#running;
    const address = remoteAddress(client) ?? "unknown";
    let throttled = false;
    const slowCheck = running
      ? (verify: () => Promise<boolean>) =>
          running.authChecks.run(address, async () => {
            if (await this.#overAuthFailures(running, address)) {
              throttled = true;
              return false;
            }
            const ok = await verify();
            if (!ok) await running.authFailures.penalty(address, 1);
            return ok;
          })
      : undefined;
    registry.authenticate(username, password.toString("utf8"), slowCheck).then(
      (identity) => {
        if (throttled) {
          metrics.rateLimited.inc({ limit: "auth-failures" });
          const error = Object.assign(new Error("too many failed password checks from this address"), {
            returnCode: CONNACK.serverUnavailable,
          });
          done(error, null);
          return;
        }
        if (!identity) {
          refuse(CONNACK.badUsernameOrPassword, "bad-credentials", "unknown username or wrong secret");
          return;
        }
        // The registry may have been replaced while the secret was checked: the newest one decides.
        const secretHash = registry.secretHashOf(username);
        if (this.#registry !== registry && this.#registry.secretHashOf(username) !== secretHash) {
          refuse(CONNACK.badUsernameOrPassword, "revoked", "identity revoked while its CONNECT was checked");
          return;
        }
        const clientIdProblem = this.#clientIdProblem(identity, username, client.id);
        if (clientIdProblem) {
          refuse(CONNACK.notAuthorized, "client-id", clientIdProblem);
          return;
        }
        if (session.will) {
          const decision = checkWill(identity, session.will.topic, session.will.retain === true);
          if (!decision.allowed) {
            refuse(CONNACK.notAuthorized, "will", decision.reason);
            return;
          }
        }
        this.#sessions.set(client, { ...session, identity, username, secretHash });
        done(null, true);
      },
      (err: unknown) => {
        log.error({ err, clientId: client.id, username }, "registry lookup failed");
        refuse(CONNACK.serverUnavailable, "registry-error", "cannot check credentials");
      },
    );
  }

  /** Whether `address` used up its failed password checks for this minute; says so once per minute. */
  async #overAuthFailures(running: Running, address: string): Promise<boolean> {
    const spent = await running.authFailures.get(address);
    const limit = this.#limits.authFailuresPerAddress;
    if (!spent || spent.consumedPoints < limit) return false;
    if (spent.consumedPoints === limit) {
      // Marks the minute as reported, so the line is written once.
      await running.authFailures.penalty(address, 1);
      this.#options.logger.warn(
        { remote: address, limit: `${limit}/min` },
        "too many failed password checks from this address; refusing its unverified CONNECTs for the rest of the minute",
      );
    }
    return true;
  }

  /**
   * A device must use its own client id, so nobody else can take over its
   * session [MQTT-3.1.4-2]; a service or operator may use any id outside the
   * devices' that no other identity's live session holds.
   */
  #clientIdProblem(identity: Identity, username: string, clientId: string): string | null {
    if (identity.kind === "device") {
      const expected = deviceIdentity.clientId(identity.address);
      return clientId === expected ? null : `device must connect with client id ${expected}, not ${clientId}`;
    }
    const taken = this.#registry.devices.some((address) => deviceIdentity.clientId(address) === clientId);
    if (taken) return `${identity.kind} ${identity.id} may not use device client id ${clientId}`;
    // A CONNECT with a live client id takes that session over [MQTT-3.1.4-2]: only its own identity may,
    // or a viewer could knock the bridge off the broker (its Will tells every kiosk the cloud is offline).
    for (const live of this.#live) {
      if (live.id !== clientId) continue;
      const owner = this.#sessions.get(live)?.username;
      if (owner !== undefined && owner !== username) return `client id ${clientId} is in use by another identity`;
    }
    return null;
  }

  #refusePublish(
    client: Client | null,
    packet: { topic: string; retain?: boolean; payload: Buffer | string },
  ): Error | null {
    const log = this.#options.logger;
    const metrics = this.#metrics!;
    // aedes passes null for a Will left by a client of another instance that
    // died (only with Redis): checked again against the device its client id names.
    if (!client && this.#options.redis) {
      const decision = checkOrphanWill(packet);
      if (decision.allowed) return null;
      metrics.publishesRefused.inc({ kind: "unknown" });
      log.warn({ topic: packet.topic, reason: decision.reason }, "Will of another instance's client refused");
      return new Error(decision.reason);
    }
    const session = client ? this.#sessions.get(client) : undefined;
    const identity = session?.identity;
    if (!client || !identity) {
      metrics.publishesRefused.inc({ kind: "unknown" });
      log.warn({ clientId: client?.id, topic: packet.topic }, "publish refused: no authenticated identity");
      return new Error("not authenticated");
    }
    const isWill = session.will !== undefined && packet === session.will;
    const retain = packet.retain === true;
    let decision = isWill ? checkWill(identity, packet.topic, retain) : checkPublish(identity, packet.topic, retain);
    if (decision.allowed && identity.kind === "operator") decision = stampSender(identity.id, packet);
    if (decision.allowed) return null;
    metrics.publishesRefused.inc({ kind: identity.kind });
    log.warn(
      { clientId: client.id, topic: packet.topic, retain, will: isWill, reason: decision.reason },
      "publish refused; closing the connection [MQTT-3.3.5-2]",
    );
    return new Error(decision.reason);
  }

  /**
   * Resolves null while a device stays within its message rate, or an error
   * that closes its connection: 3.1.1 has no negative PUBACK to send instead.
   */
  async #limitMessageRate(client: Client, limiter: RateLimiterMemory): Promise<Error | null> {
    const session = this.#sessions.get(client);
    if (session?.identity?.kind !== "device" || !session.username) return null;
    // aedes hands a whole socket read to the handlers at once: the packets after the first refused one land here.
    if (session.overRate) return new Error("message rate limit exceeded");
    try {
      await limiter.consume(session.username);
      return null;
    } catch (refusal) {
      if (!(refusal instanceof RateLimiterRes)) throw refusal;
      if (session.overRate) return new Error("message rate limit exceeded");
      session.overRate = true;
      this.#metrics!.rateLimited.inc({ limit: "messages" });
      // The connection closes on this refusal, so this is one line per offence.
      this.#options.logger.warn(
        { clientId: client.id, username: session.username, limit: `${this.#limits.messagesPerSecond}/s` },
        "message rate over the per-client limit; closing the connection",
      );
      return new Error("message rate limit exceeded");
    }
  }

  /**
   * The packet to deliver to `client`, or null to skip it for this client
   * alone: an operator subscribed with `+` for the site gets only the sites
   * it is granted. Runs for every delivery, retained ones included.
   */
  #forward(client: Client, packet: AedesPublishPacket): AedesPublishPacket | null {
    const identity = this.#sessions.get(client)?.identity;
    if (identity?.kind !== "operator") return packet;
    const decision = checkForward(identity, packet.topic);
    if (decision.allowed) return packet;
    // Expected with a `+` site filter: counted, logged at debug only (one line per message would flood).
    this.#metrics?.forwardsFiltered.inc();
    this.#options.logger.debug({ clientId: client.id, topic: packet.topic }, "not forwarded: site not granted");
    return null;
  }

  /** The subscription to grant, or null to answer 0x80 (failure) for this filter. */
  #filterSubscription(client: Client, subscription: Subscription): Subscription | null {
    const log = this.#options.logger;
    const metrics = this.#metrics!;
    const identity = this.#sessions.get(client)?.identity;
    let reason: string | null = null;
    if (!identity) {
      reason = "not authenticated";
    } else {
      const decision = checkSubscribe(identity, subscription.topic);
      // A `$share/{group}/{filter}` is checked as its filter (acl.ts); shared-subscriptions.ts delivers it.
      if (!decision.allowed) reason = decision.reason;
    }
    if (reason === null) return subscription;
    metrics.subscriptionsRefused.inc({ kind: identity?.kind ?? "unknown" });
    log.warn({ clientId: client.id, filter: subscription.topic, reason }, "subscription refused");
    return null;
  }

  #createMetrics(): GatewayMetrics {
    const registers = [this.#options.metrics];
    const gateway = this;
    /** A counter that catches up with a total read at scrape time. */
    const wireCounter = (name: string, help: string, total: () => number) => {
      let reported = 0;
      return new Counter({
        name,
        help,
        registers,
        collect() {
          const now = total();
          if (now > reported) this.inc(now - reported);
          reported = now;
        },
      });
    };
    return {
      connections: new Counter({
        name: "paylane_gateway_connections_total",
        help: "Connections accepted by the MQTT gateway on any listener (after the connect-rate limit)",
        registers,
      }),
      authFailures: new Counter({
        name: "paylane_gateway_auth_failures_total",
        help: "CONNECTs refused, by reason",
        labelNames: ["reason"],
        registers,
      }),
      publishesRefused: new Counter({
        name: "paylane_gateway_publishes_refused_total",
        help: "PUBLISH packets and Wills refused by the topic ACL, by identity kind",
        labelNames: ["kind"],
        registers,
      }),
      subscriptionsRefused: new Counter({
        name: "paylane_gateway_subscriptions_refused_total",
        help: "Topic filters refused by the topic ACL, by identity kind",
        labelNames: ["kind"],
        registers,
      }),
      messagesPublished: new Counter({
        name: "paylane_gateway_messages_published_total",
        help: "Messages accepted from clients, by channel",
        labelNames: ["channel"],
        registers,
      }),
      rateLimited: new Counter({
        name: "paylane_gateway_rate_limited_total",
        help: "Connections refused or closed by a rate limit: connect (per source address), auth-failures (failed password checks per address), messages (per device)",
        labelNames: ["limit"],
        registers,
      }),
      oversizePackets: new Counter({
        name: "paylane_gateway_oversize_packets_total",
        help: "Connections closed because a packet announced more than the maximum packet size, or a malformed length",
        labelNames: ["reason"],
        registers,
      }),
      connectTimeouts: new Counter({
        name: "paylane_gateway_connect_timeouts_total",
        help: "Connections closed because no CONNECT arrived within the connect timeout",
        registers,
      }),
      revocations: new Counter({
        name: "paylane_gateway_revocations_total",
        help: "Live sessions closed because a new registry removed their identity or changed its secret",
        labelNames: ["reason"],
        registers,
      }),
      forwardsFiltered: new Counter({
        name: "paylane_gateway_forwards_filtered_total",
        help: "Messages not delivered to an operator because their site is not granted to it (a `+` site filter)",
        registers,
      }),
      receivedBytes: wireCounter(
        "paylane_gateway_received_bytes_total",
        "Bytes received on every connection the gateway accepted (TCP payload: TLS and WebSocket framing included)",
        () => gateway.#wire.received,
      ),
      sentBytes: wireCounter(
        "paylane_gateway_sent_bytes_total",
        "Bytes sent on every connection the gateway accepted (TCP payload: TLS and WebSocket framing included)",
        () => gateway.#wire.sent,
      ),
      retained: new Gauge({
        name: "paylane_gateway_retained_messages",
        help: "Retained messages the broker holds (statuses, desired and reported configurations, the cloud's STATE)",
        registers,
        async collect() {
          const running = gateway.#running;
          // With Redis, one HLEN instead of reading every retained message at each scrape.
          this.set(running ? await (running.backend?.retainedCount() ?? countRetained(running.broker)) : 0);
        },
      }),
      shared: new Counter({
        name: "paylane_gateway_shared_messages_total",
        help: "Messages on this instance's shared subscriptions ($share/...), by outcome: delivered to a member here, other-instance (another gateway's member takes it), no-member",
        labelNames: ["outcome"],
        registers,
      }),
      sharedMembers: new Gauge({
        name: "paylane_gateway_shared_members",
        help: "Connected members of shared subscriptions ($share/...) on this instance",
        registers,
        collect() {
          this.set(gateway.#running?.shared.localMembers ?? 0);
        },
      }),
      deadWills: new Counter({
        name: "paylane_gateway_dead_wills_total",
        help: "Stored Wills of other gateway instances met in this instance's sweeps (with Redis), by outcome: published (the instance is dead and this one claimed it), refused (it failed the Will check: dropped), connected (its client is connected again: dropped), alive (the instance is alive), other-instance (another instance claimed it)",
        labelNames: ["outcome"],
        registers,
      }),
      willSweeps: new Counter({
        name: "paylane_gateway_will_sweeps_total",
        help: "aedes' sweeps of dead instances' Wills (with Redis, every four heartbeats), by outcome: run, deferred (Redis lost, or back for less than three heartbeats), or busy (the last one still running)",
        labelNames: ["outcome"],
        registers,
      }),
      reannounced: new Counter({
        name: "paylane_gateway_reannounced_clients_total",
        help: "Clients disconnected when Redis came back because another instance had taken this one for dead and published their Wills: they reconnect and announce themselves online",
        registers,
      }),
      info: new Gauge({
        name: "paylane_gateway_info",
        help: "This gateway instance (GATEWAY_INSTANCE) and where its sessions and retained messages live (memory or redis)",
        labelNames: ["instance", "persistence"],
        registers,
      }),
      clients: new Gauge({
        name: "paylane_gateway_clients",
        help: "Clients connected to the MQTT gateway",
        registers,
        // Read at scrape time from whichever broker is running now.
        collect() {
          this.set(gateway.clients);
        },
      }),
    };
  }
}

/**
 * Sets `by` of an operator's command or desired configuration to the
 * operator's id, replacing whatever the sender wrote: what reaches the
 * device and the cloud's audit names who really sent it. aedes publishes
 * the packet authorizePublish was given, so replacing its payload is enough.
 */
/** The largest command or desired config an operator may publish (the real ones are well under 1 KiB). */
export const MAX_OPERATOR_PAYLOAD_BYTES = 16 * 1024;

function stampSender(operatorId: string, packet: { topic: string; payload: Buffer | string }): Decision {
  const channel = parseTopic(packet.topic)?.channel;
  if (channel !== "cmd" && channel !== "config") return { allowed: true };
  // A command or config is small; a big one would outgrow the packet limit once the cloud adds to it
  // (`expiresAt`, `by`) and republishes it, and the gateway would close the bridge's connection.
  if (Buffer.byteLength(packet.payload) > MAX_OPERATOR_PAYLOAD_BYTES) {
    return {
      allowed: false,
      reason: `operator ${operatorId}: a ${channel} payload is limited to ${MAX_OPERATOR_PAYLOAD_BYTES} bytes`,
    };
  }
  let body: unknown;
  try {
    body = JSON.parse(packet.payload.toString());
  } catch {
    body = undefined;
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    return {
      allowed: false,
      reason: `operator ${operatorId}: a ${channel} payload must be a JSON object (the gateway sets its "by" field)`,
    };
  }
  packet.payload = Buffer.from(JSON.stringify({ ...body, by: operatorId }));
  return { allowed: true };
}

/**
 * A Will that another gateway instance stored in Redis for one of its
 * clients, published by this one after that instance died. The instance
 * checked it at CONNECT (checkWill); it is checked again here against what
 * the stored packet names: a device's Will must be its own status (its client
 * id is `paylane:{site}:{device}`), any other client's only the cloud's status
 * (the bridge's Will, the one other identity allowed a Will).
 */
function checkOrphanWill(packet: { topic: string; retain?: boolean; clientId?: string }): Decision {
  if (packet.topic === topics.cloudStatus) return { allowed: true };
  const parsed = parseTopic(packet.topic);
  if (parsed && packet.clientId === deviceIdentity.clientId(parsed)) {
    return checkWill({ kind: "device", address: { site: parsed.site, device: parsed.device } }, packet.topic, true);
  }
  return { allowed: false, reason: `a Will on ${packet.topic} from client ${packet.clientId ?? "(unknown)"}` };
}

function remoteAddress(client: Client): string | undefined {
  const conn = client.conn;
  return "remoteAddress" in conn ? conn.remoteAddress : undefined;
}
