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
 */
import type { EventEmitter } from "node:events";
import { createServer, type Server, type Socket } from "node:net";
import { deviceIdentity, type Identity, parseTopic, type Registry, topics } from "@paylane/protocol";
import { Aedes, type AuthenticateError, type Client, type ConnectPacket, type Subscription } from "aedes";
import type { Logger } from "pino";
import { Counter, Gauge, type Registry as MetricsRegistry } from "prom-client";
import { checkPublish, checkSubscribe, checkWill, splitSharedFilter } from "./acl.ts";

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
}

type Will = NonNullable<ConnectPacket["will"]>;

interface Session {
  /** Set once CONNECT authenticated; absent means nothing is authorized. */
  identity?: Identity;
  /** The Will of the CONNECT, to recognise it when aedes asks to publish it. */
  will?: Will;
}

/** CONNACK return codes of MQTT 3.1.1 §3.2.2.3 (aedes' `AuthErrorCode` is an ambient const enum). */
const CONNACK = { serverUnavailable: 3, badUsernameOrPassword: 4, notAuthorized: 5 } as const;

/** Device client ids are `paylane:{site}:{device}` (up to 135 characters); aedes limits MQTT 3.1 ids to 23. */
const MAX_CLIENT_ID_LENGTH = 256;

interface GatewayMetrics {
  connections: Counter;
  authFailures: Counter<"reason">;
  publishesRefused: Counter<"kind">;
  subscriptionsRefused: Counter<"kind">;
  messagesPublished: Counter<"channel">;
  clients: Gauge;
}

export class Gateway {
  readonly #options: GatewayOptions;
  #registry: Registry;
  #broker: Aedes | undefined;
  #server: Server | undefined;
  #port: number | undefined;
  readonly #sockets = new Set<Socket>();
  readonly #sessions = new WeakMap<Client, Session>();
  #metrics: GatewayMetrics | undefined;

  constructor(options: GatewayOptions) {
    this.#options = options;
    this.#registry = options.registry;
  }

  /** The TCP port the broker listens on. */
  get port(): number {
    if (this.#port === undefined) throw new Error("the gateway is not started");
    return this.#port;
  }

  get running(): boolean {
    return this.#server !== undefined;
  }

  /** Clients that completed CONNECT. */
  get clients(): number {
    return this.#broker?.connectedClients ?? 0;
  }

  /** Later CONNECTs authenticate against `registry`; connected clients keep their sessions. */
  replaceRegistry(registry: Registry): void {
    this.#registry = registry;
  }

  async start(): Promise<{ port: number }> {
    if (this.#server) throw new Error("the gateway is already started");
    const log = this.#options.logger;
    // Created once: a registry refuses a second metric of the same name on restart.
    this.#metrics ??= this.#createMetrics();
    const metrics = this.#metrics;

    const broker = await Aedes.createBroker({
      maxClientsIdLength: MAX_CLIENT_ID_LENGTH,
      preConnect: (client, packet, done) => {
        this.#sessions.set(client, { will: packet.will });
        done(null, true);
      },
      authenticate: (client, username, password, done) => this.#authenticate(client, username, password, done),
      authorizePublish: (client, packet, done) => {
        const refusal = this.#refusePublish(client, packet);
        done(refusal);
      },
      authorizeSubscribe: (client, subscription, done) => {
        done(null, this.#filterSubscription(client, subscription));
      },
    });
    // Persistence failures surface here; without a listener they would crash the process.
    // (aedes' typings list no "error" event; it is an EventEmitter all the same.)
    const emitter: EventEmitter = broker;
    emitter.on("error", (err: unknown) => log.error({ err }, "broker error"));
    broker.on("clientReady", (client) => log.info({ clientId: client.id }, "client connected"));
    broker.on("clientDisconnect", (client) => log.info({ clientId: client.id }, "client disconnected"));
    broker.on("clientError", (client, err) => log.info({ clientId: client.id, err: err.message }, "client error"));
    broker.on("connectionError", (client, err) =>
      log.info({ clientId: client.id, err: err.message }, "connection error before CONNECT completed"),
    );
    broker.on("publish", (packet, client) => {
      // client is null for the broker's own $SYS messages.
      if (!client) return;
      const channel = packet.topic === topics.cloudStatus ? "cloud-status" : parseTopic(packet.topic)?.channel;
      metrics.messagesPublished.inc({ channel: channel ?? "other" });
    });

    const server = createServer((socket) => {
      // design.md latency note: Nagle plus delayed ACKs cost ~40 ms per small message.
      socket.setNoDelay(true);
      this.#sockets.add(socket);
      socket.once("close", () => this.#sockets.delete(socket));
      metrics.connections.inc();
      broker.handle(socket);
    });

    const host = this.#options.host ?? "127.0.0.1";
    try {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(this.#options.port, host, () => {
          server.off("error", reject);
          resolve();
        });
      });
    } catch (err) {
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      throw err;
    }
    server.on("error", (err) => log.error({ err }, "MQTT server error"));

    const address = server.address();
    if (address === null || typeof address === "string") throw new Error("expected a TCP address");
    this.#broker = broker;
    this.#server = server;
    this.#port = address.port;
    log.info({ host, port: address.port }, "MQTT gateway listening");
    return { port: address.port };
  }

  /** Closes the broker, the listener and every socket, so the port is free when this resolves. */
  async stop(): Promise<void> {
    const server = this.#server;
    const broker = this.#broker;
    this.#server = undefined;
    this.#broker = undefined;
    this.#port = undefined;
    if (!server || !broker) return;
    // Stop accepting first; the callback fires once every connection is gone.
    const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    // Sockets that never completed CONNECT are not aedes clients: end them here.
    for (const socket of this.#sockets) socket.destroy();
    this.#sockets.clear();
    await serverClosed;
    this.#options.logger.info("MQTT gateway stopped");
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
    this.#registry.authenticate(username, password.toString("utf8")).then(
      (identity) => {
        if (!identity) {
          refuse(CONNACK.badUsernameOrPassword, "bad-credentials", "unknown username or wrong secret");
          return;
        }
        const clientIdProblem = this.#clientIdProblem(identity, client.id);
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
        this.#sessions.set(client, { ...session, identity });
        done(null, true);
      },
      (err: unknown) => {
        log.error({ err, clientId: client.id, username }, "registry lookup failed");
        refuse(CONNACK.serverUnavailable, "registry-error", "cannot check credentials");
      },
    );
  }

  /**
   * A device must use its own client id, so nobody else can take over its
   * session [MQTT-3.1.4-2]; a service may use any id outside the devices'.
   */
  #clientIdProblem(identity: Identity, clientId: string): string | null {
    if (identity.kind === "device") {
      const expected = deviceIdentity.clientId(identity.address);
      return clientId === expected ? null : `device must connect with client id ${expected}, not ${clientId}`;
    }
    const taken = this.#registry.devices.some((address) => deviceIdentity.clientId(address) === clientId);
    return taken ? `service ${identity.id} may not use device client id ${clientId}` : null;
  }

