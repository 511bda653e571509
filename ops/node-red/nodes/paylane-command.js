/**
 * paylane command: sends a command to one kiosk (`cmd/{name}` with an id and
 * an expiry) and sends on the kiosk's final answer for that id: done,
 * failed (with a reason) or expired; or, when none comes in time, a message
 * with status "timeout". The kiosk's intermediate "accepted" shows under the node.
 */
"use strict";

const { randomUUID } = require("node:crypto");
const topics = require("../lib/topics.js");
const { useBroker, parseJson } = require("../lib/use-broker.js");

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

module.exports = (RED) => {
  function PaylaneCommandNode(config) {
    RED.nodes.createNode(this, config);
    const connection = useBroker(RED, this, config);
    if (!connection) return;
    const timeoutSeconds = Number(config.timeout) > 0 ? Number(config.timeout) : 30;
    const expirySeconds = Number(config.expiry) > 0 ? Number(config.expiry) : timeoutSeconds;
    /** Commands waiting for their final result: what `close` must end. */
    const pending = new Set();

    this.on("input", (msg, send, done) => {
      const p = isObject(msg.payload) ? msg.payload : {};
      const site = msg.site ?? p.site ?? config.site;
      const device = msg.device ?? p.device ?? config.device;
      const command = msg.command ?? p.command ?? config.command;
      const args = msg.args ?? p.args ?? {};
      let topic;
      try {
        topic = topics.cmd(site, device, command);
        if (!isObject(args))
          throw new TypeError(`msg.args must be an object, e.g. {"seconds": 5}, not ${JSON.stringify(args)}`);
      } catch (err) {
        done(new Error(`paylane command: ${err.message} (set msg.site, msg.device, msg.command or the node's fields)`));
        return;
      }
      const id = randomUUID();
      const sentAt = Date.now();
      const body = { id, args, expiresAt: new Date(sentAt + expirySeconds * 1000).toISOString() };
      if (connection.operatorId) body.by = connection.operatorId;

      const job = { finish: null };
      pending.add(job);
      const result = new Promise((resolve) => {
        job.finish = resolve;
      });
      const subscription = connection.subscribe(topics.cmdResult(site, device), (resultTopic, payload) => {
        const answer = parseJson(this, resultTopic, payload);
        if (!isObject(answer) || answer.id !== id) return;
        if (answer.status === "accepted") {
          this.status({ fill: "blue", shape: "dot", text: `${command} accepted by ${device}` });
          return;
        }
        job.finish(answer);
      });
      const timer = setTimeout(
        () =>
          job.finish({
            id,
            command,
            status: "timeout",
            reason: `no final result from ${site}/${device} within ${timeoutSeconds} s (if offline, the kiosk still gets it on reconnect until ${body.expiresAt})`,
            at: new Date().toISOString(),
          }),
        timeoutSeconds * 1000,
      );
      this.status({ fill: "blue", shape: "ring", text: `${command} → ${device}` });
      // Subscribe before publishing, so an answer faster than the SUBACK is not lost.
      subscription.granted
        .then(() => connection.publish(topic, body))
        .catch((err) =>
          job.finish({
            id,
            command,
            status: "failed",
            reason: `not sent: ${err.message}`,
            at: new Date().toISOString(),
          }),
        );

      result.then((answer) => {
        clearTimeout(timer);
        subscription.close();
        pending.delete(job);
        if (answer === null) {
          done();
          return;
        }
        const ok = answer.status === "done";
        this.status({ fill: ok ? "green" : "red", shape: "dot", text: `${command} ${device}: ${answer.status}` });
        send({
          ...msg,
          topic: `${site}/${device}`,
          site,
          device,
          command,
          payload: { command, ...answer },
          elapsedMs: Date.now() - sentAt,
        });
        done();
      });
    });

    this.on("close", () => {
      for (const job of pending) job.finish(null);
    });
  }

  RED.nodes.registerType("paylane command", PaylaneCommandNode);
};
