/**
 * A tiny round-robin load balancer for tests: one loopback port in front of
 * several upstreams (API instances), each HTTP request and each WebSocket
 * upgrade sent to the next upstream in turn, whatever connection it came on
 * (no stickiness). Like a real proxy it appends the client's address to
 * `X-Forwarded-For` (the cloud reads it with CLOUD_TRUST_PROXY) and keeps
 * the `Host` header. Every answer says which upstream served it
 * (`X-Served-By`); `served` counts them.
 */
import { createServer, type IncomingMessage, request, type Server } from "node:http";
import { connect, type Socket } from "node:net";
import type { Duplex } from "node:stream";

export interface Upstream {
  /** How the upstream is named in `served` and `X-Served-By`. */
  name: string;
  port: number;
  host?: string;
}

export class RoundRobin {
  readonly #upstreams: readonly Upstream[];
  #next = 0;
  #server: Server | undefined;
  readonly #sockets = new Set<Duplex>();
  /** Requests and upgrades sent to each upstream, by name. */
  readonly served: Record<string, number> = {};
  /** Each request and upgrade in order: which upstream got it. */
  readonly log: { upstream: string; method: string; path: string; upgrade: boolean }[] = [];

  constructor(upstreams: readonly Upstream[]) {
    if (upstreams.length === 0) throw new Error("RoundRobin: at least one upstream");
    this.#upstreams = upstreams;
    for (const u of upstreams) this.served[u.name] = 0;
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => {
      const up = this.#pick(req, false);
      const forward = request(
        {
          host: up.host ?? "127.0.0.1",
          port: up.port,
          method: req.method,
          path: req.url,
          headers: forwardedHeaders(req),
        },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.statusMessage, {
            ...answer.headers,
            "x-served-by": up.name,
          });
          answer.pipe(res);
        },
      );
      forward.on("error", (err) => {
        if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain", "x-served-by": up.name });
        res.end(`upstream ${up.name}: ${err.message}`);
      });
      req.pipe(forward);
    });
    server.on("upgrade", (req: IncomingMessage, client: Duplex, head: Buffer) => {
      const up = this.#pick(req, true);
      const upstream: Socket = connect(up.port, up.host ?? "127.0.0.1");
      this.#track(client);
      this.#track(upstream);
      const end = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on("error", end);
      upstream.on("error", end);
      client.on("close", end);
      upstream.on("close", end);
      upstream.once("connect", () => {
        const lines = [`${req.method} ${req.url} HTTP/${req.httpVersion}`];
        for (const [name, value] of Object.entries(forwardedHeaders(req))) {
          for (const v of Array.isArray(value) ? value : [value]) if (v !== undefined) lines.push(`${name}: ${v}`);
        }
        upstream.write(`${lines.join("\r\n")}\r\n\r\n`);
        if (head.length > 0) upstream.write(head);
        upstream.pipe(client);
        client.pipe(upstream);
      });
    });
    server.on("connection", (socket) => this.#track(socket));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve());
    });
    this.#server = server;
  }

  get port(): number {
    const address = this.#server?.address();
    if (!address || typeof address === "string") throw new Error("RoundRobin: not started");
    return address.port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** `served` as one line: `a=12 b=12`. */
  summary(): string {
    return Object.entries(this.served)
      .map(([name, n]) => `${name}=${n}`)
      .join(" ");
  }

  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const s of this.#sockets) s.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  #pick(req: IncomingMessage, upgrade: boolean): Upstream {
    const up = this.#upstreams[this.#next % this.#upstreams.length]!;
    this.#next++;
    this.served[up.name] = (this.served[up.name] ?? 0) + 1;
    this.log.push({ upstream: up.name, method: req.method ?? "GET", path: req.url ?? "/", upgrade });
    return up;
  }

  #track(socket: Duplex): void {
    this.#sockets.add(socket);
    socket.once("close", () => this.#sockets.delete(socket));
  }
}

/** The request's headers as a proxy passes them on: the client's address appended to X-Forwarded-For. */
function forwardedHeaders(req: IncomingMessage): IncomingMessage["headers"] {
  const peer = req.socket.remoteAddress ?? "unknown";
  const before = req.headers["x-forwarded-for"];
  return {
    ...req.headers,
    "x-forwarded-for": before ? `${before}, ${peer}` : peer,
    "x-forwarded-proto": "http",
  };
}
