/**
 * libpq's multi-host connection URLs, which node-postgres does not parse
 * (pg 8.23 takes one host; its multi-host pull request, brianc/node-postgres#3643,
 * is still open): `postgres://user@h1:5432,h2:5433/db?target_session_attrs=read-write`.
 * Split here into one ordinary single-host URL per host, in order, and the
 * session attributes the chosen host must have (libpq's six modes).
 */

export const TARGET_SESSION_ATTRS = ["any", "read-write", "read-only", "primary", "standby", "prefer-standby"] as const;
export type TargetSessionAttrs = (typeof TARGET_SESSION_ATTRS)[number];

export interface PgHostUrl {
  /** `host:port` as written (the default port filled in), for logs and errors: no credentials. */
  label: string;
  /** A single-host URL node-postgres understands: the same user, password, database and parameters. */
  url: string;
}

export interface ParsedPgUrl {
  hosts: PgHostUrl[];
  targetSessionAttrs: TargetSessionAttrs;
  /** Set explicitly in the URL (a single host with no attribute keeps the plain behaviour). */
  explicitAttrs: boolean;
}

const URL_SHAPE = /^(postgres(?:ql)?:\/\/)(?:([^@/?#]*)@)?([^/?#]*)([/?#].*)?$/;
const HOST = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._%-]+)(?::(\d{1,5}))?$/;

/** Parses a (multi-host) Postgres URL; throws an Error naming what is wrong. */
export function parsePgUrl(url: string, defaultPort = 5432): ParsedPgUrl {
  const m = URL_SHAPE.exec(url);
  if (!m) throw new Error("expected postgres://[user[:password]@]host[:port][,host[:port]...]/database");
  const [, scheme, userinfo, hostList, rest = ""] = m as unknown as [
    string,
    string,
    string | undefined,
    string,
    string,
  ];
  const [beforeQuery, query = ""] = splitOnce(rest, "?");
  const params = new URLSearchParams(query.split("#")[0]);
  const attrs = params.get("target_session_attrs");
  if (attrs !== null && !(TARGET_SESSION_ATTRS as readonly string[]).includes(attrs))
    throw new Error(`target_session_attrs=${attrs}: expected one of ${TARGET_SESSION_ATTRS.join(", ")}`);
  params.delete("target_session_attrs");
  const search = params.toString();
  // No host in the authority (postgres:///db?host=/var/run/postgresql, or PGHOST): one host, as node-postgres reads it.
  if (!hostList) {
    const single = `${scheme}${userinfo !== undefined ? `${userinfo}@` : ""}${beforeQuery}${search ? `?${search}` : ""}`;
    return {
      hosts: [{ label: "(default host)", url: attrs === null ? url : single }],
      targetSessionAttrs: (attrs as TargetSessionAttrs | null) ?? "any",
      explicitAttrs: attrs !== null,
    };
  }
  const hosts = hostList.split(",").map((h) => {
    const hm = HOST.exec(h);
    if (!hm) throw new Error(`host ${JSON.stringify(h)}: expected host or host:port`);
    const port = hm[2] === undefined ? defaultPort : Number(hm[2]);
    if (port < 1 || port > 65535) throw new Error(`host ${JSON.stringify(h)}: port must be 1-65535`);
    const label = `${hm[1]}:${port}`;
    const single = `${scheme}${userinfo !== undefined ? `${userinfo}@` : ""}${label}${beforeQuery}${search ? `?${search}` : ""}`;
    // What node-postgres will be handed must be a URL it reads the same way.
    new URL(single);
    return { label, url: single };
  });
  // One host and no attribute: handed over exactly as written, as before multi-host URLs.
  if (hosts.length === 1 && attrs === null) hosts[0] = { label: hosts[0]!.label, url };
  return {
    hosts,
    targetSessionAttrs: (attrs as TargetSessionAttrs | null) ?? "any",
    explicitAttrs: attrs !== null,
  };
}

/** The URL with its password replaced, for logs. */
export function redactPgUrl(url: string): string {
  return url.replace(/^(postgres(?:ql)?:\/\/[^:@/]*):[^@/]*@/, "$1:***@");
}

function splitOnce(s: string, sep: string): [string, string | undefined] {
  const i = s.indexOf(sep);
  return i < 0 ? [s, undefined] : [s.slice(0, i), s.slice(i + 1)];
}
