/**
 * What every PayLane node does with its broker: find the config node, show
 * the shared connection's state under the node, and report a missing broker
 * in one line that says how to fix it.
 */
"use strict";

const SHOWN = {
  connected: { fill: "green", shape: "dot", text: "connected" },
  connecting: { fill: "yellow", shape: "ring", text: "connecting" },
  disconnected: { fill: "red", shape: "ring", text: "disconnected" },
  closed: { fill: "grey", shape: "ring", text: "closed" },
};

/**
 * The Connection of the node's `broker` config node, or null (after an error
 * on the node) when none is set. `show(state)` paints the node's status;
 * pass `override` to show something else for a while (e.g. a pending command).
 */
function useBroker(RED, node, config) {
  const broker = config.broker ? RED.nodes.getNode(config.broker) : null;
  if (!broker?.connection) {
    node.status({ fill: "red", shape: "ring", text: "no broker" });
    node.error("no PayLane broker set: open the node and pick (or add) a paylane-broker in its Broker field");
    return null;
  }
  const connection = broker.connection;
  const stop = connection.onState((state) => {
    const shown = SHOWN[state.name] ?? SHOWN.disconnected;
    node.status(
      state.detail && state.name !== "connected" ? { ...shown, text: `${shown.text}: ${state.detail}` } : shown,
    );
  });
  node.on("close", stop);
  return connection;
}

/** A payload as JSON, or undefined (after one warning naming the topic) when it is not. */
function parseJson(node, topic, payload) {
  try {
    return JSON.parse(payload.toString("utf8"));
  } catch (err) {
    node.warn(`ignored a message on ${topic} that is not JSON: ${err.message}`);
    return undefined;
  }
}

/** A Set of recent keys, bounded: how nodes drop a message the broker delivered twice (overlapping filters). */
class RecentKeys {
  constructor(size = 2000) {
    this.size = size;
    this.keys = new Set();
  }
  /** True the first time `key` is seen (while it is among the last `size` keys). */
  add(key) {
    if (this.keys.has(key)) return false;
    this.keys.add(key);
    if (this.keys.size > this.size) this.keys.delete(this.keys.values().next().value);
    return true;
  }
}

/** Comma- or space-separated list from an edit dialog field; empty: no filter. */
const splitList = (text) =>
  String(text ?? "")
    .split(/[\s,]+/)
    .filter(Boolean);

module.exports = { useBroker, parseJson, RecentKeys, splitList };
