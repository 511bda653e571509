/**
 * Every `paylane-provision` sub-command explains itself with `--help` (exit 0,
 * usage on stdout, nothing on stderr), run through the installed bin from a
 * folder outside the repository — where an installer runs it.
 */
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { test } from "uvu";
import * as assert from "uvu/assert";

const run = promisify(execFile);
const root = join(import.meta.dirname, "..", "..");
const BIN = join(root, "provisioning", "bin", "paylane-provision.mjs");
const SUBCOMMANDS = [
  ["image", "build"],
  ["flash"],
  ["claim", "create"],
  ["claim", "list"],
  ["enrol"],
  ["device", "list"],
  ["device", "revoke"],
  ["device", "rotate"],
];

test("the bin runs from any folder: --version is the package's", async () => {
  const { version } = JSON.parse(await readFile(join(root, "provisioning", "package.json"), "utf8")) as {
    version: string;
  };
  const r = await run(BIN, ["--version"], { cwd: tmpdir() });
  assert.is(r.stdout, `${version}\n`);
});

test("--help of the tool lists every sub-command", async () => {
  const r = await run(BIN, ["--help"], { cwd: tmpdir() });
  assert.is(r.stderr, "");
  for (const name of ["image", "flash", "claim", "enrol", "device"])
    assert.match(r.stdout, new RegExp(`\\n  ${name}\\b`));
  assert.match(r.stdout, /Examples:/);
});

test("each sub-command has its own --help", async () => {
  const answers = await Promise.all(SUBCOMMANDS.map((args) => run(BIN, [...args, "--help"], { cwd: tmpdir() })));
  answers.forEach((r, i) => {
    const name = SUBCOMMANDS[i]!.join(" ");
    assert.is(r.stderr, "", name);
    assert.match(r.stdout, new RegExp(`^Usage: paylane-provision ${name} `), name);
  });
});

test.run();
