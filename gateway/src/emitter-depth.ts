/**
 * A bound on how deep aedes' message bus may recurse.
 *
 * mqemitter 7 (aedes' bus, in memory or on Redis) starts each queued message
 * from the release of the one before it, on the same stack. When thousands
 * queue at once (a fleet dropping together publishes its Wills) and their
 * subscribers answer synchronously, that chain recurses until the stack
 * overflows and the gateway process dies (seen at 7,000 and 11,000 kiosks in
 * the scale bench; upstream: mcollina/mqemitter#204, open). Here the chain is
 * broken every `maxDepth` nested starts: the message goes back to the head of
 * the queue, its slot stays held so no later message overtakes it, and the
 * queue goes on from a fresh stack on the next turn of the event loop.
 */

/** The parts of an mqemitter 7 instance this relies on (checked at wrap time). */
interface EmitterInternals {
  _do(message: unknown, callback: unknown): unknown;
  _released(): void;
  _messageQueue: unknown[];
  _messageCallbacks: unknown[];
  current: number;
}

/** Nested starts before the chain moves to a fresh stack: a cost of one setImmediate per 100 queued messages. */
export const MAX_EMITTER_DEPTH = 100;

function internals(mq: object): EmitterInternals {
  const m = mq as Partial<EmitterInternals>;
  if (
    typeof m._do !== "function" ||
    typeof m._released !== "function" ||
    !Array.isArray(m._messageQueue) ||
    !Array.isArray(m._messageCallbacks) ||
    typeof m.current !== "number"
  ) {
    throw new Error(
      "aedes' emitter is not the mqemitter 7 this gateway bounds (no _do/_released/_messageQueue): check the mqemitter version and gateway/src/emitter-depth.ts",
    );
  }
  return m as EmitterInternals;
}

/** Bounds `mq`'s recursion in place and returns it. */
export function boundEmitterDepth<T extends object>(mq: T, maxDepth = MAX_EMITTER_DEPTH): T {
  const m = internals(mq);
  const start = m._do;
  let depth = 0;
  m._do = function (this: EmitterInternals, message: unknown, callback: unknown) {
    if (depth < maxDepth) {
      depth++;
      try {
        return start.call(this, message, callback);
      } finally {
        depth--;
      }
    }
    // Back to the head of the queue, its slot held (released() gave it back just now).
    this._messageQueue.unshift(message);
    this._messageCallbacks.unshift(callback);
    this.current++;
    // _released() gives the slot back again and starts the head, from an empty stack.
    setImmediate(() => this._released());
    return this;
  };
  return mq;
}
