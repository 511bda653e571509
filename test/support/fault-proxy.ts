/**
 * A fault-injecting TCP proxy for tests: put it between a client and its
 * server (device and broker, cloud and Postgres) and break the network on
 * purpose, at any time, while the connections are live.
 *
 *   const proxy = new FaultProxy({ target: { host: "127.0.0.1", port: 5432 } });
 *   await proxy.start();
 *   openPg({ url: proxy.url(PG_URL), ... });     // same URL, the proxy's port
 *   proxy.cutAfter(10_000, "up");                 // the next 10,000 bytes towards Postgres, then RST
 *
 * Directions: `up` is what the connecting side sends (client -> target),
 * `down` is what it receives (target -> client); `both` applies to each.
 *
 * Faults:
 * - `latency(ms)`: every chunk is held `ms` after it arrived (order kept).
 * - `slowDrip(bytes, everyMs)`: at most `bytes` bytes leave every `everyMs`.
 * - `stall()`: nothing is forwarded, everything is held in order (the sender
 *   is paused past 1 MiB) and goes out at `heal()`: the short partition that
 *   TCP rides out by retransmitting. `stats.held` and the `data` event let a
 *   test wait until what it sent is sitting in the proxy.
 * - `blackhole()`: connections are still accepted and kept, but every byte
 *   (and FIN) is DROPPED, not delayed, and nothing is buffered. Unlike real
 *   TCP, which retransmits, the bytes are gone: a connection that was open
 *   during the blackhole has a hole in its stream after `heal()`, so its
 *   protocol is desynchronised — treat it as dead, as one whose retransmits
 *   timed out. Connections opened after `heal()` work normally.
 * - `cutAfter(n)`: once exactly `n` more bytes passed (counted across all
 *   connections; `both` counts the two directions together), the connection
 *   carrying byte `n` is cut right after it: RST both ways (`reset`) or FIN
 *   both ways (`close`). One shot: the next cut needs a new `cutAfter`. With
 *   FIN the peer reads exactly `n` bytes; with RST it does when it keeps
 *   reading (an RST discards what still sits in a full send buffer).
 * - `cutBefore(pattern)`: the connection whose bytes next contain `pattern`
 *   is cut right before it: everything ahead of the pattern is forwarded,
 *   the pattern is not (unless it straddles two chunks: the first chunk's
 *   part of it went out before the second arrived). For a fault placed by the protocol rather than by a
 *   count (e.g. before Postgres's ReadyForQuery, which it sends only after
 *   the commit, however large the reply before it). One shot.
 * - `reset()`: RST every open connection now (`socket.resetAndDestroy()`),
 *   also one whose peer is not reading: what it had not read is lost.
 * - `refuse()`: new connections are accepted and reset at once (the client
 *   sees ECONNRESET, not ECONNREFUSED: the port stays ours); open ones live on.
 * - `heal()`: all of the above off; held (latency/drip/stall) bytes go out now.
 *
 * Connection setup itself is not delayed; only bytes are. Timers are real
 * (this is a network simulator), so use it for integration tests only.
 */
import { EventEmitter } from "node:events";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { performance } from "node:perf_hooks";

export type Direction = "up" | "down";
export type Directions = Direction | "both";
/** How a cut ends the connection: RST (`reset`) or an orderly FIN (`close`). */
export type CutHow = "reset" | "close";

export interface FaultProxyOptions {
  target: { host: string; port: number };
  /** Address to listen on (default 127.0.0.1); the port is always picked by the OS. */
  host?: string;
}

export interface FaultProxyStats {
  /** Connections accepted and forwarded (refused ones are not counted here). */
  connections: number;
  /** Connections still open. */
  open: number;
  /** Connections reset on arrival by `refuse()`. */
  refused: number;
  /** Bytes forwarded client -> target. */
  bytesUp: number;
  /** Bytes forwarded target -> client. */
  bytesDown: number;
  /** Bytes swallowed by a blackhole or discarded by a cut or reset. */
  dropped: number;
  /** Bytes received and not yet forwarded (latency, drip, stall). */
  held: number;
  /** Connections cut by `cutAfter`. */
  cuts: number;
  /** Connections reset by `reset()`. */
  resets: number;
  /** Senders paused now, one per lane: its receiver is not draining, or too much is held. */
  paused: number;
}

export interface CutInfo {
  connection: number;
  direction: Direction;
  how: CutHow;
}

