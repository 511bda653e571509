/**
 * The cloud's admin API as `paylane-provision` calls it: claim codes and
 * enrolled devices (docs/enrolment.md). An admin operator token (JWT) is the
 * credential; a private CA can be trusted for a cloud on HTTPS.
 */
import { readFile } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { isIP } from "node:net";
import { join } from "node:path";
import { ProvisionError } from "../cli/errors.ts";

export const DEFAULT_CLOUD_URL = "http://127.0.0.1:8080";

function isLoopbackHost(hostname: string): boolean {
  const bare = hostname.replace(/^\[(.*)\]$/, "$1");
  return bare === "localhost" || bare === "::1" || (isIP(bare) === 4 && bare.startsWith("127."));
}

export interface CloudLogin {
  cloudUrl: string;
  token: string;
  /** PEM of a CA to trust besides the system's. */
  ca?: string;
}

export interface LoginFlags {
  cloudUrl?: string;
  tokenFile?: string;
  ca?: string;
}

/**
 * Where the CLI finds the cloud and its token: flags, then PAYLANE_CLOUD_URL /
 * PAYLANE_TOKEN, then npm start's `operator-token` in PAYLANE_DATA.
 */
export async function resolveLogin(flags: LoginFlags, env = process.env): Promise<CloudLogin> {
  const cloudUrl = (flags.cloudUrl ?? env.PAYLANE_CLOUD_URL ?? DEFAULT_CLOUD_URL).replace(/\/+$/, "");
  let url: URL;
  try {
    url = new URL(cloudUrl);
  } catch {
    throw new ProvisionError(`--cloud-url: not a URL: ${JSON.stringify(cloudUrl)} (e.g. https://cloud.example)`, 2);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:")
    throw new ProvisionError(`--cloud-url: expected http:// or https://, got ${url.protocol}`, 2);
  // The admin token goes out and claim codes come back: never in clear beyond this machine (as the kiosk's rule).
  if (url.protocol === "http:" && !isLoopbackHost(url.hostname))
    throw new ProvisionError(
      `--cloud-url ${url.origin} is plain http: the admin token and claim codes must not cross a network in clear; use https:// (with --ca for a private CA)`,
      2,
    );

  let token = flags.tokenFile ? undefined : env.PAYLANE_TOKEN?.trim();
  if (!token) {
    const file = flags.tokenFile ?? join(env.PAYLANE_DATA ?? ".paylane", "operator-token");
    try {
      token = (await readFile(file, "utf8")).trim();
    } catch {
      throw new ProvisionError(
        `no operator token: ${file} cannot be read; pass --token-file <file> or set PAYLANE_TOKEN to an admin token`,
        2,
      );
    }
    if (!token) throw new ProvisionError(`${file} is empty: it should hold an admin operator token (JWT)`, 2);
  }
  let ca: string | undefined;
  if (flags.ca) {
    try {
      ca = await readFile(flags.ca, "utf8");
    } catch (err) {
      throw new ProvisionError(`--ca: cannot read ${flags.ca}: ${(err as Error).message}`, 2);
    }
  }
  return { cloudUrl, token, ca };
}

/** One JSON call; a refusal becomes a ProvisionError with the cloud's own one-line reason. */
export async function callCloud<T>(
  login: CloudLogin,
  method: "GET" | "POST",
  path: string,
  body?: unknown,
): Promise<T> {
  const url = new URL(path, `${login.cloudUrl}/`);
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  const send = url.protocol === "https:" ? httpsRequest : httpRequest;
  const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = send(
      url,
      {
        method,
        headers: {
          accept: "application/json",
          authorization: `Bearer ${login.token}`,
          ...(payload ? { "content-type": "application/json", "content-length": String(payload.length) } : {}),
        },
        ...(login.ca ? { ca: login.ca } : {}),
        timeout: 30_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error("no answer within 30 s")));
    req.on("error", reject);
    req.end(payload);
  }).catch((err: Error & { code?: string }) => {
    const hint =
      err.code === "ECONNREFUSED" || err.code === "ENOTFOUND"
        ? " (is it the right address? set --cloud-url or PAYLANE_CLOUD_URL)"
        : err.code?.startsWith("ERR_TLS") || err.code?.includes("CERT")
          ? " (the cloud's TLS certificate is not trusted or not for this address: --ca for a private CA)"
          : "";
    throw new ProvisionError(`cannot reach the cloud at ${login.cloudUrl}: ${err.code ?? err.message}${hint}`);
  });
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    throw new ProvisionError(`the cloud at ${login.cloudUrl} answered ${status} with something that is not JSON`);
  }
  if (status >= 400) {
    const p = (json ?? {}) as { title?: string; detail?: string };
    throw new ProvisionError(`the cloud refused (${status} ${p.title ?? ""}): ${p.detail ?? "no detail"}`.trim());
  }
  return json as T;
}
