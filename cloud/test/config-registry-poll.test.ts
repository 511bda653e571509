/**
 * REGISTRY_POLL_MS in the cloud: unset is no poll, a bad value is one line
 * naming it, and a cloud started with it sees a kiosk another node wrote into
 * the registry, where its file watch cannot hear it: the registry path is a
 * symlink into a second directory ("share"), written there, as silent to the
 * watch as another NFS client's write. The test waits on the cloud's log
 * line, never on the clock (the poll is 100 ms of real time).
 */
import { mkdir, mkdtemp, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CloudService, type Database, openPglite, parseCloudEnv } from "@paylane/cloud";
import { Gateway } from "@paylane/gateway";
import { hashSecret, Registry, type RegistryFile } from "@paylane/protocol";
import { ConfigError } from "@paylane/protocol/service";
import pino from "pino";
import { Registry as MetricsRegistry } from "prom-client";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Signal } from "../../test/support/signal.ts";

test("REGISTRY_POLL_MS: unset is no poll; milliseconds are read; a bad value is one line naming it", () => {
  const base = { REGISTRY_PATH: "registry.json" };
  assert.is(parseCloudEnv(base).REGISTRY_POLL_MS, undefined);
  assert.is(parseCloudEnv({ ...base, REGISTRY_POLL_MS: "5000" }).REGISTRY_POLL_MS, 5000);
  for (const bad of ["5s", "0", "99", "1e4", "3600001"]) {
    try {
      parseCloudEnv({ ...base, REGISTRY_POLL_MS: bad });
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

test("with REGISTRY_POLL_MS, a kiosk another node wrote into the registry can call the cloud", async () => {
  const dir = await mkdtemp(join(tmpdir(), "paylane-cloud-poll-"));
  const watched = join(dir, "watched");
  const share = join(dir, "share");
  await mkdir(watched);
  await mkdir(share);
  const shared = join(share, "registry.json");
  const cloudSecret = "cloud-secret-0123456789";
  const file: RegistryFile = {
    version: 1,
    devices: [],
    services: [{ id: "cloud", role: "bridge", secretHash: await hashSecret(cloudSecret) }],
  };
  await Registry.save(shared, file);
  await symlink(shared, join(watched, "registry.json"));

  const quiet = pino({ level: "silent" });
  const gateway = new Gateway({ registry: new Registry(file), port: 0, logger: quiet, metrics: new MetricsRegistry() });
  await gateway.start();
  const signal = new Signal();
  const logs: { msg?: string; devices?: number }[] = [];
  const logger = pino(
    { level: "info" },
    {
      write: (line: string) => {
        logs.push(JSON.parse(line));
        signal.notify();
      },
    },
  );
  let db: Database | undefined;
  let cloud: CloudService | undefined;
  try {
    db = await openPglite();
    const config = parseCloudEnv({
      REGISTRY_PATH: join(watched, "registry.json"),
      REGISTRY_POLL_MS: "100",
      CLOUD_PORT: "0",
      MQTT_URL: `mqtt://127.0.0.1:${gateway.port}`,
      CLOUD_MQTT_SECRET: cloudSecret,
    });
    cloud = new CloudService({ config, logger, db });
    await cloud.start();

    const kiosk = { site: "venue-1", device: "k1", secret: "k1-secret-0123456789" };
    const members = () =>
      fetch(`${cloud!.url}/api/v1/sites/${kiosk.site}/members`, {
        headers: {
          authorization: `Basic ${Buffer.from(`${kiosk.site}/${kiosk.device}:${kiosk.secret}`).toString("base64")}`,
        },
      });
    assert.is((await members()).status, 401, "not in the registry yet");

    await Registry.save(shared, {
      ...file,
      devices: [{ site: kiosk.site, device: kiosk.device, secretHash: await hashSecret(kiosk.secret) }],
    });
    const line = await signal.until(
      () => logs.find((l) => l.msg === "registry file changed; new version in force"),
      "the cloud loaded the registry written through the share",
      10_000,
    );
    assert.is(line.devices, 1);
    assert.is((await members()).status, 200, "the kiosk the other node enrolled is let in");
  } finally {
    await cloud?.stop();
    await db?.close();
    await gateway.stop();
    await rm(dir, { recursive: true, force: true });
  }
});

test.run();
