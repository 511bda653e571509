/**
 * What the gateway's scrape reads from its connections and its store, at
 * scrape time: bytes on the wire (each TCP socket's own counts, so TLS and
 * WebSocket framing count as they cost) and the retained messages held.
 */
import type { Socket } from "node:net";
import type { Aedes } from "aedes";

/** Bytes received and sent on every socket the gateway accepted, closed or live. */
export class WireBytes {
  readonly #live = new Set<Socket>();
  #closedRead = 0;
  #closedWritten = 0;

  /** Counts `socket` from now until it closes (its counts are then kept). */
  track(socket: Socket): void {
    this.#live.add(socket);
    socket.once("close", () => {
      this.#live.delete(socket);
      this.#closedRead += socket.bytesRead;
      this.#closedWritten += socket.bytesWritten;
    });
  }

  /** Totals since the gateway was made: they only grow (a counter's value). */
  get received(): number {
    let n = this.#closedRead;
    for (const s of this.#live) n += s.bytesRead;
    return n;
  }

  get sent(): number {
    let n = this.#closedWritten;
    for (const s of this.#live) n += s.bytesWritten;
    return n;
  }
}

/** aedes' persistence as aedes 1.x holds it: retained messages come back as an async iterable. */
interface RetainedSource {
  createRetainedStream(pattern: string): AsyncIterable<unknown>;
}

/** How many retained messages the broker holds (every topic `#` matches: not the broker's own `$SYS`). */
export async function countRetained(broker: Aedes): Promise<number> {
  const persistence = (broker as unknown as { persistence: RetainedSource }).persistence;
  let n = 0;
  for await (const _ of persistence.createRetainedStream("#")) n++;
  return n;
}
