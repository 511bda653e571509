/**
 * The identity registry: scrypt hashes, the file schema with errors naming
 * the bad field, authentication of devices and services, and atomic
 * save/load with clear messages for a missing or broken file.
 */
import { mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { hashSecret, Registry, type RegistryFile, serviceUsername, verifySecret } from "../src/registry.ts";

let dir = "";
let file: RegistryFile;
const SECRET = { k1: "k1-secret", k2: "k2-secret", cloud: "cloud-secret" };

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), "paylane-registry-"));
  file = {
    version: 1,
    devices: [
      { site: "s1", device: "k1", secretHash: await hashSecret(SECRET.k1) },
      { site: "s1", device: "k2", secretHash: await hashSecret(SECRET.k2) },
    ],
    services: [{ id: "cloud", role: "bridge", secretHash: await hashSecret(SECRET.cloud) }],
  };
});

test.after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Parses and returns the error message, failing the test if parsing succeeds. */
function parseError(json: unknown, source?: string): string {
  try {
    Registry.parse(json, source);
  } catch (err) {
    return (err as Error).message;
  }
  assert.unreachable("Registry.parse should have refused the file");
  return "";
}

test("hashSecret makes a salted scrypt hash that verifySecret accepts only for the same secret", async () => {
  const a = await hashSecret("correct horse");
  const b = await hashSecret("correct horse");
  assert.match(a, /^scrypt\$16384\$8\$1\$[0-9a-f]{32}\$[0-9a-f]{64}$/);
  assert.is.not(a, b, "two hashes of one secret differ by their salt");
  assert.not.match(a, /correct horse/);
  assert.ok(await verifySecret("correct horse", a));
  assert.ok(await verifySecret("correct horse", b));
  assert.not.ok(await verifySecret("correct horsE", a));
  assert.not.ok(await verifySecret("", a));
});

test("verifySecret refuses a stored value that is not a hash", async () => {
  assert.not.ok(await verifySecret("x", ""));
  assert.not.ok(await verifySecret("x", "plain-text-password"));
  assert.not.ok(await verifySecret("x", "scrypt$16384$8$1$abcd"));
});

test("Registry.parse accepts a valid file and lists its devices", () => {
  const r = Registry.parse(JSON.parse(JSON.stringify(file)));
  assert.equal(r.devices, [
    { site: "s1", device: "k1" },
    { site: "s1", device: "k2" },
  ]);
  assert.ok(r.hasDevice({ site: "s1", device: "k1" }));
  assert.not.ok(r.hasDevice({ site: "s1", device: "k3" }));
  assert.not.ok(r.hasDevice({ site: "s2", device: "k1" }));
});

test("Registry.parse errors name the source and the bad field", () => {
  const hash = file.devices[0]!.secretHash;
  assert.match(parseError({ ...file, version: 2 }, "reg.json"), /^reg\.json: version: /);
  assert.match(parseError(null), /^registry: /);
  assert.match(parseError({ version: 1, devices: [] }), /services: /);
  assert.match(
    parseError({ ...file, devices: [file.devices[0], { site: "s1", device: "K2", secretHash: hash }] }),
    /devices\[1\]\.device: expected lower-case letters/,
  );
  assert.match(
    parseError({ ...file, devices: [{ site: "s/1", device: "k1", secretHash: hash }] }),
    /devices\[0\]\.site: /,
  );
  assert.match(
    parseError({ ...file, devices: [{ site: "cloud", device: "k1", secretHash: hash }] }),
    /devices\[0\]\.site: site id 'cloud' is reserved/,
  );
  assert.match(
    parseError({ ...file, devices: [{ site: "s1", device: "k1", secretHash: "hunter2" }] }),
    /devices\[0\]\.secretHash: expected an scrypt hash made by hashSecret\(\)/,
  );
  assert.match(
    parseError({ ...file, services: [{ id: "cloud", role: "admin", secretHash: hash }] }),
    /services\[0\]\.role: /,
  );
});

test("authenticate: the right secret gives the device identity, a wrong one or an unknown user gives null", async () => {
  const r = new Registry(file);
  assert.equal(await r.authenticate("s1/k1", SECRET.k1), { kind: "device", address: { site: "s1", device: "k1" } });
  assert.is(await r.authenticate("s1/k1", SECRET.k2), null, "another device's secret");
  assert.is(await r.authenticate("s1/k1", ""), null);
  assert.is(await r.authenticate("s1/k9", SECRET.k1), null, "unknown device");
  assert.is(await r.authenticate("k1", SECRET.k1), null);
  assert.is(await r.authenticate("cloud", SECRET.cloud), null, "a service id alone is not its username");
});

test("authenticate: a cached success does not let a different secret in afterwards", async () => {
  const r = new Registry(file);
  assert.ok(await r.authenticate("s1/k2", SECRET.k2));
  assert.ok(await r.authenticate("s1/k2", SECRET.k2), "second login with the same secret");
  assert.is(await r.authenticate("s1/k2", `${SECRET.k2}x`), null);
  assert.ok(await r.authenticate("s1/k2", SECRET.k2));
});

test("authenticate: services log in as svc:{id}", async () => {
  const r = new Registry(file);
  assert.is(serviceUsername("cloud"), "svc:cloud");
  assert.equal(await r.authenticate("svc:cloud", SECRET.cloud), { kind: "service", id: "cloud", role: "bridge" });
  assert.is(await r.authenticate("svc:cloud", SECRET.k1), null);
  assert.is(await r.authenticate("svc:other", SECRET.cloud), null);
});

test("save then load round-trips the registry, owner-only, leaving no temp file", async () => {
  const path = join(dir, "registry.json");
  await Registry.save(path, file);
  const loaded = await Registry.load(path);
  assert.equal(loaded.devices, new Registry(file).devices);
  assert.equal(await loaded.authenticate("s1/k2", SECRET.k2), {
    kind: "device",
    address: { site: "s1", device: "k2" },
  });
  assert.ok(await loaded.authenticate("svc:cloud", SECRET.cloud));
  assert.is((await stat(path)).mode & 0o777, 0o600);
  assert.equal(
    (await readdir(dir)).filter((f) => f.startsWith("registry.json")),
    ["registry.json"],
  );

  // Saving again replaces the file as a whole.
  await Registry.save(path, { ...file, devices: [file.devices[0]!] });
  const reloaded = await Registry.load(path);
  assert.equal(reloaded.devices, [{ site: "s1", device: "k1" }]);
});

test("load of a missing file names the path", async () => {
  const path = join(dir, "nope.json");
  try {
    await Registry.load(path);
    assert.unreachable("load should fail");
  } catch (err) {
    assert.match((err as Error).message, `cannot read device registry ${path}`);
  }
});

test("load of a file that is not JSON names the path", async () => {
  const path = join(dir, "broken.json");
  await writeFile(path, '{"version": 1, "devices": [');
  try {
    await Registry.load(path);
    assert.unreachable("load should fail");
  } catch (err) {
    assert.match((err as Error).message, `device registry ${path} is not valid JSON`);
  }
});

test("load of valid JSON with a bad field names the path and the field", async () => {
  const path = join(dir, "bad-field.json");
  await writeFile(path, JSON.stringify({ ...file, devices: [{ site: "s1", device: "k1", secretHash: "x" }] }));
  try {
    await Registry.load(path);
    assert.unreachable("load should fail");
  } catch (err) {
    assert.match((err as Error).message, `${path}: devices[0].secretHash: `);
  }
});

test.run();