  #refusePublish(client: Client | null, packet: { topic: string; retain?: boolean }): Error | null {
    const log = this.#options.logger;
    const metrics = this.#metrics!;
    // aedes passes null for a Will left by a client of another broker instance:
    // nothing says who wrote it, so it is not published.
    const session = client ? this.#sessions.get(client) : undefined;
    const identity = session?.identity;
    if (!client || !identity) {
      metrics.publishesRefused.inc({ kind: "unknown" });
      log.warn({ clientId: client?.id, topic: packet.topic }, "publish refused: no authenticated identity");
      return new Error("not authenticated");
    }
    const isWill = session.will !== undefined && packet === session.will;
    const retain = packet.retain === true;
    const decision = isWill ? checkWill(identity, packet.topic, retain) : checkPublish(identity, packet.topic, retain);
    if (decision.allowed) return null;
    metrics.publishesRefused.inc({ kind: identity.kind });
    log.warn(
      { clientId: client.id, topic: packet.topic, retain, will: isWill, reason: decision.reason },
      "publish refused; closing the connection [MQTT-3.3.5-2]",
    );
    return new Error(decision.reason);
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
      if (!decision.allowed) reason = decision.reason;
      else if (splitSharedFilter(subscription.topic)?.group) {
        // The ACL allows it (other brokers implement it), but aedes would take
        // the filter literally and deliver nothing: refuse instead of a silent
        // black hole (moscajs/aedes#228).
        reason = "shared subscriptions ($share/...) are not implemented by the aedes gateway; subscribe without $share";
      }
    }
    if (reason === null) return subscription;
    metrics.subscriptionsRefused.inc({ kind: identity?.kind ?? "unknown" });
    log.warn({ clientId: client.id, filter: subscription.topic, reason }, "subscription refused");
    return null;
  }

  #createMetrics(): GatewayMetrics {
    const registers = [this.#options.metrics];
    const gateway = this;
    return {
      connections: new Counter({
        name: "paylane_gateway_connections_total",
        help: "TCP connections accepted by the MQTT gateway",
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

function remoteAddress(client: Client): string | undefined {
  const conn = client.conn;
  return "remoteAddress" in conn ? conn.remoteAddress : undefined;
}
