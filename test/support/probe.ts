/** Builds journal entries and batches as a device would, for raw MQTT probes. */
import { randomUUID } from "node:crypto";
import type { CheckinBody, Entry } from "@paylane/protocol";
import type { MqttClient } from "mqtt";
import type { Signal } from "./signal.ts";

export function checkinEntry(seq: number, memberId: string, at = new Date()): Entry {
  const body: CheckinBody = {
    memberId,
    credential: { type: "card", uid: "04A2B3C4" },
    replicaVersion: 1,
    offline: false,
  };
  return { seq, id: randomUUID(), kind: "checkin", at: at.toISOString(), body };
}

export function batch(device: string, entries: unknown[]): string {
  return JSON.stringify({ device, entries });
}

/** Subscribes and records every JSON message on `topic`, notifying the signal on each. */
export async function record<T = Record<string, unknown>>(
  client: MqttClient,
  topic: string,
  signal: Signal,
): Promise<T[]> {
  const seen: T[] = [];
  client.on("message", (t, payload) => {
    if (t !== topic) return;
    seen.push(JSON.parse(payload.toString()) as T);
    signal.notify();
  });
  const granted = await client.subscribeAsync(topic, { qos: 1 });
  if (granted[0]?.qos === 128) throw new Error(`subscription to ${topic} refused`);
  return seen;
}
