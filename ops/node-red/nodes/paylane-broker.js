/**
 * paylane-broker: the broker URL and an operator's credentials (username
 * `ops:{id}`), and the one MQTT connection every PayLane node using it shares.
 */
"use strict";

const { Connection, URL_PATTERN } = require("../lib/connection.js");

module.exports = (RED) => {
  function PaylaneBrokerNode(config) {
    RED.nodes.createNode(this, config);
    const url = String(config.url ?? "").trim();
    const credentials = this.credentials ?? {};
    if (!URL_PATTERN.test(url)) {
      this.error(
        `paylane-broker ${config.name || this.id}: set the broker URL, e.g. mqtt://gateway:1883 (got "${url}")`,
      );
    }
    if (credentials.username && !credentials.username.startsWith("ops:")) {
      this.warn(
        `paylane-broker: username ${credentials.username} is not an operator's (ops:{id}); the broker will refuse it`,
      );
    }
    this.url = url;
    this.connection = new Connection({ url, username: credentials.username, password: credentials.password }, this);
    this.on("close", (done) => {
      this.connection.close().then(() => done(), done);
    });
  }

  RED.nodes.registerType("paylane-broker", PaylaneBrokerNode, {
    credentials: { username: { type: "text" }, password: { type: "password" } },
  });
};
