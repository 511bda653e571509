/**
 * The AsyncAPI 3.0 document of the MQTT v1 API, generated: channels from the
 * protocol's topic builders, payload schemas from its zod schemas
 * (`z.toJSONSchema`), who may publish and subscribe from the gateway's ACL
 * functions, servers from the gateway's configuration defaults.
 */
import { readFileSync } from "node:fs";
import { checkPublish, checkSubscribe } from "@paylane/gateway";
import { COMMAND_ARGS, ENTRY_KINDS, PROTOCOL_VERSION } from "@paylane/protocol";
import { z } from "zod";
import { DEFAULTS, GatewayEnvSchema } from "../../gateway/src/config.ts";
import {
  CHANNELS,
  type ChannelSpec,
  OTHER_PROBE,
  OWN_PROBE,
  PART_SCHEMAS,
  PLACEHOLDERS,
  type Placeholder,
  type Probe,
  ROLES,
  type RoleId,
} from "./mqtt-catalogue.ts";

export const ASYNCAPI_VERSION = "3.0.0";
/** MQTT bindings version (github.com/asyncapi/bindings, mqtt 0.2.0). */
const MQTT_BINDING = "0.2.0";

const protocolPkg = JSON.parse(readFileSync(new URL("../../protocol/package.json", import.meta.url), "utf8")) as {
  version: string;
};

/** What one role may do on one channel, as the gateway's ACL answers. */
export interface Access {
  publish: boolean;
  /** A retained PUBLISH. */
  retain: boolean;
  /** A SUBSCRIBE to the exact topic. */
  subscribe: boolean;
  /** The same on another site's kiosk (false: own device or granted sites only). */
  otherSites: boolean;
}

/** Asks the ACL what `role` may do on `channel` (its own kiosk or granted site, and another site's). */
export function accessOf(role: RoleId, channel: ChannelSpec): Access {
  const spec = ROLES.find((r) => r.id === role);
  if (!spec) throw new Error(`unknown role ${role}`);
  const own = channel.topic(OWN_PROBE);
  const other = channel.topic(OTHER_PROBE);
  const publish = checkPublish(spec.identity, own, false).allowed;
  const subscribe = checkSubscribe(spec.identity, own).allowed;
  return {
    publish,
    retain: checkPublish(spec.identity, own, true).allowed,
    subscribe,
    otherSites:
      (publish && checkPublish(spec.identity, other, false).allowed) ||
      (subscribe && checkSubscribe(spec.identity, other).allowed),
  };
}

export type Action = "send" | "receive";

/**
 * What each role does on each channel. Kiosks and operators: what the ACL
 * lets them publish (send) and subscribe to (receive). The cloud: what the
 * ACL lets it publish, and receives what any other role sends (its ACL lets
 * it read the whole tree; it listens to what kiosks and operators publish).
 */
export function operationsOf(): Array<{ role: RoleId; action: Action; channel: ChannelSpec }> {
  const out: Array<{ role: RoleId; action: Action; channel: ChannelSpec }> = [];
  for (const channel of CHANNELS) {
    const others = ROLES.filter((r) => r.id !== "cloud" && accessOf(r.id, channel).publish);
    for (const role of ROLES) {
      const a = accessOf(role.id, channel);
      if (a.publish) out.push({ role: role.id, action: "send", channel });
      const receives = role.id === "cloud" ? others.length > 0 : a.subscribe;
      if (receives) out.push({ role: role.id, action: "receive", channel });
    }
  }
  return out;
}

/** A channel's address with `{site}`, `{device}`, … where the builder put the placeholders. */
export function addressOf(channel: ChannelSpec): { address: string; parameters: Placeholder[] } {
  let address = channel.topic(PLACEHOLDERS as unknown as Probe);
  const parameters: Placeholder[] = [];
  for (const [name, value] of Object.entries(PLACEHOLDERS) as Array<[Placeholder, string]>) {
    if (address.includes(value)) {
      address = address.replaceAll(value, `{${name}}`);
      parameters.push(name);
    }
  }
  return { address, parameters };
}

type Json = Record<string, unknown>;

