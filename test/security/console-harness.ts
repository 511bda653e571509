/**
 * One cloud API for the console attack tests (test/security/console-*.test.ts),
 * on the seeded site the GraphQL test starts from too (cloud/test/console-db.ts
 * openConsoleSite: the real Postgres, a schema of its own dropped at close, two
 * sites, s1 with kiosk k1 and s2 with kiosk x1), with real operator
 * accounts logged in through /api/v1/auth/login (so tokens carry a session),
 * a command desk on a fake broker link, a live feed the test pushes events
 * into, telemetry with an offline payment exposure, and a logger whose every
 * line is kept (to search for secrets).
 */
import { EventEmitter } from "node:events";
import { REFRESH_COOKIE, SESSION_COOKIE } from "@paylane/protocol";
import { type Listening, listen } from "@paylane/protocol/service";
import { Registry as MetricsRegistry } from "prom-client";
import { OperatorStore } from "../../cloud/src/accounts/store.ts";
import type { createApi } from "../../cloud/src/api/app.ts";
import { LiveSockets } from "../../cloud/src/api/live.ts";
import type { Database } from "../../cloud/src/db/database.ts";
import { CommandDesk } from "../../cloud/src/fleet/commands.ts";
import type { FleetLink } from "../../cloud/src/fleet/link.ts";
import { type ConsoleSite, DEVICE_SECRET, openConsoleSite, subscriptionFrames } from "../../cloud/test/console-db.ts";

export { DEVICE_SECRET };
export const JWT_SECRET = "console-attack-secret-of-at-least-32-chars";
export const PASSWORD = "correct horse battery staple";

/** The accounts every console attack test starts with. */
export const ACCOUNTS = {
  root: { role: "admin", sites: null },
  vera: { role: "viewer", sites: null },
  olga: { role: "operator", sites: null },
  fiona: { role: "finance", sites: null },
  sam: { role: "admin", sites: ["s1"] },
  fred: { role: "finance", sites: ["s1"] },
} as const;
export type Account = keyof typeof ACCOUNTS;

export interface Answer {
  status: number;
  headers: Headers;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: answers are read field by field in the tests
  body: any;
}

export interface CallOptions {
  bearer?: string;
  cookie?: string;
  basic?: string;
  body?: unknown;
  headers?: Record<string, string>;
}

export class ConsoleCloud {
  db!: Database;
  app!: ReturnType<typeof createApi>;
  store!: OperatorStore;
  readonly published: string[] = [];
  sockets!: LiveSockets;
  #site!: ConsoleSite;
  #commands!: CommandDesk;
  #http: Listening | undefined;

  /** The live feed the test pushes events into. */
  get live() {
    return this.#site.live;
  }
  /** Every line the cloud logged. */
  get logged() {
    return this.#site.logged;
  }

