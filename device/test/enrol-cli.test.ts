/**
 * `paylane-provision enrol` as an installer runs it, against the fake cloud:
 * steps and result on stdout, exit 0 once enrolled, exit 1 with the reason
 * and the fix for a used code, and neither the
 * code nor the secret in anything it prints.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { newClaimCode } from "@paylane/protocol";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { FakeCloud } from "./enrol-fake-cloud.ts";

const it = suite("paylane-provision enrol");
const ROOT = join(import.meta.dirname, "..", "..");
const CODE = newClaimCode();
let cloud: FakeCloud;
let dir: string;

it.before(async () => {
  cloud = new FakeCloud();
  await cloud.start();
  cloud.claims.set(CODE.replaceAll("-", ""), "demo");
  dir = await mkdtemp(join(tmpdir(), "paylane-enrol-cli-"));
});
it.after(async () => {
  await cloud?.stop();
  await rm(dir, { recursive: true, force: true });
});

function provision(args: string[], input = ""): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      ["--import", "tsx", join(ROOT, "provisioning/src/main.ts"), ...args],
      { cwd: ROOT, env: { ...process.env, NO_COLOR: "1" } },
      (err, out, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, out, err: stderr }),
    );
    child.stdin?.end(input);
  });
}

async function kioskJson(name: string, extra: Record<string, unknown> = {}): Promise<string> {
  const path = join(dir, `${name}.json`);
  await writeFile(
    path,
    JSON.stringify({
      site: "demo",
      mqttUrl: "mqtt://127.0.0.1:1883",
      cloudUrl: cloud.url,
      dataDir: join(dir, name),
      reader: { type: "pn532-simulator" },
      ...extra,
    }),
  );
  return path;
}

it("enrols with the code in kiosk.json, printing each step", async () => {
  const path = await kioskJson("first", { claim: CODE });
  const run = await provision(["enrol", "--config", path]);
  assert.is(run.code, 0, run.err);
  assert.match(run.out, /^key +kiosk-[0-9a-f]{8}, fingerprint [0-9a-f]{16}/m);
  assert.match(run.out, /^request +asking http:\/\/127\.0\.0\.1:\d+ to enrol demo\/kiosk-/m);
  assert.match(run.out, /^done +demo\/kiosk-[0-9a-f]{8} enrolled at /m);
  const file = JSON.parse(await readFile(path, "utf8"));
  assert.ok(file.secret);
  assert.is(file.claim, undefined);
  const digits = CODE.replaceAll("-", "");
  for (const text of [run.out, run.err]) {
    assert.not.ok(text.includes(digits) || text.includes(CODE), "the code was printed");
    assert.not.ok(text.includes(file.secret), "the secret was printed");
  }
});

it("a used code (--claim -, read from standard input) exits 1 with the reason and what to do, in one line", async () => {
  const path = await kioskJson("second");
  const run = await provision(["enrol", "--config", path, "--claim", "-"], `${CODE}\n`);
  assert.is(run.code, 1);
  assert.match(
    run.err,
    /^paylane-provision: enrolment failed \(claim-used\): this claim code has already enrolled a kiosk; each code works once; create a new one\n$/m,
  );
  assert.not.ok(run.err.includes(CODE.replaceAll("-", "")));
});

it("without a code anywhere: a usage error (2) that says where to put one", async () => {
  const run = await provision(["enrol", "--config", await kioskJson("third")]);
  assert.is(run.code, 2);
  assert.match(run.err, /no claim code: pass --claim, or set claim in kiosk\.json/);
});

it("--again: an enrolled (then revoked) kiosk enrols anew with a new code, keeping its key and id", async () => {
  const path = await kioskJson("again");
  const first = JSON.parse(await readFile(path, "utf8"));
  // Enrolled once already, by the first test's code: here a file that holds a secret, as a revoked kiosk's does.
  await writeFile(
    path,
    JSON.stringify({ ...first, claim: undefined, device: "kiosk-again", secret: "old-secret-0123456789" }),
  );
  const without = await provision(["enrol", "--config", path, "--claim", "-"], `${CODE}\n`);
  assert.is(without.code, 0);
  assert.match(without.out, /already: demo\/kiosk-again .*--again with a new claim code/);

  const fresh = newClaimCode();
  cloud.claims.set(fresh.replaceAll("-", ""), "demo");
  const again = await provision(["enrol", "--config", path, "--again", "--claim", "-"], `${fresh}\n`);
  assert.is(again.code, 0, again.err);
  assert.match(again.out, /^again +demo\/kiosk-again: the old secret is dropped/m);
  assert.match(again.out, /^done +demo\/kiosk-again enrolled at /m);
  const file = JSON.parse(await readFile(path, "utf8"));
  assert.ok(file.secret && file.secret !== "old-secret-0123456789", "a new secret");
  assert.is(file.device, "kiosk-again");
  assert.is(cloud.enrolRequests.at(-1)?.device, "kiosk-again");
});

it.run();
