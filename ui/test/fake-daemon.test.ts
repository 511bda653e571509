/**
 * The UI tests' fake daemon keeps to the contract: what a test scripts it to
 * push or answer, and what a UI sends it, is checked against
 * @paylane/protocol/kiosk-api, so a browser test cannot pass against a
 * daemon that does not exist.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { FakeDaemon } from "./fake-daemon.ts";

interface Ctx {
  dir: string;
  daemon: FakeDaemon;
  base: string;
}

const test = suite<Ctx>("fake daemon");

test.before(async (ctx) => {
  ctx.dir = await mkdtemp(join(tmpdir(), "paylane-fake-daemon-"));
  await writeFile(join(ctx.dir, "index.html"), "<html><head></head></html>");
  ctx.daemon = new FakeDaemon(ctx.dir);
  ctx.base = await ctx.daemon.start();
});
test.after(async (ctx) => {
  await ctx.daemon?.stop();
  await rm(ctx.dir, { recursive: true, force: true });
});
test.before.each((ctx) => ctx.daemon.reset());

function post(ctx: Ctx, path: string, body: string): Promise<Response> {
  return fetch(new URL(path, ctx.base), {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${ctx.daemon.token}` },
    body,
  });
}

test("a push the contract does not allow throws in the test that scripted it", (ctx) => {
  assert.throws(() => ctx.daemon.setState({ backlog: "3" as unknown as number }), /off-contract push .*backlog/);
  assert.throws(
    () => ctx.daemon.pushReceipt({ id: "r", printed: false, reason: "paper-out", qr: "https://evil.test/qr.svg" }),
    /off-contract push/,
  );
});

test("an answer the contract does not allow is a 500, noted in offContract", async (ctx) => {
  ctx.daemon.onTap = () => ({ status: 200, body: { outcome: "maybe", message: "?", at: "t" } as never });
  const res = await post(ctx, "/api/sim/tap", JSON.stringify({ uid: "04A2B3C4" }));
  assert.is(res.status, 500);
  assert.is(ctx.daemon.offContract.length, 1);
  assert.match(ctx.daemon.offContract[0]!, /^\/api\/sim\/tap: 200 .*outcome/);
});

test("a body the contract refuses is answered 400 as the daemon does, before the test's handler", async (ctx) => {
  let called = false;
  ctx.daemon.onTap = () => {
    called = true;
    return { status: 200, body: { outcome: "welcome", message: "Welcome", at: "t" } };
  };
  const res = await post(ctx, "/api/code", JSON.stringify({ code: "!" }));
  assert.is(res.status, 400);
  assert.equal(await res.json(), {
    type: "about:blank",
    title: "Invalid booking code",
    status: 400,
    detail: "code: expected 4 to 16 letters or digits, e.g. ADA1",
  });
  assert.is((await post(ctx, "/api/payments", "{not json")).status, 400);
  assert.not.ok(called);
  assert.equal(ctx.daemon.offContract, []);
});

test.run();