export interface FaultProxyEvents {
  /** A chunk arrived from either side; `stats` already counts it (as held or dropped). */
  data: [direction: Direction, bytes: number];
  /** A connection was accepted and is being forwarded. */
  connection: [id: number];
  /** A `cutAfter` fired. */
  cut: [info: CutInfo];
  /** A connection was reset on arrival by `refuse()`. */
  refused: [];
  /** Bytes were swallowed by a blackhole or discarded by a cut or reset. */
  dropped: [bytes: number];
  /** A lane forwarded its sender's FIN (emitted right after the proxy's `end()` on the receiving socket). */
  end: [direction: Direction];
}

interface LaneFaults {
  latencyMs: number;
  drip: { bytes: number; everyMs: number } | undefined;
  blackhole: boolean;
  stalled: boolean;
}

const cleanLane = (): LaneFaults => ({ latencyMs: 0, drip: undefined, blackhole: false, stalled: false });

/** Forwarded bytes a lane remembers for `cutBefore`: the longest pattern it finds across chunks. */
const TAIL_BYTES = 64;

/** Above this many held bytes in one lane the sending socket is paused (latency or drip would grow without bound). */
const HIGH_WATER = 1 << 20;

/** What a lane needs from its proxy: the faults in force and the byte accounting for cuts. */
interface Control {
  faults(dir: Direction): LaneFaults;
  /** Bytes `lane` may still forward before the armed cut fires (Infinity when none applies). */
  allowance(lane: Lane): number;
  /** Records `n` forwarded bytes; true if that completed an armed cut (the caller cuts). */
  passed(dir: Direction, n: number): boolean;
  drop(n: number): void;
  /** Bytes now held (+) or no longer held (-) by a lane. */
  hold(delta: number): void;
  /** A lane paused (+1) or resumed (-1) its sender. */
  pause(delta: number): void;
  arrived(dir: Direction, n: number): void;
  ended(dir: Direction): void;
}

/** One direction of one connection: holds chunks for latency and drip, forwards them in order. */
class Lane {
  #queue: Buffer[] = [];
  #arrived: number[] = [];
  #held = 0;
  #timer: NodeJS.Timeout | undefined;
  #lastSentAt = Number.NEGATIVE_INFINITY;
  /** The sender's FIN arrived and waits for the held bytes. */
  #ended = false;
  /** The FIN was forwarded (or dropped by a blackhole): nothing more goes this way. */
  #finished = false;
  #writeBlocked = false;
  #paused = false;
  /** The last bytes forwarded: a pattern cut sees a pattern that straddles two chunks. */
  #tail = Buffer.alloc(0);

  constructor(
    readonly dir: Direction,
    readonly from: Socket,
    readonly to: Socket,
    readonly link: Link,
    readonly ctl: Control,
  ) {}