  async start(): Promise<void> {
    this.#site = await openConsoleSite("console", {
      // The kiosk's offline payment exposure, as its telemetry reports it.
      telemetry: { payments: { currency: "EUR", offlineExposure: 4321, offlinePayments: 3, cap: 10_000 } },
    });
    this.db = this.#site.db;
    this.store = new OperatorStore({ db: this.db });
    for (const [username, a] of Object.entries(ACCOUNTS)) {
      await this.store.create({ username, password: PASSWORD, role: a.role, sites: a.sites ? [...a.sites] : null });
    }
    // ...and as the bridge records it from that telemetry: finance's to read.
    await this.#site.presence.setExposure(
      { site: "s1", device: "k1" },
      { currency: "EUR", offlineExposure: 4321, offlinePayments: 3, cap: 10_000 },
      new Date(),
    );
    const link: FleetLink = {
      fleet: new EventEmitter() as FleetLink["fleet"],
      connected: true,
      publish: async (topic) => {
        this.published.push(topic);
      },
    };
    const { logger } = this.#site;
    this.#commands = new CommandDesk({ db: this.db, link, logger, now: () => new Date() });
    this.#commands.attach();
    const metrics = new MetricsRegistry();
    this.sockets = new LiveSockets({ feed: this.live, metrics, logger });
    this.app = this.#site.api({
      metrics,
      jwtSecret: JWT_SECRET,
      commands: this.#commands,
      // A lock long enough that a lockout test never races its end.
      loginLimits: { firstLockSeconds: 300 },
      liveSockets: this.sockets,
    });
  }

  /** The API on a real port (127.0.0.1, port 0) with the live feed's upgrades; its ws:// base. */
  async serve(): Promise<{ port: number; live: string }> {
    this.#http ??= await listen(this.app, {
      port: 0,
      host: "127.0.0.1",
      setting: "TEST_PORT",
      configure: (server) => this.sockets.attach(server, this.app),
    });
    return { port: this.#http.port, live: `ws://127.0.0.1:${this.#http.port}/api/v1/live` };
  }

  async close(): Promise<void> {
    await this.sockets.close();
    await this.#http?.close();
    await this.#commands.detach();
    await this.#site.drop();
  }

  async call(method: string, path: string, o: CallOptions = {}): Promise<Answer> {
    const headers: Record<string, string> = { ...o.headers };
    if (o.bearer) headers.authorization = `Bearer ${o.bearer}`;
    if (o.basic) headers.authorization = `Basic ${Buffer.from(o.basic).toString("base64")}`;
    if (o.cookie) headers.cookie = o.cookie;
    if (o.body !== undefined) headers["content-type"] ??= "application/json";
    const res = await this.app.request(path, {
      method,
      headers,
      body: o.body === undefined ? undefined : typeof o.body === "string" ? o.body : JSON.stringify(o.body),
    });
    const text = await res.text();
    let body: unknown = {};
    try {
      body = text ? JSON.parse(text) : {};
    } catch {
      body = text;
    }
    return { status: res.status, headers: res.headers, text, body };
  }

  /** A real login; `cookie`: the dashboard's (both tokens as cookies too). */
  async login(
    username: Account | string,
    o: { mode?: "cookie" | "token"; password?: string } = {},
  ): Promise<{ access: string; refresh?: string; cookies: string; answer: Answer }> {
    const answer = await this.call("POST", "/api/v1/auth/login", {
      body: { username, password: o.password ?? PASSWORD, session: o.mode ?? "token" },
    });
    if (answer.status !== 200) throw new Error(`login of ${username}: ${answer.status} ${answer.text}`);
    return {
      access: answer.body.accessToken,
      refresh: answer.body.refreshToken,
      cookies: cookieHeader(answer.headers),
      answer,
    };
  }

  async gql(query: string, o: CallOptions & { variables?: Record<string, unknown> } = {}): Promise<Answer> {
    return this.call("POST", "/api/graphql", { ...o, body: { query, variables: o.variables } });
  }

  /** A subscription over server-sent events: `next` resolves with the next event's payload, null at its end. */
  async subscribe(query: string, o: CallOptions) {
    const headers: Record<string, string> = { "content-type": "application/json", accept: "text/event-stream" };
    if (o.bearer) headers.authorization = `Bearer ${o.bearer}`;
    if (o.cookie) headers.cookie = o.cookie;
    const res = await this.app.request("/api/graphql", { method: "POST", headers, body: JSON.stringify({ query }) });
    if (!/text\/event-stream/.test(res.headers.get("content-type") ?? "")) {
      throw new Error(`not a subscription stream: ${res.status} ${await res.text()}`);
    }
    return subscriptionFrames(res);
  }

  /** Waits (a deadline, no sleep) until the live feed has `n` listeners. */
  async listening(n: number): Promise<void> {
    const deadline = Date.now() + 5000;
    while (this.live.listeners.size !== n) {
      if (Date.now() > deadline) throw new Error(`expected ${n} live listeners, have ${this.live.listeners.size}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** The audit rows, newest first, as an admin of every site reads them. */
  async audit(query = ""): Promise<Array<Record<string, unknown>>> {
    const { access } = await this.login("root");
    const res = await this.call("GET", `/api/v1/audit${query}`, { bearer: access });
    if (res.status !== 200) throw new Error(`audit: ${res.status} ${res.text}`);
    return res.body.items;
  }

  /** A kiosk's coffee (2.50 EUR) at s1 (its own Basic credentials), for refund attacks; the payment id. */
  async purchase(key: string): Promise<string> {
    const pay = await this.call("POST", "/api/v1/payments", {
      basic: `s1/k1:${DEVICE_SECRET}`,
      body: { key, memberId: "m-ada", amount: 250, currency: "EUR", itemId: "coffee", at: new Date().toISOString() },
    });
    if (pay.status !== 200 || typeof pay.body.paymentId !== "string") {
      throw new Error(`purchase: ${pay.status} ${pay.text}`);
    }
    return String(pay.body.paymentId);
  }
}

/** The `Cookie` header a browser would send back after `headers`' Set-Cookie (names and values only). */
export function cookieHeader(headers: Headers): string {
  return headers
    .getSetCookie()
    .map((c) => c.split(";")[0]!)
    .filter((c) => !c.endsWith("="))
    .join("; ");
}

export const sessionCookie = (access: string) => `${SESSION_COOKIE}=${access}`;
export const refreshCookie = (refresh: string) => `${REFRESH_COOKIE}=${refresh}`;
