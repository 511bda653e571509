/**
 * The first admin (`CLOUD_ADMIN_CREDENTIALS_FILE`, what npm start sets): a
 * database without any account gets `admin` and a 0600 file with its login;
 * a second start, or two instances starting at once, keep the one admin and
 * the one file.
 */
import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { bootstrapFirstAdmin } from "../src/accounts/bootstrap.ts";
import { verifyPassword } from "../src/accounts/password.ts";
import { OperatorStore } from "../src/accounts/store.ts";
import type { Database } from "../src/db/database.ts";
import { openTestSchema } from "./console-db.ts";

let db: Database;
let drop: () => Promise<void>;
let dir: string;

test.before(async () => {
  ({ db, drop } = await openTestSchema("console_bootstrap"));
  dir = await mkdtemp(join(tmpdir(), "paylane-bootstrap-"));
});
test.after(async () => {
  await drop();
  await rm(dir, { recursive: true, force: true });
});

test("no account: admin is made and its login written 0600; then nothing changes", async () => {
  const path = join(dir, "data", "admin-credentials.json");
  const [a, b] = await Promise.all([bootstrapFirstAdmin(db, path), bootstrapFirstAdmin(db, path)]);
  assert.equal([a, b].sort(), [false, true], "two instances at once: one admin");
  assert.is((await stat(path)).mode & 0o777, 0o600);
  const written = await readFile(path, "utf8");
  const credentials = JSON.parse(written) as { username: string; password: string };
  assert.equal(Object.keys(credentials), ["username", "password"]);
  const store = new OperatorStore({ db });
  const account = await store.get("admin");
  assert.equal([account?.role, account?.sites], ["admin", null]);
  assert.ok(await verifyPassword(account!.passwordHash, credentials.password), "the file's password is admin's");

  assert.is(await bootstrapFirstAdmin(db, path), false, "a second start keeps its admin");
  assert.is(await readFile(path, "utf8"), written, "and its file");
  assert.equal(await readdir(join(dir, "data")), ["admin-credentials.json"], "no temporary file left behind");
  assert.is(await store.count(), 1);
});

test.run();