/** Every payload and part schema, converted from zod with references between them as components. */
export function schemaComponents(): Record<string, Json> {
  const registry = z.registry<{ id: string }>();
  const add = (id: string, schema: z.ZodType) => {
    if (registry.has(schema)) return;
    registry.add(schema, { id });
  };
  for (const channel of CHANNELS) for (const m of channel.messages) add(m.schemaId, m.schema);
  for (const [id, schema] of Object.entries(PART_SCHEMAS)) add(id, schema);
  const { schemas } = z.toJSONSchema(registry, {
    target: "draft-7",
    // What a receiver accepts: optional fields with defaults may be left out.
    io: "input",
    uri: (id) => `#/components/schemas/${id}`,
    unrepresentable: "throw",
  }) as { schemas: Record<string, Json> };
  const out: Record<string, Json> = {};
  for (const id of Object.keys(schemas).sort()) {
    const { $schema: _drop, $id: _id, ...schema } = schemas[id] as Json;
    out[id] = schema;
  }
  // The cloud validates a batch's envelope first and each entry on its own (one bad entry is refused
  // alone), so EventBatchSchema leaves entries unknown; the document names what each entry is.
  const batch = out.EventBatch as { properties: { entries: { items: unknown } } };
  batch.properties.entries.items = { $ref: "#/components/schemas/Entry" };
  // An entry's body is validated against the schema of its kind.
  (out.Entry as Json).allOf = Object.keys(ENTRY_KINDS).map((kind) => ({
    if: { properties: { kind: { const: kind } }, required: ["kind"] },
    // biome-ignore lint/suspicious/noThenProperty: JSON Schema's if/then, never awaited
    then: { properties: { body: { $ref: `#/components/schemas/EntryBody.${kind}` } } },
  }));
  // Desired settings: each one is validated on its own by the kiosk.
  const config = out.DesiredConfig as { properties: { settings: Json } };
  config.properties.settings = {
    description:
      "Each setting is checked on its own: one bad field is refused (reported on state) while the others apply.",
    allOf: [{ $ref: "#/components/schemas/ConfigSettings" }],
  };
  return out;
}

const PARAMETERS: Record<Placeholder, { description: string; enum?: string[]; examples: string[] }> = {
  site: { description: "Site id: lower-case letters, digits, `-`, `_` (not `cloud`).", examples: [OWN_PROBE.site] },
  device: { description: "Device id within the site, same alphabet.", examples: [OWN_PROBE.device] },
  command: {
    description: "Command name: one of the kiosk's commands.",
    enum: Object.keys(COMMAND_ARGS),
    examples: [OWN_PROBE.command],
  },
  alert: { description: "The alert's key made safe for a topic level (alertTopicLevel).", examples: [OWN_PROBE.alert] },
};

function describeAccess(a: Access): string {
  const parts = [
    a.publish && (a.retain ? "publish (retain allowed)" : "publish (never retained)"),
    a.subscribe && "subscribe",
  ];
  return parts.filter(Boolean).join(", ") || "none";
}

