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
  CheckinBodySchema,
  type DeviceAddress,
  decode,
  ENTRY_KINDS,
  EntrySchema,
  EventBatchSchema,
  validate,
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

  const entries: PendingEntry[] = [];
  const refusals: MessageRefusal[] = [];
  // JSON.parse refuses a raw control character inside a string, so a NUL can only arrive
  // escaped: without that escape in the text, no entry needs to be searched for one.
  const mayHoldNul = text.includes("\\u0000");
  batch.value.entries.forEach((raw, index) => {
    // Only refused entries are stored as received; valid ones never pay for the copy.
    const rawText = () => clip(JSON.stringify(raw) ?? "null");
    const envelope = validate(EntrySchema, raw, `entries[${index}]`);
    if (!envelope.ok) {
      const seq = usableSeq(raw);
      const reason = envelope.error;
      if (seq === undefined) {
        refusals.push({ ...addr, code: "invalid-entry", reason, payload: rawText() });
      } else {
        const id = (raw as { id?: unknown }).id;
        entries.push({
          ...addr,
          seq,
          entryId: typeof id === "string" ? id.slice(0, 64) : null,
          kind: "invalid",
          refusal: { code: "invalid-entry", reason, payload: rawText() },
        });
      }
      return;
    }
    const e = envelope.value;
    const base = { ...addr, seq: e.seq, entryId: e.id, kind: e.kind };
    if (mayHoldNul && hasNul(raw)) {
      // Postgres text and jsonb cannot hold NUL: such an entry would fail every transaction it joins.
      entries.push({
        ...base,
        kind: "invalid",
        refusal: { code: "invalid-entry", reason: `entries[${index}]: contains a NUL character`, payload: rawText() },
      });
      return;
    }
    if (!(e.kind in ENTRY_KINDS)) {
      const known = Object.keys(ENTRY_KINDS).join(", ");
      entries.push({
        ...base,
        refusal: {
          code: "unknown-kind",
          reason: `entries[${index}]: unknown kind ${JSON.stringify(e.kind)} (known: ${known})`,
          payload: rawText(),
        },
      });
      return;
    }
    const body = validate(CheckinBodySchema, e.body, `entries[${index}].body`);
    if (!body.ok) {
      entries.push({
        ...base,
        refusal: { code: "invalid-body", reason: body.error, payload: rawText() },
      });
      return;
    }
    entries.push({ ...base, applied: { at: e.at, body: JSON.stringify(body.value) } });
  });
  return { entries, refusals };
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
