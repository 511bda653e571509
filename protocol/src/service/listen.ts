/**
 * Conventions every PayLane service shares on HTTP: how it binds a port
 * (with an error that names the variable that moves it) and its
 * `/healthz` + `/metrics` endpoints.
 */
import type { AddressInfo } from "node:net";
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
  /** Extra advice when the port is taken, e.g. which service usually holds it. */
  hint?: string;
}

/** Explains EADDRINUSE in words a person can act on. */
export function describeListenError(err: NodeJS.ErrnoException, o: ListenOptions): Error {
  if (err.code === "EADDRINUSE") {
    return new PortInUseError(
      `port ${o.port} on ${o.host} is already in use; set ${o.setting} to another port${o.hint ? ` (${o.hint})` : ""}`,
    );
  }
  if (err.code === "EACCES") return new Error(`not allowed to listen on port ${o.port}; set ${o.setting} above 1023`);
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
    const server = serve({ fetch: app.fetch, port: o.port, hostname: o.host });
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
