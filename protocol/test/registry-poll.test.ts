/**
 * `watchRegistry`'s poll (`pollMs`): a file watch sees only what this
 * machine's kernel writes, so on a network file system another node's write
 * never reaches it; the poll does. The test makes a write the watch cannot
 * see, for real: the registry path is a symlink into a second directory (the
 * "share"), and the other node writes there. The watch is on the symlink's
 * directory, so it hears nothing (a watch on the share proves the write has
 * been reported by then). Time is a fake clock: the poll and the debounce
 * run when the test advances it.
 */
import { type FSWatcher, watch } from "node:fs";
import { mkdir, mkdtemp, rm, symlink, unlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { FakeTimers } from "../../test/support/fake-timers.ts";
import { Signal } from "../../test/support/signal.ts";
import { hashSecret, Registry, type RegistryFile, watchRegistry } from "../src/registry.ts";
import type { Timers } from "../src/timers.ts";

const POLL_MS = 5000;
const DEBOUNCE_MS = 20;
/** A safety net for a wait that should end at once; never reached by a passing test. */
const DEADLINE_MS = 5000;

let root = "";
let file: RegistryFile;

test.before(async () => {
  root = await mkdtemp(join(tmpdir(), "paylane-registry-poll-"));
  file = {
    version: 1,
    devices: [{ site: "s1", device: "k1", secretHash: await hashSecret("k1-secret") }],
    services: [],
  };
});

test.after(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A watched directory whose registry.json is a symlink to share/registry.json, which the other node writes. */
async function layout(name: string) {
  const watched = join(root, name, "watched");
  const share = join(root, name, "share");
  await mkdir(watched, { recursive: true });
  await mkdir(share, { recursive: true });
  const shared = join(share, "registry.json");
  await Registry.save(shared, file);
  const path = join(watched, "registry.json");
  await symlink(shared, path);
  return { path, share, shared };
}

/** A fake clock that notes the delay of every timer set, and what the watch delivers and logs. */
function harness() {
  const clock = new FakeTimers();
  const signal = new Signal();
  const delays: number[] = [];
  const timers: Timers = {
    setTimeout: (fn, ms) => {
      const handle = clock.setTimeout(fn, ms);
      delays.push(ms);
      signal.notify();
      return handle;
    },
    clearTimeout: (handle) => clock.clearTimeout(handle),
  };
  const changes: Registry[] = [];
  const errors: { msg: string; err: string }[] = [];
  const logger = {
    info: () => signal.notify(),
    error: (obj: object, msg: string) => {
      errors.push({ ...(obj as { err: string }), msg });
      signal.notify();
    },
  };
  const onChange = (registry: Registry) => {
    changes.push(registry);
    signal.notify();
  };
  const count = (ms: number) => delays.filter((d) => d === ms).length;
  return {
    clock,
    signal,
    timers,
    changes,
    errors,
    logger,
    onChange,
    /** How many reads were scheduled (each debounce is one). */
    reads: () => count(DEBOUNCE_MS),
    /** How many polls were scheduled (the first at start, then one after each poll). */
    polls: () => count(POLL_MS),
    until: (check: () => boolean, what: string) => signal.until(check, what, DEADLINE_MS),
  };
}

/** Resolves once a watch on `dir` reports `name`: by then the kernel has reported that write to every watch. */
function reported(dir: string, name: string): { seen: Promise<void>; close: () => void } {
  let watcher: FSWatcher | undefined;
  const seen = new Promise<void>((resolve) => {
    watcher = watch(dir, (_event, filename) => {
      if (filename === name) resolve();
    });
  });
  return { seen, close: () => watcher?.close() };
}

test("another node's write, which the watch does not see, is loaded at the next poll", async () => {
  const { path, share, shared } = await layout("unseen-write");
  const h = harness();
  const stop = watchRegistry(path, h.onChange, h.logger, {
    debounceMs: DEBOUNCE_MS,
    pollMs: POLL_MS,
    timers: h.timers,
  });
  try {
    const withK2: RegistryFile = {
      ...file,
      devices: [...file.devices, { site: "s1", device: "k2", secretHash: await hashSecret("k2-secret") }],
    };
    const control = reported(share, "registry.json");
    await Registry.save(shared, withK2);
    await control.seen;
    control.close();
    assert.is(h.reads(), 0, "the directory watch did not hear the other node's write");

    h.clock.advance(POLL_MS);
    await h.until(() => h.reads() === 1, "the poll saw the file change and scheduled a read");
    h.clock.advance(DEBOUNCE_MS);
    await h.until(() => h.changes.length === 1, "the new registry was delivered");
    const registry = h.changes[0] as Registry;
    assert.equal(
      registry.devices.map((d) => d.device),
      ["k1", "k2"],
    );
    assert.ok(await registry.authenticate("s1/k2", "k2-secret"), "the kiosk enrolled on the other node can connect");
  } finally {
    stop();
  }
  assert.is(h.clock.pending, 0, "stop() ends the poll");
});

test("an unchanged file is not read again, and polling goes on", async () => {
  const { path, shared } = await layout("unchanged");
  const h = harness();
  const stop = watchRegistry(path, h.onChange, h.logger, {
    debounceMs: DEBOUNCE_MS,
    pollMs: POLL_MS,
    timers: h.timers,
  });
  try {
    for (let poll = 2; poll <= 4; poll++) {
      h.clock.advance(POLL_MS);
      await h.until(() => h.polls() === poll, `poll ${poll} was scheduled after the one before`);
    }
    assert.is(h.reads(), 0, "three polls of an unchanged file read nothing");
    assert.is(h.changes.length, 0);

    // Still polling: a change after those is loaded.
    await Registry.save(shared, { ...file, devices: [] });
    h.clock.advance(POLL_MS);
    await h.until(() => h.reads() === 1, "the fourth poll saw the change");
    h.clock.advance(DEBOUNCE_MS);
    await h.until(() => h.changes.length === 1, "the new registry was delivered");
    assert.equal(h.changes[0]?.devices, []);
  } finally {
    stop();
  }
});

test("a registry that goes missing is logged once, the last version stays, and its return is loaded", async () => {
  const { path, shared } = await layout("missing");
  const h = harness();
  const stop = watchRegistry(path, h.onChange, h.logger, {
    debounceMs: DEBOUNCE_MS,
    pollMs: POLL_MS,
    timers: h.timers,
  });
  try {
    await unlink(shared);
    h.clock.advance(POLL_MS);
    await h.until(() => h.reads() === 1, "the poll saw the file go");
    h.clock.advance(DEBOUNCE_MS);
    await h.until(() => h.errors.length === 1, "the missing file was logged");
    assert.match(h.errors[0]?.msg ?? "", "does not load; keeping the previous version");
    assert.match(h.errors[0]?.err ?? "", "ENOENT");

    const before = h.polls();
    h.clock.advance(POLL_MS);
    await h.until(() => h.polls() === before + 1, "the next poll ran");
    assert.is(h.reads(), 1, "a file that stays missing is not read (nor logged) at every poll");
    assert.is(h.errors.length, 1);

    await Registry.save(shared, file);
    h.clock.advance(POLL_MS);
    await h.until(() => h.reads() === 2, "the poll saw the file come back");
    h.clock.advance(DEBOUNCE_MS);
    await h.until(() => h.changes.length === 1, "the registry was delivered again");
    assert.equal(h.changes[0]?.devices, [{ site: "s1", device: "k1" }]);
  } finally {
    stop();
  }
});

test("without pollMs nothing polls", async () => {
  const { path } = await layout("no-poll");
  const h = harness();
  const stop = watchRegistry(path, h.onChange, h.logger, { debounceMs: DEBOUNCE_MS, timers: h.timers });
  try {
    assert.is(h.clock.pending, 0, "no timer is set until a change is heard");
    assert.is(h.polls(), 0);
  } finally {
    stop();
  }
});

test.run();
