/**
 * One MQTT connection to the PayLane broker, shared by every node that uses
 * the same paylane-broker config node: subscriptions are counted per topic
 * filter (two nodes on one filter make one SUBSCRIBE), re-made on every
 * reconnect, and each incoming message goes to the handlers whose filter
 * matches it. The nodes show the connection's state through `onState`.
 */
"use strict";

const { randomBytes } = require("node:crypto");
const mqtt = require("mqtt");
const { matches } = require("./topics.js");

/** The URLs mqtt.js connects with; anything else it may read in a surprising way ("gateway:1883" as a protocol). */
const URL_PATTERN = /^(mqtts?|wss?|tcp|ssl):\/\/[^/]+/;

/** SUBACK return code of a filter the broker refused (MQTT 3.1.1 §3.9.3). */
const SUBACK_FAILURE = 128;

class Connection {
  /**
   * @param {{url: string, username?: string, password?: string, reconnectMs?: number, clientId?: string}} options
   * @param {{warn(msg: string): void}} log
   */
  constructor(options, log) {
    this.options = options;
    this.log = log;
    /** @type {Map<string, {handlers: Set<Function>, granted: Promise<void>, settle: Function, fail: Function}>} */
    this.filters = new Map();
    /** @type {Set<Function>} */
    this.stateListeners = new Set();
    this.state = { name: "disconnected", detail: "" };
    this.client = null;
  }

  /** The operator id behind the username (`ops:{id}`), or undefined: what commands carry as `by`. */
  get operatorId() {
    const username = this.options.username ?? "";
    return username.startsWith("ops:") ? username.slice("ops:".length) : undefined;
  }

  /** Calls `listener(state)` now and on every change of the connection's state. Returns the unsubscribe. */
  onState(listener) {
    this.stateListeners.add(listener);
    listener(this.state);
    return () => this.stateListeners.delete(listener);
  }

  #setState(name, detail = "") {
    this.state = { name, detail };
    for (const listener of this.stateListeners) listener(this.state);
  }

  /** Connects on first use, so a config node no flow uses opens nothing. */
  #ensureClient() {
    if (this.client || this.badUrl) return this.client;
    const { url, username, password } = this.options;
    if (!URL_PATTERN.test(url)) {
      // The config node has said so; the nodes show it.
      this.badUrl = true;
      this.#setState("disconnected", "bad broker URL");
      return null;
    }
    this.#setState("connecting");
    let client;
    try {
      client = mqtt.connect(url, {
        clientId: this.options.clientId ?? `paylane-node-red-${randomBytes(6).toString("hex")}`,
        username: username || undefined,
        password: password || undefined,
        protocolVersion: 4,
        clean: true,
        reconnectPeriod: this.options.reconnectMs ?? 5000,
        // This module re-subscribes itself on connect, where it can see refusals.
        resubscribe: false,
      });
    } catch (err) {
      // A URL mqtt.js still cannot use: said once, nothing is retried.
      this.log.warn(`PayLane broker "${url}": ${err.message}; set a URL like mqtt://gateway:1883`);
      this.badUrl = true;
      this.#setState("disconnected", "bad broker URL");
      return null;
    }
    client.on("connect", () => {
      this.#setState("connected");
      for (const filter of this.filters.keys()) this.#sendSubscribe(filter);
    });
    client.on("reconnect", () => this.#setState("connecting", this.state.detail));
    client.on("close", () => {
      if (this.state.name !== "closed") this.#setState("disconnected", this.state.detail);
    });
    client.on("error", (err) => {
      // e.g. "Connection refused: Not authorized": wrong username/password, or not an operator.
      // Said once per cause, not on every retry.
      if (err.message !== this.state.detail) this.log.warn(`PayLane broker ${url}: ${err.message}`);
      this.#setState("disconnected", err.message);
    });
    client.on("message", (topic, payload, packet) => {
      for (const [filter, entry] of this.filters) {
        if (!matches(filter, topic)) continue;
        for (const handler of entry.handlers) handler(topic, payload, packet);
      }
    });
    this.client = client;
    return client;
  }

  #sendSubscribe(filter) {
    const entry = this.filters.get(filter);
    if (!entry || !this.client?.connected) return;
    this.client.subscribe(filter, { qos: 1 }, (err, granted) => {
      // MQTT.js reports a SUBACK failure code as an ErrorWithSubackPacket; older versions as a granted qos of 128.
      const refused = err instanceof mqtt.ErrorWithSubackPacket || granted?.some((g) => g.qos === SUBACK_FAILURE);
      if (!err && !refused) {
        entry.settle();
        return;
      }
      // Any other error (the connection dropped meanwhile): the next connect subscribes again.
      if (!refused) return;
      const why = "is the operator granted this site, and is the filter one operators may read?";
      this.log.warn(`PayLane broker: subscription to ${filter} refused: ${why}`);
      entry.fail(new Error(`subscription to ${filter} refused: ${why}`));
    });
  }

  /**
   * Delivers every message on `filter` to `handler(topic, payload, packet)`.
   * Returns `{granted, close}`: `granted` resolves once the broker accepted
   * the subscription (rejects if it refused it); `close()` drops the handler.
   */
  subscribe(filter, handler) {
    let entry = this.filters.get(filter);
    if (!entry) {
      let settle;
      let fail;
      const granted = new Promise((resolve, reject) => {
        settle = resolve;
        fail = reject;
      });
      // A refusal is reported through the log and the promise; nobody has to await it.
      granted.catch(() => {});
      entry = { handlers: new Set(), granted, settle, fail };
      this.filters.set(filter, entry);
      this.#ensureClient();
      this.#sendSubscribe(filter);
    }
    entry.handlers.add(handler);
    const filters = this.filters;
    return {
      granted: entry.granted,
      close: () => {
        const current = filters.get(filter);
        if (!current) return;
        current.handlers.delete(handler);
        if (current.handlers.size > 0) return;
        filters.delete(filter);
        if (this.client?.connected) this.client.unsubscribe(filter);
      },
    };
  }

  /**
   * Publishes with QoS 1; resolves once the broker has the message. Only
   * while connected: the broker answers a publish it refuses (a viewer's
   * command, a site not granted) by closing the connection, and mqtt.js would
   * resend the stored message on every reconnect, closing it again for every
   * node sharing it. So a publish still unconfirmed when the connection
   * closes is dropped from the store and reported.
   */
  publish(topic, payload, options = {}) {
    const client = this.#ensureClient();
    if (!client?.connected) {
      return Promise.reject(new Error(`not connected to the broker (${this.state.detail || this.state.name})`));
    }
    return new Promise((resolve, reject) => {
      let closedFirst = false;
      const onClose = () => {
        closedFirst = true;
        client.removeOutgoingMessage(messageId);
      };
      client.publish(
        topic,
        typeof payload === "string" ? payload : JSON.stringify(payload),
        { qos: 1, ...options },
        (err) => {
          client.removeListener("close", onClose);
          if (!err) resolve();
          else if (closedFirst)
            reject(
              new Error(
                `the broker closed the connection instead of confirming the publish to ${topic}: may this operator publish there (not a viewer, site granted)?`,
              ),
            );
          else reject(err);
        },
      );
      const messageId = client.getLastMessageId();
      client.once("close", onClose);
    });
  }

  /** Ends the connection (Node-RED is closing or redeploying the config node). */
  async close() {
    this.stateListeners.clear();
    const client = this.client;
    this.client = null;
    this.state = { name: "closed", detail: "" };
    if (client) await client.endAsync(true);
  }
}

module.exports = { Connection, URL_PATTERN };