  start(): void {
    this.from.on("data", (chunk: Buffer) => this.#push(chunk));
    this.from.on("end", () => {
      if (this.ctl.faults(this.dir).blackhole) this.#finished = true;
      else this.#ended = true;
      this.pump();
    });
    this.to.on("drain", () => {
      this.#writeBlocked = false;
      this.#flow();
    });
  }

  /** Stops forwarding: timers cleared, held bytes counted as dropped. */
  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.ctl.drop(this.#held);
    this.ctl.hold(-this.#held);
    this.#queue = [];
    this.#arrived = [];
    this.#held = 0;
    if (this.#paused) this.ctl.pause(-1); // a closed link counts as paused no more
    this.#paused = false;
  }

  /** Re-evaluates held bytes now (the faults changed). */
  repump(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.pump();
  }

  #push(chunk: Buffer): void {
    if (this.link.closed) return;
    if (this.ctl.faults(this.dir).blackhole) {
      this.ctl.drop(chunk.length);
      this.ctl.arrived(this.dir, chunk.length);
      return;
    }
    this.#queue.push(chunk);
    this.#arrived.push(performance.now());
    this.#held += chunk.length;
    this.ctl.hold(chunk.length);
    // after the accounting, so a listener sees this chunk in `stats.held`
    this.ctl.arrived(this.dir, chunk.length);
    this.#flow();
    this.pump();
  }

  pump(): void {
    if (this.#timer || this.link.closed) return;
    while (this.#queue.length > 0) {
      const f = this.ctl.faults(this.dir);
      if (f.blackhole) {
        this.stop();
        if (this.#ended) this.#finished = true;
        break;
      }
      if (f.stalled) break; // heal() pumps again
      const now = performance.now();
      let wait = this.#arrived[0]! + f.latencyMs - now;
      if (f.drip) wait = Math.max(wait, this.#lastSentAt + f.drip.everyMs - now);
      if (wait > 0) {
        // re-checked on wake: a timer may fire a little early, and the faults may have changed
        this.#timer = setTimeout(() => {
          this.#timer = undefined;
          this.pump();
        }, Math.ceil(wait));
        break;
      }
      const head = this.#queue[0]!;
      const allowance = this.ctl.allowance(this);
      if (allowance === 0) {
        this.link.cut(this.dir);
        return;
      }
      const n = Math.min(head.length, f.drip?.bytes ?? head.length, allowance);
      const piece = n === head.length ? head : head.subarray(0, n);
      if (n === head.length) {
        this.#queue.shift();
        this.#arrived.shift();
      } else {
        this.#queue[0] = head.subarray(n);
      }
      this.#held -= n;
      this.ctl.hold(-n);
      this.#lastSentAt = now;
      // Only the last bytes are kept: a large piece is not copied whole to keep its end.
      this.#tail =
        piece.length >= TAIL_BYTES
          ? Buffer.from(piece.subarray(piece.length - TAIL_BYTES))
          : Buffer.concat([this.#tail.subarray(Math.max(0, this.#tail.length + piece.length - TAIL_BYTES)), piece]);
      if (!this.to.write(piece)) this.#writeBlocked = true;
      if (this.ctl.passed(this.dir, n)) {
        this.link.cut(this.dir);
        return;
      }
    }
    this.#flow();
    if (this.#ended && !this.#finished && this.#queue.length === 0 && !this.ctl.faults(this.dir).stalled) {
      this.#finished = true;
      this.to.end();
      this.ctl.ended(this.dir);
    }
  }

  /**
   * Bytes ahead of `pattern` in what this lane holds next (its head chunk); 0 when the
   * pattern began in bytes already forwarded; Infinity when it is not there.
   */
  before(pattern: Buffer): number {
    const head = this.#queue[0];
    if (!head) return Number.POSITIVE_INFINITY;
    // Shorter than two patterns, so any occurrence in it straddles the seam: it began in forwarded bytes.
    const k = pattern.length - 1;
    const seam = Buffer.concat([this.#tail.subarray(Math.max(0, this.#tail.length - k)), head.subarray(0, k)]);
    if (k > 0 && seam.includes(pattern)) return 0;
    const at = head.indexOf(pattern);
    return at === -1 ? Number.POSITIVE_INFINITY : at;
  }

  /** Pauses the sender while the receiver is full or too much is held, resumes when not. */
  #flow(): void {
    if (this.link.closed) return;
    const pause = this.#writeBlocked || this.#held > HIGH_WATER;
    if (pause === this.#paused) return;
    this.#paused = pause;
    this.ctl.pause(pause ? 1 : -1);
    if (pause) this.from.pause();
    else this.from.resume();
  }
}

/** One proxied connection: the accepted client socket and the socket to the target. */
class Link {
  closed = false;
  readonly lanes: Lane[];
  readonly done: Promise<void>;

  constructor(
    readonly id: number,
    readonly client: Socket,
    readonly upstream: Socket,
    readonly ctl: Control,
    readonly onCut: (link: Link, dir: Direction) => CutHow,
  ) {
    this.lanes = [new Lane("up", client, upstream, this, ctl), new Lane("down", upstream, client, this, ctl)];
    const closed = (s: Socket) => new Promise<void>((resolve) => s.once("close", () => resolve()));
    this.done = Promise.all([closed(client), closed(upstream)]).then(() => {});
  }

  start(): void {
    for (const a of [this.client, this.upstream]) {
      // Errors are expected here (that is the point); each is mirrored to the other side.
      a.on("error", () => {});
      // An RST (or any error) on one side is an RST on the other. A clean close needs
      // nothing: each lane forwards its FIN once its held bytes are out.
      a.on("close", (hadError) => {
        if (hadError) this.close("reset");
      });
    }
    for (const lane of this.lanes) lane.start();
  }

  /**
   * Ends forwarding; `how` decides what both peers see. A cut is `exact`: its RST waits
   * until the last forwarded piece is in the OS, which a peer that does not read can
   * delay without end; any other reset is sent now. `destroy` (stop) closes every
   * socket still open, also those of a link an earlier close left waiting.
   */
  close(how: CutHow | "destroy", exact = false): void {
    if (this.closed && how !== "destroy") return;
    this.closed = true;
    for (const lane of this.lanes) lane.stop();
    for (const s of [this.client, this.upstream]) {
      if (s.destroyed) continue;
      if (how === "destroy") s.destroy();
      else if (how === "close") s.end(() => s.destroy());
      else if (exact && !s.writableEnded) s.write(Buffer.alloc(0), () => rst(s));
      else rst(s);
    }
  }

  cut(dir: Direction): void {
    this.close(this.onCut(this, dir), true);
  }
}

export class FaultProxy {
  readonly o: FaultProxyOptions;
  readonly events = new EventEmitter<FaultProxyEvents>();
  #server: Server | undefined;
  #port: number | undefined;
  readonly #links = new Set<Link>();
  #nextId = 1;
  #faults: Record<Direction, LaneFaults> = { up: cleanLane(), down: cleanLane() };
  #cut:
    | { remaining: number; pattern?: undefined; direction: Directions; how: CutHow }
    | { remaining?: undefined; pattern: Buffer; direction: Directions; how: CutHow }
    | undefined;
  #refusing = false;
  #stats: FaultProxyStats = {
    connections: 0,
    open: 0,
    refused: 0,
    bytesUp: 0,
    bytesDown: 0,
    dropped: 0,
    held: 0,
    cuts: 0,
    resets: 0,
    paused: 0,
  };

  readonly #ctl: Control = {
    faults: (dir) => this.#faults[dir],
    allowance: (lane) => {
      const cut = this.#cut;
      if (!cut || !applies(cut.direction, lane.dir)) return Number.POSITIVE_INFINITY;
      return cut.pattern ? lane.before(cut.pattern) : cut.remaining;
    },
    passed: (dir, n) => {
      if (dir === "up") this.#stats.bytesUp += n;
      else this.#stats.bytesDown += n;
      const cut = this.#cut;
      // a pattern cut fires when the lane finds its allowance at 0, before the pattern's first byte
      if (!cut || cut.pattern || !applies(cut.direction, dir)) return false;
      cut.remaining -= n;
      return cut.remaining === 0;
    },
    drop: (n) => {
      if (n === 0) return;
      this.#stats.dropped += n;
      this.events.emit("dropped", n);
    },
    pause: (delta) => {
      this.#stats.paused += delta;
    },
    hold: (delta) => {
      this.#stats.held += delta;
    },
    arrived: (dir, n) => {
      this.events.emit("data", dir, n);
    },
    ended: (dir) => {
      this.events.emit("end", dir);
    },
  };

  constructor(o: FaultProxyOptions) {
    this.o = o;
  }

  get port(): number {
    if (this.#port === undefined) throw new Error("the fault proxy is not started");
    return this.#port;
  }

  /** A snapshot of the counters. */
  get stats(): FaultProxyStats {
    return { ...this.#stats, open: this.#links.size };
  }

  /**
   * `url("mqtt")` -> `mqtt://127.0.0.1:<port>`; a whole URL keeps everything
   * but its host and port: `url("postgres://postgres@127.0.0.1:5432/test")`.
   */
  url(schemeOrUrl: string): string {
    const host = this.o.host ?? "127.0.0.1";
    if (!schemeOrUrl.includes("://")) return `${schemeOrUrl}://${host}:${this.port}`;
    const u = new URL(schemeOrUrl);
    u.hostname = host;
    u.port = String(this.port);
    return u.toString();
  }

  async start(): Promise<void> {
    if (this.#server) throw new Error("the fault proxy is already started");
    const { port, host } = this.o.target;
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new Error(`fault proxy target.port: expected 1..65535, got ${port}`);
    }
    if (!host) throw new Error("fault proxy target.host: expected a host name or address");
    const server = createServer({ allowHalfOpen: true }, (client) => this.#accept(client));
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, this.o.host ?? "127.0.0.1", () => {
        server.off("error", reject);
        resolve();
      });
    });
    const address = server.address();
    if (!address || typeof address === "string") throw new Error("fault proxy: no TCP address after listen");
    this.#port = address.port;
  }

  /** Holds every chunk `ms` milliseconds before forwarding it. */
  latency(ms: number, direction: Directions = "both"): this {
    if (!Number.isFinite(ms) || ms < 0) throw new Error(`latency(ms): expected a finite number >= 0, got ${ms}`);
    for (const d of each(direction)) this.#faults[d].latencyMs = ms;
    this.#repump();
    return this;
  }

  /** Forwards at most `bytesPerChunk` bytes every `everyMs` milliseconds. */
  slowDrip(bytesPerChunk: number, everyMs: number, direction: Directions = "both"): this {
    if (!Number.isInteger(bytesPerChunk) || bytesPerChunk < 1) {
      throw new Error(`slowDrip(bytesPerChunk): expected an integer >= 1, got ${bytesPerChunk}`);
    }
    if (!Number.isFinite(everyMs) || everyMs < 0) {
      throw new Error(`slowDrip(everyMs): expected a finite number >= 0, got ${everyMs}`);
    }
    for (const d of each(direction)) this.#faults[d].drip = { bytes: bytesPerChunk, everyMs };
    this.#repump();
    return this;
  }

  /** Forwards nothing and holds everything, in order, until `heal()`. */
  stall(direction: Directions = "both"): this {
    for (const d of each(direction)) this.#faults[d].stalled = true;
    return this;
  }

  /** Drops every byte from now on (held bytes too); connections stay open. See the file comment. */
  blackhole(direction: Directions = "both"): this {
    for (const d of each(direction)) this.#faults[d].blackhole = true;
    this.#repump();
    return this;
  }

  /** Cuts the connection that carries the `nBytes`-th byte from now, right after it (one shot). */
  cutAfter(nBytes: number, direction: Directions = "both", how: CutHow = "reset"): this {
    if (!Number.isSafeInteger(nBytes) || nBytes < 0) {
      throw new Error(`cutAfter(nBytes): expected an integer >= 0, got ${nBytes}`);
    }
    this.#cut = { remaining: nBytes, direction, how };
    // with nBytes = 0 a lane holding bytes must cut now, not at its next chunk
    if (nBytes === 0) this.#repump();
    return this;
  }

  /** Cuts the connection whose bytes next contain `pattern`, right before it (one shot). */
  cutBefore(pattern: Buffer, direction: Directions = "both", how: CutHow = "reset"): this {
    if (pattern.length === 0 || pattern.length > TAIL_BYTES) {
      throw new Error(`cutBefore(pattern): expected 1 to ${TAIL_BYTES} bytes, got ${pattern.length}`);
    }
    this.#cut = { pattern, direction, how };
    this.#repump();
    return this;
  }

  /** RSTs every open connection now; returns how many. */
  reset(): number {
    const n = this.#links.size;
    for (const link of [...this.#links]) link.close("reset");
    this.#stats.resets += n;
    return n;
  }

  /** While on, new connections are accepted and reset at once. */
  refuse(on = true): this {
    this.#refusing = on;
    return this;
  }

  /** Clean forwarding again: no latency, drip, stall, blackhole, refusal or armed cut. */
  heal(): this {
    this.#faults = { up: cleanLane(), down: cleanLane() };
    this.#cut = undefined;
    this.#refusing = false;
    this.#repump();
    return this;
  }

  /** Stops listening and closes every connection; resolves when every socket is closed. */
  async stop(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    const links = [...this.#links];
    for (const link of links) link.close("destroy");
    await Promise.all([closed, ...links.map((l) => l.done)]);
    this.#port = undefined;
  }

  #accept(client: Socket): void {
    if (this.#refusing || !this.#server) {
      client.on("error", () => {});
      client.resetAndDestroy();
      this.#stats.refused += 1;
      this.events.emit("refused");
      return;
    }
    client.setNoDelay(true);
    const upstream = createConnection({ ...this.o.target, allowHalfOpen: true, noDelay: true });
    const link = new Link(this.#nextId++, client, upstream, this.#ctl, (l, dir) => {
      const how = this.#cut?.how ?? "reset";
      this.#cut = undefined;
      this.#stats.cuts += 1;
      this.events.emit("cut", { connection: l.id, direction: dir, how });
      return how;
    });
    this.#links.add(link);
    this.#stats.connections += 1;
    void link.done.then(() => this.#links.delete(link));
    link.start();
    this.events.emit("connection", link.id);
  }

  #repump(): void {
    for (const link of this.#links) for (const lane of link.lanes) lane.repump();
  }
}

/**
 * RSTs `s` now. Node's `resetAndDestroy()` on a socket whose FIN is still being
 * shut down (`end()` called, the shutdown not yet done) fails with EINVAL and
 * then never closes the socket: no 'close', the fd leaks, and a `stop()` waiting
 * for it hangs (seen on Node 20.20). Such a socket has told its peer EOF already
 * and holds nothing unsent, so it is closed plainly instead.
 */
function rst(s: Socket): void {
  if (s.writableEnded && !s.writableFinished && s.writableLength === 0) s.destroy();
  else s.resetAndDestroy();
}

function applies(armed: Directions, dir: Direction): boolean {
  return armed === "both" || armed === dir;
}

function each(direction: Directions): Direction[] {
  if (direction === "both") return ["up", "down"];
  if (direction === "up" || direction === "down") return [direction];
  throw new Error(`direction: expected "up", "down" or "both", got ${JSON.stringify(direction)}`);
}
