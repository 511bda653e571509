/**
 * A journal behind the cloud: restored from an older copy (an SD card swapped
 * back, a backup put in place), or a stream someone else published into with
 * this kiosk's credentials. Either way the cloud holds seqs this journal is
 * about to use again, and entries journaled at those seqs would collide.
 *
 * The kiosk learns the cloud's mark at start, whenever the cloud comes
 * (back) online, and from any ack beyond its journal. When its journal is
 * behind, with acks held:
 *
 *   1. every entry the cloud has not acked yet is compared (by id) with what
 *      the cloud holds at its seq; one it holds under another id is a
 *      conflict: kept here for ops, never compacted, sent so the cloud keeps
 *      it too (the cloud's `seq_collisions`);
 *   2. the journal moves past the cloud's mark with a `journal-rolled-back`
 *      entry (an alert for ops, the first of a new epoch), in one statement.
 *
 * Nothing is deleted. Offline at start the kiosk carries on, and the check
 * runs when the cloud is back; anything journaled meanwhile at a held seq is
 * caught the same way.
 */
import { type Entry, STREAM_ENTRIES_MAX } from "@paylane/protocol";
import type { Logger } from "pino";
import { answered, type CloudClient } from "./cloud/cloud-client.ts";
import type { Journal } from "./journal.ts";

/** The cloud's view of this kiosk's stream, asked through the kiosk's CloudClient. */
export class CloudStream {
  readonly #cloud: CloudClient;

  constructor(cloud: CloudClient) {
    this.#cloud = cloud;
  }

  /** The cloud's contiguous acked seq for this kiosk. Rejects when the cloud cannot be asked. */
  async ackedSeq(): Promise<number> {
    return answered(await this.#cloud.call("streamMark", {})).ackedSeq;
  }

  /** The entry ids the cloud holds at seqs (after, upTo], at most STREAM_ENTRIES_MAX of them. */
  async heldIds(after: number, upTo: number): Promise<Map<number, string | null>> {
    const { items } = answered(await this.#cloud.call("streamEntries", { query: { after, upTo } }));
    return new Map(items.map((i) => [i.seq, i.id]));
  }
}

export interface RollbackGuardOptions {
  journal: Journal;
  stream: Pick<CloudStream, "ackedSeq" | "heldIds">;
  logger: Logger;
  now: () => Date;
  /** The journal moved past the cloud's mark: the uplink sends the new entry (and the conflicts). */
  onMoved: (entry: Entry, conflicts: number[]) => void;
  /** Conflicts found before an ack covered them: the uplink sends them so that the cloud keeps them. */
  onConflicts: (seqs: number[]) => void;
}

export class RollbackGuard {
  readonly #o: RollbackGuardOptions;
  #checking: Promise<void> | undefined;

  constructor(o: RollbackGuardOptions) {
    this.#o = o;
  }

  /** Asks the cloud for its mark and catches up with it; one check at a time. Rejects when the cloud cannot be asked. */
  check(): Promise<void> {
    this.#checking ??= this.#o.stream
      .ackedSeq()
      .then((mark) => this.catchUp(mark, "stream"))
      .finally(() => {
        this.#checking = undefined;
      });
    return this.#checking;
  }

  /** The cloud holds seqs up to `cloudAckedSeq`; a journal behind it moves past it (see the file comment). */
  catchUp(cloudAckedSeq: number, detectedBy: "stream" | "ack"): Promise<void> {
    const { journal } = this.#o;
    return journal.holdingAcks(async () => {
      const before = await journal.stats();
      if (before.lastSeq >= cloudAckedSeq) return;
      const conflicts = await this.#compare(before.ackedUpTo, before.lastSeq);
      const entry = await journal.moveBeyond(cloudAckedSeq, detectedBy, this.#o.now());
      if (!entry) return;
      // Entries journaled while the comparison ran sit below the new entry, maybe at held seqs too.
      const localLast = (entry.body as { localLastSeq: number }).localLastSeq;
      if (localLast > before.lastSeq) conflicts.push(...(await this.#compare(before.lastSeq, localLast)));
      this.#o.logger.error(
        { localLastSeq: localLast, cloudAckedSeq, detectedBy, epoch: entry.body.epoch, conflicts: conflicts.length },
        "journal is behind the cloud (restored from an older copy?): moved past the cloud's seqs, nothing deleted",
      );
      this.#o.onMoved(entry, conflicts);
    });
  }

  /**
   * Before an ack covers entries this session did not send: each of ours in
   * (after, upTo] that the cloud holds under another id is recorded as a
   * conflict (and sent, so the cloud keeps it beside its own). Acks wait meanwhile.
   */
  verifyHeld(after: number, upTo: number): Promise<void> {
    return this.#o.journal.holdingAcks(async () => {
      const conflicts = await this.#compare(after, upTo);
      if (conflicts.length === 0) return;
      this.#o.logger.error(
        { conflicts: conflicts.length, from: conflicts[0], to: conflicts.at(-1) },
        "the cloud holds other entries at seqs this kiosk had not sent yet: ours are kept for ops",
      );
      this.#o.onConflicts(conflicts);
    });
  }

  /** Unacked entries in (after, upTo] that the cloud holds under another id: recorded as conflicts. */
  async #compare(after: number, upTo: number): Promise<number[]> {
    const { journal, stream } = this.#o;
    const conflicts: number[] = [];
    for (let from = after; from < upTo; from += STREAM_ENTRIES_MAX) {
      const to = Math.min(upTo, from + STREAM_ENTRIES_MAX);
      const [ours, held] = await Promise.all([journal.entryIds(from, to), stream.heldIds(from, to)]);
      for (const [seq, id] of ours) {
        if (held.has(seq) && held.get(seq) !== id) conflicts.push(seq);
      }
    }
    await journal.noteConflicts(conflicts);
    return conflicts;
  }
}
