import { mkdir, mkdtemp, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deviceIdentity, hashSecret, Registry, type RegistryFile } from "@paylane/protocol";
import { ConfigError } from "@paylane/protocol/service";
import { connectAsync } from "mqtt";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { parseGatewayEnv } from "../src/config.ts";
import { runGatewayCli } from "./support/cli.ts";

let dir = "";

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), "paylane-gateway-poll-"));
});

test.after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const run = runGatewayCli;

test("REGISTRY_POLL_MS: unset is no poll; milliseconds are read; a bad value is one line naming it", () => {
  const base = { REGISTRY_PATH: "registry.json" };
  assert.is(parseGatewayEnv(base).registryPollMs, undefined);
  assert.is(parseGatewayEnv({ ...base, REGISTRY_POLL_MS: "" }).registryPollMs, undefined, "empty counts as unset");
  assert.is(parseGatewayEnv({ ...base, REGISTRY_POLL_MS: "5000" }).registryPollMs, 5000);
  for (const bad of ["5s", "0", "99", "-5000", "1e4", "3600001"]) {
    try {
      parseGatewayEnv({ ...base, REGISTRY_POLL_MS: bad });
      assert.unreachable(`REGISTRY_POLL_MS=${bad} should be refused`);
    } catch (err) {
      assert.instance(err, ConfigError, `REGISTRY_POLL_MS=${bad}`);
      assert.is(
        (err as Error).message,
        "REGISTRY_POLL_MS: expected milliseconds between looks at the registry file, 100 to 3600000",
      );
    }
  }
});

test("the CLI refuses a bad REGISTRY_POLL_MS with exit code 2 and one line", async () => {
  const { code, stderr } = await run({ REGISTRY_PATH: join(dir, "none.json"), REGISTRY_POLL_MS: "5s" }).exit;
  assert.is(code, 2);
  const lines = stderr.trim().split("\n");
  assert.is(lines.length, 1, stderr);
  assert.match(lines[0] ?? "", "REGISTRY_POLL_MS");
});

test("with REGISTRY_POLL_MS, a kiosk written into the registry where the watch cannot hear it gets in", async () => {
  // The gateway's REGISTRY_PATH is a symlink into "share", a directory it does not watch: a write there is as
  // silent to its watch as another NFS client's write.
  const watched = join(dir, "watched");
  const share = join(dir, "share");
  await mkdir(watched);
  await mkdir(share);
  const shared = join(share, "registry.json");
  const file: RegistryFile = { version: 1, devices: [], services: [] };
  await Registry.save(shared, file);
  await symlink(shared, join(watched, "registry.json"));

  const cli = run({
    REGISTRY_PATH: join(watched, "registry.json"),
    REGISTRY_POLL_MS: "100",
    MQTT_PORT: "0",
    MQTT_HOST: "127.0.0.1",
    GATEWAY_HTTP_PORT: "0",
  });
  try {
    const mqttPort = (await cli.logLine("MQTT gateway listening")).port as number;
    // The watch and the poll start right after this line.
    await cli.logLine("health and metrics listening");

    const kiosk = { site: "s1", device: "k1" };
    const reloaded = cli.logLine("registry file changed; new version in force");
    await Registry.save(shared, { ...file, devices: [{ ...kiosk, secretHash: await hashSecret("k1-secret-00000") }] });
    assert.is((await reloaded).devices, 1);

    const client = await connectAsync(`mqtt://127.0.0.1:${mqttPort}`, {
      clientId: deviceIdentity.clientId(kiosk),
      username: deviceIdentity.username(kiosk),
      password: "k1-secret-00000",
      reconnectPeriod: 0,
    });
    assert.ok(client.connected, "the kiosk enrolled through the share connects");
    await client.endAsync(true);
  } finally {
    cli.child.kill("SIGTERM");
    const { code, stderr } = await cli.exit;
    assert.is(code, 0, stderr);
  }
});

test.run();
