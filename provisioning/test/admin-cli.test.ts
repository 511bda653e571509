/**
 * `paylane-provision claim …` and `device …` as an installer runs them: the
 * real binary in a child process against a real cloud (Postgres) and
 * gateway. A claim code is shown once — text, terminal QR, a 0600 PNG — and
 * never again; a viewer's token cannot create one; a kiosk enrolled with it is
 * listed with its key, and revoking it shows.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { parseClaimCode, publicKeyFingerprint } from "@paylane/protocol";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { EnrolmentHarness, enrolRequest, newKiosk } from "../../cloud/test/enrolment-harness.ts";

const run = promisify(execFile);
const MAIN = join(import.meta.dirname, "../src/main.ts");
const h = new EnrolmentHarness();
let dir = "";

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function provision(args: string[], token?: string): Promise<Result> {
  try {
    const { stdout, stderr } = await run(process.execPath, ["--import", "tsx", MAIN, ...args], {
      env: {
        ...process.env,
        PAYLANE_CLOUD_URL: h.cloud.url,
        PAYLANE_TOKEN: token ?? "",
        PAYLANE_DATA: dir,
        NO_COLOR: "1",
      },
      cwd: join(import.meta.dirname, "../.."),
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), "paylane-provision-cli-"));
  await h.start();
});
test.after(async () => {
  await h.stop();
  await rm(dir, { recursive: true, force: true });
});

test("claim create prints a valid code once, with a terminal QR and a 0600 PNG; claim list never shows it", async () => {
  const admin = await h.token("admin");
  const made = await provision(["claim", "create", "--site", h.site, "--ttl", "2h", "--qr-dir", dir], admin);
  assert.is(made.code, 0, made.stderr);
  const code = /\b(\d{5}-\d{5}-\d{5}-\d{5})\b/.exec(made.stdout)?.[1];
  assert.ok(code, made.stdout);
  assert.ok(parseClaimCode(code).ok, "the printed code passes its own check digit");
  assert.match(made.stdout, /[▀▄█]/, "a QR code drawn on the terminal");
  const png = /QR code written to (\S+\.png)/.exec(made.stdout)?.[1];
  assert.ok(png, made.stdout);
  const bytes = await readFile(png);
  assert.equal([...bytes.subarray(1, 4)], [...Buffer.from("PNG")]);
  assert.is((await stat(png)).mode & 0o777, 0o600, "the PNG is a credential: owner-only");

  const listed = await provision(["claim", "list", "--site", h.site], admin);
  assert.is(listed.code, 0, listed.stderr);
  assert.match(listed.stdout, /unused/);
  assert.not.ok(listed.stdout.includes(code) || listed.stdout.includes(code.replace(/-/g, "")), "never shown again");
});

test("claim create --json --count 3 gives three different codes for scripts", async () => {
  const made = await provision(["claim", "create", "--site", h.site, "--count", "3", "--json"], await h.token("admin"));
  assert.is(made.code, 0, made.stderr);
  const out = JSON.parse(made.stdout) as { claims: Array<{ code: string }> };
  assert.is(new Set(out.claims.map((c) => c.code)).size, 3);
});

test("a viewer's token, a bad flag and a missing token are each refused in one line", async () => {
  const viewer = await provision(["claim", "create", "--site", h.site, "--no-qr"], await h.token("viewer"));
  assert.is(viewer.code, 1);
  assert.match(
    viewer.stderr,
    /^paylane-provision: the cloud refused \(403 Forbidden\): this needs admin, which the admin roles have/,
  );
  assert.is(viewer.stderr.trim().split("\n").length, 1);

  const ttl = await provision(["claim", "create", "--site", h.site, "--ttl", "forever"], await h.token("admin"));
  assert.is(ttl.code, 2);
  assert.match(ttl.stderr, /--ttl.*expected a duration like 30m, 24h or 7d/);

  // A QR folder that is not there is refused before any code exists (one the cloud made but nobody saw).
  const before = (await provision(["claim", "list", "--site", h.site, "--json"], await h.token("admin"))).stdout;
  const noDir = await provision(
    ["claim", "create", "--site", h.site, "--qr-dir", join(dir, "nope")],
    await h.token("admin"),
  );
  assert.is(noDir.code, 2);
  assert.match(noDir.stderr, /--qr-dir .*nope: no such folder; nothing was created/);
  const after = (await provision(["claim", "list", "--site", h.site, "--json"], await h.token("admin"))).stdout;
  assert.is(JSON.parse(after).items.length, JSON.parse(before).items.length);

  const none = await provision(["claim", "create", "--site", h.site]);
  assert.is(none.code, 2);
  assert.match(none.stderr, /no operator token: .*operator-token cannot be read; pass --token-file/);
});

test("device list shows an enrolled kiosk with its key; device revoke takes it off the broker", async () => {
  const [claim] = await h.claims(1);
  const kiosk = await newKiosk(h.site, "kiosk-cli");
  const enrolled = await h.request("POST", "/api/v1/enrol", { body: enrolRequest(kiosk, claim!.code, h.now()) });
  assert.is(enrolled.status, 201, JSON.stringify(enrolled.body));
  const admin = await h.token("admin");

  const listed = await provision(["device", "list", "--site", h.site], admin);
  assert.is(listed.code, 0, listed.stderr);
  const row = listed.stdout.split("\n").find((l) => l.startsWith(`${h.site}/kiosk-cli`));
  assert.ok(row, listed.stdout);
  assert.ok(row.includes(publicKeyFingerprint(kiosk.publicKey)), row);

  const session = await h.mqttWithin(h.site, "kiosk-cli", kiosk.secret);
  const closed = new Promise<void>((resolve) => session.once("close", () => resolve()));
  const revoked = await provision(["device", "revoke", `${h.site}/kiosk-cli`], admin);
  assert.is(revoked.code, 0, revoked.stderr);
  assert.match(revoked.stdout, /revoked .*kiosk-cli/);
  await closed;
  assert.ok(await h.refuses(h.site, "kiosk-cli", kiosk.secret), "its credentials no longer work");

  const after = await provision(["device", "list", "--site", h.site, "--json"], admin);
  const item = (
    JSON.parse(after.stdout) as { items: Array<{ device: string; enrolment: { revokedAt: string } }> }
  ).items.find((d) => d.device === "kiosk-cli");
  assert.ok(item?.enrolment.revokedAt);

  const bad = await provision(["device", "revoke", "kiosk-cli"], admin);
  assert.is(bad.code, 2);
  assert.match(bad.stderr, /expected a kiosk as site\/device/);
});

test.run();
