/**
 * `paylane-admin` end to end, through its bin from outside the repository,
 * against a real Postgres schema that an API on the same schema serves: an
 * account added with a generated password logs in; a new password (from
 * standard input), a new role and a disable each end its sessions, and a
 * disabled account cannot log in; `--help` everywhere; a bad role is one line.
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Registry } from "@paylane/protocol";
import { Registry as MetricsRegistry } from "prom-client";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { createApi } from "../src/api/app.ts";
import { MemoryPresence } from "../src/presence/memory-presence.ts";
import { openTestSchema, PG_URL } from "./console-db.ts";

const BIN = join(import.meta.dirname, "..", "bin", "paylane-admin.mjs");
const SECRET = "a-test-secret-of-at-least-32-characters!";
let schema: string;
let drop: () => Promise<void>;
let app: ReturnType<typeof createApi>;
let cwd: string;

test.before(async () => {
  const t = await openTestSchema("paylane_admin");
  schema = t.schema;
  drop = t.drop;
  cwd = await mkdtemp(join(tmpdir(), "paylane-admin-"));
  app = createApi({
    db: t.db,
    presence: new MemoryPresence(),
    registry: () => new Registry({ version: 1, devices: [], services: [] }),
    metrics: new MetricsRegistry(),
    health: async () => ({ status: "ok" }),
    jwtSecret: SECRET,
  });
});
test.after(async () => {
  await drop();
  await rm(cwd, { recursive: true, force: true });
});

/** Runs the bin (from a folder outside the repository) with `stdin`; its exit code and output. */
function admin(args: string[], stdin?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [BIN, ...args],
      { cwd, env: { ...process.env, DATABASE_URL: PG_URL, DATABASE_SCHEMA: schema, PGLITE_DIR: "" } },
      (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
    );
    child.stdin?.end(stdin ?? "");
  });
}

async function api(method: string, path: string, o: { body?: unknown; auth?: string } = {}) {
  const res = await app.request(path, {
    method,
    headers: {
      ...(o.body === undefined ? {} : { "content-type": "application/json" }),
      ...(o.auth ? { authorization: `Bearer ${o.auth}` } : {}),
    },
    body: o.body === undefined ? undefined : JSON.stringify(o.body),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : {}) as Record<string, unknown> };
}

const login = (username: string, password: string) =>
  api("POST", "/api/v1/auth/login", { body: { username, password } });

/** Polls until the access token is refused (each API instance believes a live session for 2 s at most). */
async function refusedSoon(accessToken: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    if ((await api("GET", "/api/v1/auth/me", { auth: accessToken })).status === 401) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("the access token was still accepted 5 s after its session was ended");
}

test("--help everywhere, and a bad role is one line with exit 2", async () => {
  const [top, add, bad, none] = await Promise.all([
    admin(["--help"]),
    admin(["user", "add", "--help"]),
    admin(["user", "add", "bob", "--role", "boss"]),
    admin(["user", "disable", "nobody-here"]),
  ]);
  assert.is(top.code, 0);
  assert.match(top.stdout, /Usage: paylane-admin/);
  assert.match(top.stdout, /DATABASE_URL/);
  assert.is(add.code, 0);
  assert.match(add.stdout, /--password-file <file>/);
  assert.is(bad.code, 2);
  assert.is(bad.stderr.trim().split("\n").length, 1, bad.stderr);
  assert.match(bad.stderr, /^paylane-admin: .*expected one of viewer, operator, finance, admin/);
  assert.is(none.code, 1);
  assert.is(none.stderr, "paylane-admin: no operator named nobody-here (paylane-admin user list)\n");
});

test("add, log in, passwd, role, disable: each change ends the sessions; a disabled account cannot log in", async () => {
  const added = await admin(["user", "add", "alice", "--role", "operator", "--site", "demo"]);
  assert.is(added.code, 0, added.stderr);
  assert.match(added.stdout, /^added alice: operator of sites demo$/m);
  const generated = /^password: (\S+)$/m.exec(added.stdout)?.[1];
  assert.ok(generated && generated.length >= 20, "a generated password, printed once");

  const first = await login("alice", generated);
  assert.is(first.status, 200);
  assert.equal((first.body.operator as { sites: string[] }).sites, ["demo"]);

  const newPassword = "alices-own-password-2026";
  const passwd = await admin(["user", "passwd", "alice", "--password", "-"], `${newPassword}\n`);
  assert.is(passwd.code, 0, passwd.stderr);
  assert.is(passwd.stdout, "new password for alice; 1 session ended\n");
  assert.not.match(passwd.stdout, newPassword);
  assert.is((await login("alice", generated)).status, 401, "the old password is refused");
  const refresh = await api("POST", "/api/v1/auth/refresh", { body: { refreshToken: first.body.refreshToken } });
  assert.is(refresh.status, 401, "the session of the old password is over");
  await refusedSoon(String(first.body.accessToken));

  const second = await login("alice", newPassword);
  assert.is(second.status, 200);
  const role = await admin(["user", "role", "alice", "finance", "--all-sites"]);
  assert.is(role.code, 0, role.stderr);
  assert.is(role.stdout, "alice: finance of every site; 1 session ended\n");
  await refusedSoon(String(second.body.accessToken));
  const third = await login("alice", newPassword);
  assert.equal(third.body.operator, {
    username: "alice",
    role: "finance",
    sites: null,
    permissions: ["fleet:read", "money:read", "money:write"],
  });

  const disabled = await admin(["user", "disable", "alice"]);
  assert.is(disabled.code, 0, disabled.stderr);
  assert.is(disabled.stdout, "alice disabled; 1 session ended\n");
  await refusedSoon(String(third.body.accessToken));
  const refused = await login("alice", newPassword);
  assert.is(refused.status, 401);
  assert.equal(refused.body, (await login("nobody-at-all", newPassword)).body, "the same answer as no account");

  const list = await admin(["user", "list"]);
  assert.is(list.code, 0, list.stderr);
  assert.match(list.stdout, /^USERNAME\s+ROLE\s+SITES\s+STATE\s+LAST LOGIN$/m);
  assert.match(list.stdout, /^alice\s+finance\s+\*\s+disabled\s+20\d\d-/m);
  assert.not.match(list.stdout + added.stderr + passwd.stderr, "argon2", "no hash is shown");
});

test.run();
