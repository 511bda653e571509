/**
 * The HTTP plumbing the UI tests' fake daemons share (fake-daemon.ts, the
 * kiosk; setup-daemon.ts, setup mode): the built page served with this boot's
 * token in it, as the real daemon serves it, and JSON / problem+json answers.
 */
import { readFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { extname, join, normalize } from "node:path";
import { LOCAL_TOKEN_META } from "@paylane/protocol/kiosk-api";

export interface Answer {
  status: number;
  body: unknown;
}

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".map": "application/json",
};

const notFound = (status: 404 | 405, title: string): Answer => ({
  status,
  body: { type: "about:blank", title, status },
});

/** Errors are problem+json, as the real daemon's are. */
export function send(res: ServerResponse, { status, body }: Answer): void {
  const type = status < 400 ? "application/json" : "application/problem+json";
  res.writeHead(status, { "content-type": type }).end(JSON.stringify(body));
}

export async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

/** A file of the built UI in `root`; the page carries `token`, as the real daemon's does. */
export async function serveUiFile(
  root: string,
  token: string,
  path: string,
  method: string | undefined,
  res: ServerResponse,
): Promise<void> {
  if (method !== "GET") return send(res, notFound(405, "Method Not Allowed"));
  const file = path === "/" ? "index.html" : normalize(path).replace(/^[/\\]+/, "");
  if (file.startsWith("..")) return send(res, notFound(404, "Not Found"));
  try {
    let data: Buffer | string = await readFile(join(root, file));
    if (file === "index.html") {
      data = String(data).replace("</head>", `<meta name="${LOCAL_TOKEN_META}" content="${token}"></head>`);
    }
    res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" }).end(data);
  } catch {
    send(res, notFound(404, "Not Found"));
  }
}
