/**
 * JSON over HTTPS to the cloud for enrolment and rotation, with the CA the
 * kiosk was given (`cloudCa`). A claim code or a secret's hash must not
 * cross a network in clear: plain http:// is allowed only to loopback.
 */
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { isIP } from "node:net";

export interface CloudRequestOptions {
  /** PEM of the CA to trust for the cloud; absent: the system's store. */
  ca?: string;
  headers?: Record<string, string>;
  timeoutMs?: number;
}

export interface CloudResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
}

/** The request never left: why, in words, and whether it was the network itself (DNS, no route). */
export class CloudRequestError extends Error {
  override name = "CloudRequestError";
  constructor(
    message: string,
    readonly kind: "no-network" | "cloud-unreachable",
  ) {
    super(message);
  }
}

function isLoopbackHost(hostname: string): boolean {
  const bare = hostname.replace(/^\[(.*)\]$/, "$1");
  return bare === "localhost" || bare === "::1" || (isIP(bare) === 4 && bare.startsWith("127."));
}

/** Throws, in one line, for a cloud URL a claim code must not be sent to. */
export function assertSafeCloudUrl(cloudUrl: string): URL {
  const url = new URL(cloudUrl);
  if (url.protocol === "https:") return url;
  if (url.protocol === "http:" && isLoopbackHost(url.hostname)) return url;
  throw new Error(
    `cloudUrl ${url.origin} is plain ${url.protocol.replace(":", "")}: a claim code and credentials must not cross a network in clear; use https:// (with cloudCa for a private CA)`,
  );
}

const NETWORK_CODES = new Set(["ENOTFOUND", "EAI_AGAIN", "ENETUNREACH", "ENETDOWN", "EHOSTUNREACH"]);

/** Why a request failed to get any answer, as one line. */
function describe(err: NodeJS.ErrnoException, url: URL): CloudRequestError {
  const code = err.code ?? "";
  if (NETWORK_CODES.has(code))
    return new CloudRequestError(
      `no network path to ${url.host} (${code}): check the cable or Wi-Fi and DNS`,
      "no-network",
    );
  if (code === "ECONNREFUSED")
    return new CloudRequestError(`${url.host} refused the connection: is the cloud running?`, "cloud-unreachable");
  if (code === "ETIMEDOUT" || code === "ESOCKETTIMEDOUT")
    return new CloudRequestError(`${url.host} did not answer in time`, "cloud-unreachable");
  if (/CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO/.test(code))
    return new CloudRequestError(
      `the cloud's TLS certificate is not trusted (${code}): set cloudCa to the CA that signed it`,
      "cloud-unreachable",
    );
  return new CloudRequestError(`${url.host}: ${err.message || code}`, "cloud-unreachable");
}

/** One HTTP request with a JSON body (or none); the answer's JSON body (or its text, or undefined). */
export function cloudRequest(
  method: string,
  target: URL,
  body: unknown,
  o: CloudRequestOptions = {},
): Promise<CloudResponse> {
  const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  const send = target.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      target,
      {
        method,
        ...(target.protocol === "https:" && o.ca ? { ca: o.ca } : {}),
        headers: {
          accept: "application/json, application/problem+json",
          ...(data ? { "content-type": "application/json", "content-length": String(data.length) } : {}),
          ...o.headers,
        },
        timeout: o.timeoutMs ?? 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", (err) => reject(describe(err, target)));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let parsed: unknown = text === "" ? undefined : text;
          try {
            if (text) parsed = JSON.parse(text);
          } catch {
            // not JSON: kept as text for the message
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: parsed });
        });
      },
    );
    req.on("timeout", () => req.destroy(Object.assign(new Error("timed out"), { code: "ETIMEDOUT" })));
    req.on("error", (err) => reject(describe(err as NodeJS.ErrnoException, target)));
    req.end(data);
  });
}
