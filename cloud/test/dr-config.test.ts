/**
 * paylane-dr's configuration without a cluster: the pgbackrest.conf an S3
 * repository gives (documented, not run here: no network), the passphrase
 * rules, and the restore point's bad forms, each one clear line.
 */
import { randomBytes } from "node:crypto";
import { chmod, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { parsePoint, restore } from "../src/dr/backup.ts";
import { parseConfig, readCipherPass } from "../src/dr/config.ts";
import { looksLikeWrongPassphrase, renderConf } from "../src/dr/pgbackrest.ts";

async function rejects(fn: () => Promise<unknown>, pattern: RegExp): Promise<void> {
  const outcome = await fn().then(
    () => undefined,
    (err: Error) => err,
  );
  assert.ok(outcome, `expected a rejection matching ${pattern}`);
  assert.match(outcome!.message, pattern);
}

const base = {
  databaseUrl: "postgres://postgres@127.0.0.1:5432/paylane",
  dataDir: "/var/lib/postgresql/15/main",
  repo: { type: "posix", path: "/mnt/region-b" },
  stateDir: "/var/lib/paylane-dr",
};

test("an S3 repository: repo1-type=s3 with bucket, endpoint and region; the key stays out of the file", () => {
  const c = parseConfig({
    ...base,
    repo: { type: "s3", bucket: "paylane-dr", endpoint: "s3.eu-central-1.amazonaws.com", region: "eu-central-1" },
  });
  const conf = renderConf(c, "p".repeat(40));
  for (const line of [
    "repo1-type=s3",
    "repo1-path=/paylane",
    "repo1-s3-bucket=paylane-dr",
    "repo1-s3-endpoint=s3.eu-central-1.amazonaws.com",
    "repo1-s3-region=eu-central-1",
    "repo1-cipher-type=aes-256-cbc",
    "repo1-retention-full=2",
    "repo1-retention-diff=6",
    "[paylane]",
    "pg1-path=/var/lib/postgresql/15/main",
    "pg1-port=5432",
  ])
    assert.ok(conf.split("\n").includes(line), `${line} in\n${conf}`);
  assert.not.match(conf, /s3-key/);
});

test("a misspelled key, a wrong repository type and a bad stanza are named", () => {
  assert.throws(() => parseConfig({ ...base, retension: {} }), /unknown key "retension"/);
  assert.throws(() => parseConfig({ ...base, repo: { type: "ftp", path: "/x" } }), /repo/);
  assert.throws(() => parseConfig({ ...base, stanza: "Pay Lane" }), /stanza: expected lower-case/);
  assert.throws(
    () => parseConfig({ ...base, databaseUrl: "postgres://postgres@db1:5432,db2:5432/paylane" }),
    /databaseUrl: one host, the cluster whose dataDir this is \(not the cloud's multi-host URL: db1:5432, db2:5432\)/,
  );
  assert.is(
    parseConfig({ ...base, databaseUrl: "postgres:///paylane?host=/var/run/postgresql" }).databaseUrl.length > 0,
    true,
  );
});

test("the passphrase: a file others can read is refused, so is a short one; the environment wins", async () => {
  const dir = await mkdtemp(join(tmpdir(), "paylane-dr-config-"));
  try {
    const file = join(dir, "pass");
    const c = parseConfig({ ...base, cipherPassFile: file });
    await writeFile(file, `${randomBytes(30).toString("base64")}\n`, { mode: 0o644 });
    await chmod(file, 0o644);
    await rejects(() => readCipherPass(c, {}), /mode 644 lets others read the passphrase; chmod 600 it/);
    await chmod(file, 0o600);
    assert.is((await readCipherPass(c, {})).length, 40);
    await writeFile(file, "short\n");
    await rejects(() => readCipherPass(c, {}), /shorter than 20 characters/);
    assert.is(await readCipherPass(c, { PAYLANE_DR_CIPHER_PASS: "e".repeat(24) }), "e".repeat(24));
    await rejects(
      () => readCipherPass(parseConfig(base), {}),
      /cipherPassFile: set it in the config \(a 0600 file\) or set PAYLANE_DR_CIPHER_PASS/,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("the restore point: latest, an ISO time with its zone; no zone, nonsense or the future are refused", () => {
  const now = new Date("2026-12-05T19:00:00Z");
  assert.is(parsePoint("latest", now), null);
  assert.equal(parsePoint("2026-12-05T18:30:00Z", now), new Date("2026-12-05T18:30:00Z"));
  assert.equal(parsePoint("2026-12-05T19:30:00+01:00", now), new Date("2026-12-05T18:30:00Z"));
  assert.throws(() => parsePoint("2026-12-05T18:30:00", now), /with its zone/);
  assert.throws(() => parsePoint("yesterday", now), /expected latest or an ISO time/);
  assert.throws(() => parsePoint("2026-12-05T19:00:01Z", now), /in the future/);
});

// pgBackRest 2.45's own lines (P00 prefixes as it prints them), from runs on this machine.
const BEGIN =
  "2026-12-05 19:30:01.100 P00   INFO: backup command begin 2.45: --config=/tmp/dr/state/pgbackrest.conf --exec-id=1-a --log-level-console=detail --repo1-cipher-pass=<redacted> --repo1-cipher-type=aes-256-cbc --repo1-path=/tmp/dr/region-b --stanza=paylane --type=incr";

test("a wrong passphrase is told from other pgBackRest failures, whatever the command begin line lists", () => {
  const stopped = `${BEGIN}\n2026-12-05 19:30:01.200 P00  ERROR: [056]: unable to find primary cluster - cannot proceed`;
  assert.is(looksLikeWrongPassphrase(stopped), false, "a stopped cluster is not a passphrase problem");
  const noStanza = `${BEGIN}\nERROR: [055]: unable to load info file '/r/backup/paylane/backup.info' or '/r/backup/paylane/backup.info.copy':\n       FileMissingError: unable to open missing file '/r/backup/paylane/backup.info' for read`;
  assert.is(looksLikeWrongPassphrase(noStanza), false, "a missing stanza is not a passphrase problem");
  const wrong = `${BEGIN}\nERROR: [029]: unable to load info file '/r/backup/paylane/backup.info' or '/r/backup/paylane/backup.info.copy':\n       FormatError: key/value found outside of section at line 1: \u0001\u00ff`;
  assert.is(looksLikeWrongPassphrase(wrong), true);
  assert.is(looksLikeWrongPassphrase("ERROR: [095]: CryptoError: unable to flush"), true);
});

test("restore refuses a port already in use before restoring anything (the target stays missing)", async () => {
  const dir = await mkdtemp(join(tmpdir(), "paylane-dr-config-"));
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  try {
    const port = (server.address() as { port: number }).port;
    const target = join(dir, "restored", "data");
    await writeFile(join(dir, "pass"), "q".repeat(40), { mode: 0o600 });
    await rejects(
      () =>
        restore(parseConfig({ ...base, stateDir: join(dir, "state"), cipherPassFile: "pass" }, dir), {
          to: "latest",
          target,
          port,
          say: () => {},
        }),
      new RegExp(`^--port ${port}: already in use on 127\\.0\\.0\\.1; give a free port`),
    );
    await rejects(() => readdir(join(dir, "restored")), /ENOENT/);
    // a relative --target is made absolute (pgBackRest refuses a relative pg1-path once the restore is under way)
    await rejects(
      () =>
        restore(parseConfig({ ...base, stateDir: join(dir, "state"), cipherPassFile: "pass" }, dir), {
          to: "latest",
          target: relative(process.cwd(), dir),
          port,
          say: () => {},
        }),
      new RegExp(`^--target ${dir}: not empty`),
    );
  } finally {
    await new Promise((done) => server.close(done));
    await rm(dir, { recursive: true, force: true });
  }
});

test.run();
