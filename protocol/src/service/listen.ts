/**
 * Conventions every PayLane service shares on HTTP: how it binds a port
 * (with an error that names the variable that moves it) and its
 * `/healthz` + `/metrics` endpoints.
 */
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import { type ServerType, serve } from "@hono/node-server";
import type { Hono } from "hono";

export class PortInUseError extends Error {
  override name = "PortInUseError";
}

export interface ListenOptions {
  port: number;
  host: string;
  /** The environment variable or config field that sets this port, for the error message. */
  setting: string;
  /** The variable or field that sets the address, for an address not on this machine. */
  hostSetting?: string;
  /** What listens, when a process has several listeners, e.g. "MQTT over TLS". */
  what?: string;
  /** Extra advice when the port is taken, e.g. which service usually holds it. */
  hint?: string;
  /** Called with the server before it accepts a connection (timeouts, `clientError` handlers). */
  configure?: (server: ServerType) => void;
  /** PEM certificate chain and key: serve HTTPS instead of HTTP. */
  tls?: { cert: Buffer | string; key: Buffer | string };
}

export type ListenTarget = Pick<ListenOptions, "port" | "host" | "setting" | "hostSetting" | "what" | "hint">;

/** Explains a failed listen (port taken, not allowed, address not here) in words a person can act on. */
export function describeListenError(err: NodeJS.ErrnoException, o: ListenTarget): Error {
  const what = o.what ? `${o.what} ` : "";
  if (err.code === "EADDRINUSE") {
    return new PortInUseError(
      `${what}port ${o.port} on ${o.host} is already in use; set ${o.setting} to another port${o.hint ? ` (${o.hint})` : ""}`,
    );
  }
  if (err.code === "EACCES") {
    return new Error(
      `not allowed to listen ${what ? `for ${what}` : ""}on port ${o.port}; set ${o.setting} above 1023`,
    );
  }
  if ((err.code === "EADDRNOTAVAIL" || err.code === "ENOTFOUND") && o.hostSetting) {
    return new Error(
      `cannot listen ${what ? `for ${what}` : ""}on ${o.host}: the address is not on this machine; set ${o.hostSetting}`,
    );
  }
  return err;
}

export interface Listening {
  server: ServerType;
  port: number;
  close(): Promise<void>;
}

// biome-ignore lint/suspicious/noExplicitAny: Hono apps are generic over their env; any app can be served.
export function listen(app: Hono<any, any, any>, o: ListenOptions): Promise<Listening> {
  return new Promise((resolve, reject) => {
    const server = o.tls
      ? serve({
          fetch: app.fetch,
          port: o.port,
          hostname: o.host,
          createServer: createHttpsServer,
          serverOptions: { cert: o.tls.cert, key: o.tls.key },
        })
      : serve({ fetch: app.fetch, port: o.port, hostname: o.host });
    // serve() has only asked to listen: nothing is accepted before this turn of the event loop ends.
    o.configure?.(server);
    server.once("error", (err) => reject(describeListenError(err as NodeJS.ErrnoException, o)));
    server.once("listening", () => {
      const port = (server.address() as AddressInfo).port;
      resolve({
        server,
        port,
        close: () =>
          new Promise<void>((res) => {
            // Keep-alive and WebSocket connections would hold close() open; a stop is a stop.
            (server as { closeAllConnections?: () => void }).closeAllConnections?.();
            server.close(() => res());
          }),
      });
    });
  });
}

/**
 * Errors Node's HTTP parser answers itself (headers too large, a malformed
 * request, a request that took too long) as RFC 9457 problem+json instead of
 * a bare status line. Use as `configure` of `listen`.
 */
export function problemClientErrors(server: ServerType): void {
  server.on(
    "clientError",
    (err: NodeJS.ErrnoException, socket: Duplex & { _httpMessage?: { headersSent?: boolean } }) => {
      if (err.code === "ECONNRESET" || !socket.writable || socket._httpMessage?.headersSent) {
        socket.destroy();
        return;
      }
      const [status, title, detail] =
        err.code === "HPE_HEADER_OVERFLOW"
          ? [
              431,
              "Request header fields too large",
              "the request's headers are larger than this server accepts; send fewer or smaller headers",
            ]
          : err.code === "ERR_HTTP_REQUEST_TIMEOUT" || err.code === "ERR_HTTP_HEADERS_TIMEOUT"
            ? [408, "Request timeout", "the request did not arrive in time"]
            : [400, "Bad request", "the request is not well-formed HTTP/1.1"];
      const body = JSON.stringify({ type: "about:blank", title, status, detail });
      socket.end(
        `HTTP/1.1 ${status} ${title}\r\nContent-Type: application/problem+json\r\n` +
          `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    },
  );
}

/** A URL fit for logs and error messages: any password in it is replaced. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(unparseable URL)";
  }
}
