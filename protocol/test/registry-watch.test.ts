/**
 * `watchRegistry`: a rewrite of the file (temp file + rename, as
 * `Registry.save` does) is delivered once, debounced; a write of the same
 * content is not; a broken file is logged and skipped; `stop()` ends it.
 * Every wait is on an event (a call or a log line), never on the clock.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { hashSecret, Registry, type RegistryFile, watchRegistry } from "../src/registry.ts";

let dir = "";
let path = "";
let file: RegistryFile;

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), "paylane-registry-watch-"));
  path = join(dir, "registry.json");
  file = {
    version: 1,
    devices: [{ site: "s1", device: "k1", secretHash: await hashSecret("k1-secret") }],
    services: [],
  };
  await Registry.save(path, file);
});

test.after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Collects what the watch delivers and logs; `next(kind)` resolves at the next event of that kind. */
function recorder() {
  const events: { kind: "change" | "info" | "error"; value: unknown }[] = [];
  const waiting: { kind: string; resolve: (value: unknown) => void }[] = [];
  const push = (kind: "change" | "info" | "error", value: unknown) => {
    events.push({ kind, value });
    for (const w of waiting.filter((w) => w.kind === kind)) {
      waiting.splice(waiting.indexOf(w), 1);
      w.resolve(value);
    }
  };
  return {
    events,
    onChange: (registry: Registry) => push("change", registry),
    logger: {
      info: (obj: object, msg: string) => push("info", { ...obj, msg }),
      error: (obj: object, msg: string) => push("error", { ...obj, msg }),
    },
    next: (kind: string) => new Promise<unknown>((resolve) => waiting.push({ kind, resolve })),
  };
}

test("a rewrite is delivered as the new registry; the same content again is not; a broken file is skipped", async () => {
  const r = recorder();
  const stop = watchRegistry(path, r.onChange, r.logger, { debounceMs: 20 });
  try {
    const withK2: RegistryFile = {
      ...file,
      devices: [...file.devices, { site: "s1", device: "k2", secretHash: await hashSecret("k2-secret") }],
    };
    let changed = r.next("change");
    await Registry.save(path, withK2);
    const registry = (await changed) as Registry;
    assert.equal(
      registry.devices.map((d) => d.device),
      ["k1", "k2"],
    );
    assert.ok(await registry.authenticate("s1/k2", "k2-secret"));

    // The same bytes again: nothing is delivered. A broken file next: logged, not delivered.
    await Registry.save(path, withK2);
    const failed = r.next("error");
    await writeFile(path, "{ not json");
    const error = (await failed) as { msg: string; err: string };
    assert.match(error.msg, "does not load; keeping the previous version");
    assert.match(error.err, "not valid JSON");

    // Back to one device: delivered again.
    changed = r.next("change");
    await Registry.save(path, file);
    assert.equal(
      ((await changed) as Registry).devices.map((d) => d.device),
      ["k1"],
    );
    assert.is(r.events.filter((e) => e.kind === "change").length, 2, "the identical rewrite delivered nothing");
  } finally {
    stop();
  }
});

test("after stop(), changes are not delivered", async () => {
  const r = recorder();
  const stop = watchRegistry(path, r.onChange, r.logger, { debounceMs: 20 });
  stop();
  await Registry.save(path, { ...file, devices: [] });
  // A second watch proves the write's event has come and gone.
  const control = recorder();
  const stopControl = watchRegistry(path, control.onChange, control.logger, { debounceMs: 20 });
  const seen = control.next("change");
  await Registry.save(path, file);
  await seen;
  stopControl();
  assert.is(r.events.length, 0);
});

test("adoptVerified keeps verified secrets only for identities whose hash is unchanged", async () => {
  const hash2 = await hashSecret("k2-secret");
  const before = new Registry({
    ...file,
    devices: [...file.devices, { site: "s1", device: "k2", secretHash: hash2 }],
  });
  assert.ok(await before.authenticate("s1/k1", "k1-secret"));
  assert.ok(await before.authenticate("s1/k2", "k2-secret"));
  const rotated = await hashSecret("k1-rotated");
  const after = new Registry({
    ...file,
    devices: [
      { site: "s1", device: "k1", secretHash: rotated },
      { site: "s1", device: "k2", secretHash: hash2 },
    ],
  });
  after.adoptVerified(before);
  let slowChecks = 0;
  const counting = (verify: () => Promise<boolean>) => {
    slowChecks++;
    return verify();
  };
  // k2: verified before, same hash: no scrypt. k1: rotated, the old secret fails its check.
  assert.ok(await after.authenticate("s1/k2", "k2-secret", counting));
  assert.is(slowChecks, 0);
  assert.is(await after.authenticate("s1/k1", "k1-secret", counting), null);
  assert.is(slowChecks, 1);
  assert.is(after.secretHashOf("s1/k1"), rotated);
  assert.is(after.secretHashOf("s1/nobody"), undefined);
});

test("SIGHUP reloads the file (and does not end the process, Node's default)", async () => {
  const r = recorder();
  const stop = watchRegistry(path, r.onChange, r.logger, { debounceMs: 20 });
  try {
    const changed = r.next("change");
    // the signal arrives asynchronously and the watch holds no handle open: keep the loop alive until it does
    const deadline = setTimeout(() => assert.unreachable("no reload within 5 s of SIGHUP"), 5000);
    process.kill(process.pid, "SIGHUP");
    const registry = (await changed) as Registry;
    clearTimeout(deadline);
    assert.equal(registry.devices, [{ site: "s1", device: "k1" }]);
  } finally {
    stop();
  }
  assert.is(process.listenerCount("SIGHUP"), 0, "stop() removes its SIGHUP listener");
});

test.run();