/** The AsyncAPI 3.0 document, as a plain object (key order is stable). */
export function buildAsyncApi(): Json {
  const schemas = schemaComponents();
  const messages: Record<string, Json> = {};
  const channels: Record<string, Json> = {};
  for (const channel of CHANNELS) {
    const { address, parameters } = addressOf(channel);
    const channelMessages: Record<string, Json> = {};
    for (const m of channel.messages) {
      const checked = m.schema.safeParse(m.example);
      if (!checked.success) throw new Error(`example of ${m.id} does not match its schema: ${checked.error.message}`);
      if (m.command) {
        const args = (PART_SCHEMAS[`CommandArgs.${m.command}`] as z.ZodType).safeParse(
          (m.example as { args: unknown }).args,
        );
        if (!args.success) throw new Error(`example args of ${m.id} do not match: ${args.error.message}`);
      }
      const payload = m.command
        ? {
            allOf: [
              { $ref: `#/components/schemas/${m.schemaId}` },
              { properties: { args: { $ref: `#/components/schemas/CommandArgs.${m.command}` } } },
            ],
          }
        : { $ref: `#/components/schemas/${m.schemaId}` };
      messages[m.id] = {
        name: m.id,
        title: m.title,
        contentType: "application/json",
        payload,
        examples: [{ name: `${m.id}-example`, payload: m.example }],
      };
      channelMessages[m.id] = { $ref: `#/components/messages/${m.id}` };
    }
    const access = Object.fromEntries(ROLES.map((r) => [r.id, accessOf(r.id, channel)]));
    channels[channel.id] = {
      address,
      title: channel.title,
      description: [
        channel.description,
        `QoS ${channel.qos}; retained: ${channel.retained}.`,
        `Access: ${ROLES.map((r) => `${r.id}: ${describeAccess(access[r.id] as Access)}`).join("; ")}.`,
      ].join("\n\n"),
      messages: channelMessages,
      ...(parameters.length > 0
        ? { parameters: Object.fromEntries(parameters.map((p) => [p, { $ref: `#/components/parameters/${p}` }])) }
        : {}),
      "x-paylane-qos": channel.qos,
      "x-paylane-retained": channel.retained,
      "x-paylane-topic-builder": `topics.${channel.builder}`,
      "x-paylane-access": access,
    };
  }

  const operations: Record<string, Json> = {};
  for (const op of operationsOf()) {
    const { role, action, channel } = op;
    const id = `${role}.${action}.${channel.id}`;
    const retain = action === "send" && channel.retained !== "never";
    operations[id] = {
      action,
      channel: { $ref: `#/channels/${channel.id}` },
      title: `${role} ${action === "send" ? "publishes" : "receives"} ${channel.title.toLowerCase()}`,
      tags: [{ name: role }],
      messages: channel.messages.map((m) => ({ $ref: `#/channels/${channel.id}/messages/${m.id}` })),
      bindings: {
        mqtt: { qos: channel.qos, ...(action === "send" ? { retain } : {}), bindingVersion: MQTT_BINDING },
      },
    };
  }

  const env = GatewayEnvSchema.shape;
  const security = [{ $ref: "#/components/securitySchemes/userPassword" }];
  const gatewayVar = {
    default: "localhost",
    description: "The gateway's host name (MQTT_HOST is where it listens).",
  };
  return {
    asyncapi: ASYNCAPI_VERSION,
    id: "urn:paylane:mqtt:v1",
    info: {
      title: "PayLane MQTT API",
      version: protocolPkg.version,
      description: [
        `The v${PROTOCOL_VERSION} topic tree between kiosks, the cloud and operators, on the PayLane gateway (aedes) or any MQTT 3.1.1/5 broker running its ACLs.`,
        "Generated by `npm run docs:reference` from protocol/src (topics, zod schemas) and gateway/src/acl.ts — do not edit.",
        "Payloads are UTF-8 JSON. Deny by default: anything a role is not listed for is refused.",
      ].join("\n\n"),
      tags: ROLES.map((r) => ({ name: r.id, description: `${r.title}, username \`${r.username}\`. ${r.description}` })),
    },
    defaultContentType: "application/json",
    servers: {
      mqtt: {
        host: `{gateway}:${DEFAULTS.MQTT_PORT}`,
        protocol: "mqtt",
        description: `Plain MQTT (MQTT_PORT: ${env.MQTT_PORT.description}).`,
        variables: { gateway: gatewayVar },
        security,
      },
      mqtts: {
        host: `{gateway}:${DEFAULTS.MQTT_TLS_PORT}`,
        protocol: "secure-mqtt",
        description: `MQTT over TLS (MQTT_TLS_PORT: ${env.MQTT_TLS_PORT.description}).`,
        variables: { gateway: gatewayVar },
        security,
      },
      wss: {
        host: "{gateway}:{port}",
        protocol: "wss",
        description: `MQTT over secure WebSocket, subprotocol mqtt (MQTT_WSS_PORT: ${env.MQTT_WSS_PORT.description}).`,
        variables: {
          gateway: gatewayVar,
          port: { default: "8884", description: "MQTT_WSS_PORT (no default: unset, there is no wss listener)" },
        },
        security,
      },
    },
    channels,
    operations,
    components: {
      schemas,
      messages,
      parameters: PARAMETERS,
      securitySchemes: {
        userPassword: {
          type: "userPassword",
          description:
            "Registry credentials checked against a scrypt hash: a kiosk `{site}/{device}` (client id `paylane:{site}:{device}`), a service `svc:{id}`, an operator `ops:{id}`; the password is the identity's secret.",
        },
      },
    },
  };
}
