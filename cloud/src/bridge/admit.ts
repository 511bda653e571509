/**
 * Turns one `events` payload into entries to commit and refusals to report.
 * Pure: no I/O, so every rule for bad input is tested without a broker.
 *
 * - not JSON / not a batch        -> the message is refused (no seq to ack)
 * - batch names another device     -> the message is refused (`wrong-device`)
 * - an entry with a usable seq but a bad envelope, unknown kind or bad body
 *                                  -> quarantined in its place: stored, acked, reported
 * - an entry without a usable seq  -> refused alone (it cannot hold a place)
 * - valid entries around them      -> applied as usual
 */
import {
  type DeviceAddress,
  decode,
  describeIssues,
  ENTRY_KINDS,
  type EntryKind,
  EntrySchema,
  EventBatchSchema,
} from "@paylane/protocol";
import type { MessageRefusal, PendingEntry } from "./ingest.ts";

export interface Admission {
  entries: PendingEntry[];
  refusals: MessageRefusal[];
}

const MAX_STORED_PAYLOAD = 4096;

/** Bounds what is stored of a refused payload. */
export function clip(payload: string | Buffer): string {
  // Postgres text cannot hold NUL; a refused payload must still be storable.
  const text = payload.toString().replaceAll("\u0000", "\uFFFD");
  return text.length > MAX_STORED_PAYLOAD ? `${text.slice(0, MAX_STORED_PAYLOAD)}…` : text;
}

export function admitEvents(addr: DeviceAddress, payload: Buffer): Admission {
  const text = payload.toString("utf8");
  const batch = decode(EventBatchSchema, text);
  if (!batch.ok) {
    const code = batch.error.startsWith("malformed JSON") ? "malformed-json" : "invalid-batch";
    return { entries: [], refusals: [{ ...addr, code, reason: batch.error, payload: clip(text) }] };
  }
  if (batch.value.device !== addr.device) {
    const reason = `batch from device ${JSON.stringify(batch.value.device)} was published on ${addr.site}/${addr.device}'s topic`;
    return { entries: [], refusals: [{ ...addr, code: "wrong-device", reason, payload: clip(text) }] };
  }

  const admission: Admission = { entries: [], refusals: [] };
  // JSON.parse refuses a raw control character inside a string, so a NUL can only arrive
  // escaped: without that escape in the text, no entry needs to be searched for one.
  const mayHoldNul = text.includes("\\u0000");
  const raws = batch.value.entries;
  for (let index = 0; index < raws.length; index++) admitEntry(addr, raws[index], index, mayHoldNul, admission);
  return admission;
}

/**
 * One entry's rule, appended to `out`. The hot path (a valid entry) builds no
 * strings but the body it stores; only a refused entry pays for its path
 * label and for the stored copy of what was received.
 */
function admitEntry(addr: DeviceAddress, raw: unknown, index: number, mayHoldNul: boolean, out: Admission): void {
  const envelope = EntrySchema.safeParse(raw);
  if (!envelope.success) {
    const reason = describeIssues(envelope.error, `entries[${index}]`);
    const seq = usableSeq(raw);
    if (seq === undefined) {
      out.refusals.push({ ...addr, code: "invalid-entry", reason, payload: stored(raw) });
      return;
    }
    const id = (raw as { id?: unknown }).id;
    out.entries.push({
      site: addr.site,
      device: addr.device,
      seq,
      entryId: typeof id === "string" ? id.slice(0, 64) : null,
      kind: "invalid",
      refusal: { code: "invalid-entry", reason, payload: stored(raw) },
    });
    return;
  }
  const e = envelope.data;
  const base = { site: addr.site, device: addr.device, seq: e.seq, entryId: e.id };
  if (mayHoldNul && hasNul(raw)) {
    // Postgres text and jsonb cannot hold NUL: such an entry would fail every statement it joins.
    const reason = `entries[${index}]: contains a NUL character`;
    out.entries.push({ ...base, kind: "invalid", refusal: { code: "invalid-entry", reason, payload: stored(raw) } });
    return;
  }
  if (!Object.hasOwn(ENTRY_KINDS, e.kind)) {
    const known = Object.keys(ENTRY_KINDS).join(", ");
    const reason = `entries[${index}]: unknown kind ${JSON.stringify(e.kind)} (known: ${known})`;
    out.entries.push({ ...base, kind: e.kind, refusal: { code: "unknown-kind", reason, payload: stored(raw) } });
    return;
  }
  const body = ENTRY_KINDS[e.kind as EntryKind].safeParse(e.body);
  if (!body.success) {
    const reason = describeIssues(body.error, `entries[${index}].body`);
    out.entries.push({ ...base, kind: e.kind, refusal: { code: "invalid-body", reason, payload: stored(raw) } });
    return;
  }
  out.entries.push({
    site: addr.site,
    device: addr.device,
    seq: e.seq,
    entryId: e.id,
    kind: e.kind,
    applied: { at: e.at, body: JSON.stringify(body.data) },
  });
}

/** A refused entry as received, bounded, for ops. */
function stored(raw: unknown): string {
  return clip(JSON.stringify(raw) ?? "null");
}

/** Whether any string (or key) in a parsed JSON value contains U+0000. */
function hasNul(value: unknown): boolean {
  if (typeof value === "string") return value.includes("\u0000");
  if (Array.isArray(value)) return value.some(hasNul);
  if (value && typeof value === "object") {
    return Object.entries(value).some(([k, v]) => k.includes("\u0000") || hasNul(v));
  }
  return false;
}

function usableSeq(raw: unknown): number | undefined {
  const seq = typeof raw === "object" && raw !== null ? (raw as { seq?: unknown }).seq : undefined;
  return typeof seq === "number" && Number.isSafeInteger(seq) && seq >= 1 ? seq : undefined;
}
