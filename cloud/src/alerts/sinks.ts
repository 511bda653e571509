/**
 * Where alerts go: the live feed on MQTT (retained while firing), a generic
 * webhook signed with HMAC-SHA256, and PagerDuty's Events API v2. A sink's
 * `send` resolves once the receiver has the alert and throws a SinkError
 * otherwise, saying whether trying again could help.
 *
 * The webhook's headers (docs/alerts.md shows how to verify them):
 *
 *   X-PayLane-Timestamp   Unix seconds when this attempt was signed
 *   X-PayLane-Signature   sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>
 *   X-PayLane-Delivery    one id per alert change, the same on every retry (drop repeats)
 *
 * The timestamp is inside the signed text, so a receiver that refuses an old
 * timestamp (e.g. more than 5 minutes off) cannot be fed a replayed request.
 */
import { createHmac } from "node:crypto";
import { type Alert, AlertSchema, alertTopicLevel, encode, topics } from "@paylane/protocol";
import { redactUrl } from "@paylane/protocol/service";

/** One alert change on its way to the sinks: `id` is stable across retries. */
export interface Delivery {
  id: string;
  alert: Alert;
}

export interface Sink {
  readonly name: string;
  send(d: Delivery): Promise<void>;
}

export class SinkError extends Error {
  override name = "SinkError";
  constructor(
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

/** How long one HTTP attempt may take before it counts as failed (and is retried). */
const HTTP_TIMEOUT_MS = 10_000;

export const SIGNATURE_HEADER = "x-paylane-signature";
export const TIMESTAMP_HEADER = "x-paylane-timestamp";
export const DELIVERY_HEADER = "x-paylane-delivery";

/** The signature header's value for `body` signed at `timestamp` (Unix seconds). */
export function sign(secret: string, timestamp: number, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex")}`;
}

/** POSTs JSON; 2xx is delivered, 408/429/5xx and network errors are worth retrying, other answers are not. */
async function postJson(url: string, body: string, headers: Record<string, string>): Promise<void> {
  let res: Response;
  try {
    res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body,
      signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code;
    throw new SinkError(`POST ${redactUrl(url)} failed: ${cause ?? (err as Error).message}`, true);
  }
  // The answer's body is read (and dropped) so the connection can be reused.
  await res.arrayBuffer().catch(() => {});
  if (res.ok) return;
  const retryable = res.status === 408 || res.status === 429 || res.status >= 500;
  throw new SinkError(`POST ${redactUrl(url)} answered ${res.status}`, retryable);
}

export class WebhookSink implements Sink {
  readonly name = "webhook";
  constructor(
    readonly url: string,
    readonly secret: string,
    readonly now: () => Date = () => new Date(),
  ) {}

  async send(d: Delivery): Promise<void> {
    const body = JSON.stringify(AlertSchema.parse(d.alert));
    const timestamp = Math.floor(this.now().getTime() / 1000);
    await postJson(this.url, body, {
      [TIMESTAMP_HEADER]: String(timestamp),
      [SIGNATURE_HEADER]: sign(this.secret, timestamp, body),
      [DELIVERY_HEADER]: d.id,
    });
  }
}

/** PagerDuty severities are critical, error, warning and info: ours map onto them one to one. */
export function pagerDutyEvent(routingKey: string, a: Alert): Record<string, unknown> {
  if (a.state === "resolved") return { routing_key: routingKey, event_action: "resolve", dedup_key: a.key };
  return {
    routing_key: routingKey,
    event_action: "trigger",
    dedup_key: a.key,
    payload: {
      summary: a.summary,
      source: a.device ? `${a.site}/${a.device}` : a.site,
      severity: a.severity,
      timestamp: a.firedAt,
      component: a.device,
      group: a.site,
      class: a.rule,
      custom_details: { key: a.key, rule: a.rule, site: a.site, device: a.device, ...a.detail },
    },
    client: "PayLane cloud",
  };
}

export class PagerDutySink implements Sink {
  readonly name = "pagerduty";
  constructor(
    readonly url: string,
    readonly routingKey: string,
  ) {}

  async send(d: Delivery): Promise<void> {
    await postJson(this.url, JSON.stringify(pagerDutyEvent(this.routingKey, d.alert)), {});
  }
}

export type Publish = (
  topic: string,
  payload: Buffer | string,
  opts: { qos: 0 | 1; retain?: boolean },
) => Promise<void>;

/**
 * The live feed: a firing alert is retained on its topic, so a subscriber
 * arriving later sees it; on resolve the resolved message goes out (not
 * retained) and then an empty retained payload clears the topic.
 */
export class MqttSink implements Sink {
  readonly name = "mqtt";
  constructor(readonly publish: Publish) {}

  async send(d: Delivery): Promise<void> {
    const a = d.alert;
    const topic = topics.alert(a.site, alertTopicLevel(a.key));
    try {
      if (a.state === "firing") {
        await this.publish(topic, encode(AlertSchema, a), { qos: 1, retain: true });
      } else {
        await this.publish(topic, encode(AlertSchema, a), { qos: 1, retain: false });
        await this.publish(topic, "", { qos: 1, retain: true });
      }
    } catch (err) {
      throw new SinkError(`publish on ${topic} failed: ${(err as Error).message}`, true);
    }
  }
}
