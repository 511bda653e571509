/** What paylane-ops checks before it connects: command arguments, settings, kiosk addresses. */
import { ConfigError } from "@paylane/protocol/service";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { parseKiosk } from "../src/arguments.ts";
import { parseSettings } from "../src/config.ts";
import { buildCommand } from "../src/send.ts";

const refusal = (f: () => unknown): string => {
  try {
    f();
  } catch (err) {
    assert.instance(err, ConfigError);
    return (err as Error).message;
  }
  assert.unreachable("expected a ConfigError");
  return "";
};

test("a command gets a fresh id, checked arguments (JSON values) and an expiry", () => {
  const now = new Date("2026-12-05T07:00:00Z");
  const a = buildCommand("unlock", ["seconds=10"], 60, "alice", now);
  const b = buildCommand("unlock", [], 60, undefined, now);
  assert.equal(a.args, { seconds: 10 });
  assert.equal(b.args, { seconds: 5 }, "the protocol's default");
  assert.is(a.expiresAt, "2026-12-05T07:01:00.000Z");
  assert.is(a.by, "alice");
  assert.is.not(a.id, b.id);
  assert.equal(buildCommand("set-mode", ["mode=maintenance"], 60).args, { mode: "maintenance" });
});

test("a bad command or argument is named", () => {
  assert.match(
    refusal(() => buildCommand("explode", [], 60)),
    /unknown command "explode"; known: reboot, /,
  );
  assert.match(
    refusal(() => buildCommand("unlock", ["seconds=0"], 60)),
    /^--arg seconds: /,
  );
  assert.match(
    refusal(() => buildCommand("reboot", ["now=true"], 60)),
    /^--arg now: not an argument of reboot/,
  );
  assert.match(
    refusal(() => buildCommand("replay-from", [], 60)),
    /^--arg from: /,
  );
  assert.match(
    refusal(() => buildCommand("unlock", ["seconds"], 60)),
    /^--arg: expected key=value/,
  );
});

test("settings are checked one by one; a dotted key sets one field and keeps the others", () => {
  assert.equal(parseSettings(["mode=maintenance", "idleTimeoutSeconds=30"]), {
    mode: "maintenance",
    idleTimeoutSeconds: 30,
  });
  const base = { screenTexts: { welcome: "Hello", maintenance: "Later" } };
  assert.equal(parseSettings(["screenTexts.welcome=Good morning"], base), {
    screenTexts: { welcome: "Good morning", maintenance: "Later" },
  });
  assert.equal(parseSettings(['offlineCaps={"perCardMinor":500}']), { offlineCaps: { perCardMinor: 500 } });
  assert.match(
    refusal(() => parseSettings(["idleTimeout=30"])),
    /^idleTimeout: unknown setting; known: /,
  );
  assert.match(
    refusal(() => parseSettings(["logLevel=loud"])),
    /^logLevel: /,
  );
  assert.match(
    refusal(() => parseSettings(["screenTexts.title=x"])),
    /^screenTexts\.title: /,
  );
  assert.match(
    refusal(() => parseSettings([])),
    /name at least one setting/,
  );
});

test("a kiosk is site/device", () => {
  assert.equal(parseKiosk("demo/k1"), { site: "demo", device: "k1" });
  assert.match(
    refusal(() => parseKiosk("k1")),
    /expected site\/device/,
  );
  assert.match(
    refusal(() => parseKiosk("cloud/k1")),
    /expected site\/device/,
  );
});

test.run();
