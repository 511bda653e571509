/**
 * paylane status: a message each time a kiosk goes online or offline.
 *
 * Kiosks publish a retained birth (`online`, with a per-connection session
 * counter) and leave a Will (`offline`, same counter). What is already
 * retained when the flow starts is the kiosk's state before us, not a change,
 * so it is only remembered (unless "emit current" is set). A Will older than
 * the birth in force (the broker fired it late, for a connection the kiosk
 * has replaced) is ignored, as the cloud does.
 */
"use strict";

const topics = require("../lib/topics.js");
const { useBroker, parseJson } = require("../lib/use-broker.js");

module.exports = (RED) => {
  function PaylaneStatusNode(config) {
    RED.nodes.createNode(this, config);
    const connection = useBroker(RED, this, config);
    if (!connection) return;
    let filter;
    try {
      filter = topics.status(config.site, config.device);
    } catch (err) {
      this.error(`paylane status: ${err.message}; leave site/device empty for every one`);
      return;
    }
    const only = config.state === "online" || config.state === "offline" ? config.state : "";
    /** "site/device" → the state and session last seen. */
    const known = new Map();

    const subscription = connection.subscribe(filter, (topic, payload, packet) => {
      const where = topics.parseDevice(topic);
      if (where?.channel !== "status" || payload.length === 0) return;
      const status = parseJson(this, topic, payload);
      if (status === undefined) return;
      if (status.state !== "online" && status.state !== "offline") {
        this.warn(`ignored a status on ${topic} whose state is ${JSON.stringify(status.state)}, not online/offline`);
        return;
      }
      const key = `${where.site}/${where.device}`;
      const session = Number.isInteger(status.session) ? status.session : null;
      const before = known.get(key);
      const staleWill =
        status.state === "offline" &&
        before?.state === "online" &&
        session !== null &&
        before.session !== null &&
        session < before.session;
      if (staleWill) return;
      known.set(key, { state: status.state, session });
      if (before ? before.state === status.state : packet.retain && !config.initial) return;
      if (only && status.state !== only) return;
      const out = {
        site: where.site,
        device: where.device,
        state: status.state,
        session,
        at: typeof status.at === "string" ? status.at : new Date().toISOString(),
      };
      if (status.state === "online") out.version = status.version;
      // A clean shutdown says when; the Will (published by the broker for a lost connection) does not.
      else out.cause = typeof status.at === "string" ? "shutdown" : "connection-lost";
      this.send({ topic: key, payload: out });
    });
    /** Resolves once the broker granted the subscription (tests wait on it). */
    this.subscribed = subscription.granted;
    this.on("close", () => subscription.close());
  }

  RED.nodes.registerType("paylane status", PaylaneStatusNode);
};
