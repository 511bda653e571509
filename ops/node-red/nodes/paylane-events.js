/**
 * paylane events: one message per journal entry the cloud committed, from
 * the cloud's events feed (seq, id, kind and time; never the entry's body,
 * which holds member ids).
 */
"use strict";

const topics = require("../lib/topics.js");
const { useBroker, parseJson, RecentKeys, splitList } = require("../lib/use-broker.js");

module.exports = (RED) => {
  function PaylaneEventsNode(config) {
    RED.nodes.createNode(this, config);
    const connection = useBroker(RED, this, config);
    if (!connection) return;
    let filter;
    try {
      filter = topics.eventsMeta(config.site, config.device);
    } catch (err) {
      this.error(`paylane events: ${err.message}; leave site/device empty for every one`);
      return;
    }
    const kinds = new Set(splitList(config.kinds));
    const seen = new RecentKeys();

    const subscription = connection.subscribe(filter, (topic, payload) => {
      const where = topics.parseEventsMeta(topic);
      if (!where) return;
      const meta = parseJson(this, topic, payload);
      if (meta === undefined) return;
      if (!Array.isArray(meta.entries)) {
        this.warn(`ignored a message on ${topic} without an entries array`);
        return;
      }
      for (const entry of meta.entries) {
        if (kinds.size > 0 && !kinds.has(entry.kind)) continue;
        if (!seen.add(`${where.site}/${where.device}/${entry.id}`)) continue;
        this.send({
          topic: `${where.site}/${where.device}`,
          payload: {
            site: where.site,
            device: where.device,
            seq: entry.seq,
            id: entry.id,
            kind: entry.kind,
            at: entry.at,
            committedAt: meta.committedAt,
          },
        });
      }
    });
    this.subscribed = subscription.granted;
    this.on("close", () => subscription.close());
  }

  RED.nodes.registerType("paylane events", PaylaneEventsNode);
};
