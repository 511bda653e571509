/**
 * paylane alert: alerts the cloud raises. A firing alert is retained on its
 * topic, so the node also emits what is firing when the flow starts; its
 * resolution arrives live and the retained copy is cleared (an empty
 * message, ignored here).
 */
"use strict";

const topics = require("../lib/topics.js");
const { useBroker, parseJson, RecentKeys, splitList } = require("../lib/use-broker.js");

module.exports = (RED) => {
  function PaylaneAlertNode(config) {
    RED.nodes.createNode(this, config);
    const connection = useBroker(RED, this, config);
    if (!connection) return;
    let filter;
    try {
      filter = topics.alerts(config.site);
    } catch (err) {
      this.error(`paylane alert: ${err.message}; leave site empty for every site`);
      return;
    }
    const only = config.state === "firing" || config.state === "resolved" ? config.state : "";
    const rules = new Set(splitList(config.rules));
    const seen = new RecentKeys();

    const subscription = connection.subscribe(filter, (topic, payload) => {
      if (payload.length === 0) return;
      const alert = parseJson(this, topic, payload);
      if (alert === undefined) return;
      if (typeof alert.key !== "string" || (alert.state !== "firing" && alert.state !== "resolved")) {
        this.warn(`ignored a message on ${topic} that is not a PayLane alert (needs key and state firing/resolved)`);
        return;
      }
      if (only && alert.state !== only) return;
      if (rules.size > 0 && !rules.has(alert.rule)) return;
      if (!seen.add(`${alert.key}|${alert.state}|${alert.at}`)) return;
      this.send({ topic: alert.key, payload: alert });
    });
    this.subscribed = subscription.granted;
    this.on("close", () => subscription.close());
  }

  RED.nodes.registerType("paylane alert", PaylaneAlertNode);
};
