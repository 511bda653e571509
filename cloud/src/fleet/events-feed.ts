/**
 * The committed-events feed (issue 14): after each ingest commit, one
 * message per device on `paylane/v1/cloud/events/{site}/{device}` listing
 * the entries the cloud just committed — seq, id, kind and the device's
 * time, never a body (bodies hold member ids and card UIDs). Viewers may
 * read it; it is live only (QoS 0, not retained): the durable record is the
 * inbox, read through the API.
 */
import { type DeviceAddress, type EventsMeta, EventsMetaSchema, encode, topics } from "@paylane/protocol";
import type { Logger } from "pino";
import type { FlushOutcome } from "../bridge/ingest.ts";
import { deviceKey, type FleetLink } from "./link.ts";

/** The feed's messages of one commit, one per device, entries in seq order. */
export function eventsMetaOf(outcome: FlushOutcome, committedAt: Date): EventsMeta[] {
  const byDevice = new Map<string, EventsMeta>();
  for (const e of outcome.committed) {
    const key = deviceKey(e);
    let meta = byDevice.get(key);
    if (!meta) {
      meta = { site: e.site, device: e.device, entries: [], committedAt: committedAt.toISOString() };
      byDevice.set(key, meta);
    }
    meta.entries.push({ seq: e.seq, id: e.id, kind: e.kind, at: e.at });
  }
  for (const meta of byDevice.values()) meta.entries.sort((a, b) => a.seq - b.seq);
  return [...byDevice.values()];
}

/** Publishes the feed for every commit the bridge reports; returns what stops it. */
export function startEventsFeed(link: FleetLink, o: { logger: Logger; now: () => Date }): () => void {
  const onCommitted = (outcome: FlushOutcome) => {
    if (outcome.committed.length === 0) return;
    for (const meta of eventsMetaOf(outcome, o.now())) {
      const device: DeviceAddress = { site: meta.site, device: meta.device };
      link.publish(topics.eventsMeta(device), encode(EventsMetaSchema, meta), { qos: 0 }).catch((err: Error) => {
        // Live only: a feed message lost while the broker is away is not resent (the inbox has it all).
        o.logger.debug({ ...device, err: err.message }, "committed-events feed message not published");
      });
    }
  };
  link.fleet.on("committed", onCommitted);
  return () => link.fleet.off("committed", onCommitted);
}
