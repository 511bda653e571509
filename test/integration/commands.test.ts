/**
 * Commands and configuration end to end (issue 14), a real kiosk daemon on
 * the other side: a command sent over the API runs and its result comes
 * back; one sent while the kiosk is off is delivered when it comes back and
 * runs once, even delivered again; one that expired meanwhile never runs; a
 * desired config the kiosk partly refuses leaves the last good value in
 * force and the drift shows through the API. On aedes (Postgres, Redis) and
 * on Mosquitto with the configuration made from the registry (PGlite, in
 * process). The site's clock is injected: expiry needs no waiting.
 */
import {
  type CommandResult,
  CommandResultSchema,
  CommandSchema,
  DesiredConfigSchema,
  decode,
  encode,
  topics,
} from "@paylane/protocol";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { CommandRecord } from "../../cloud/src/fleet/commands.ts";
import type { DeviceConfigView } from "../../cloud/src/fleet/device-config.ts";
import { loud } from "../support/hooks.ts";
import { type Backends, describe, TestSite } from "../support/site.ts";

const BACKENDS: Backends[] = [
  { db: "pg", presence: "redis", broker: "aedes" },
  // Mosquitto with the configuration made from the registry (operators in its dynamic security)
  { db: "pglite", presence: "memory", broker: "mosquitto-acl" },
];

for (const backends of BACKENDS) {
  let skewMs = 0;
  const now = () => new Date(Date.now() + skewMs);

  const it = suite(`commands and configuration with a real kiosk, ${describe(backends)}`);
  let site: TestSite;
  const results: CommandResult[] = [];

  it.before(
    loud(`${describe(backends)} site setup`, async () => {
      site = new TestSite({ ...backends, kiosks: ["k1"], probes: [], now });
      await site.start();
      site.cloud!.commands.changes.on("change", site.signal.notify);
      site.cloud!.configs.changes.on("change", site.signal.notify);
      // What the kiosk answers, as a viewer on the broker sees it.
      const viewer = await site.operatorClient("viewer");
      viewer.on("message", (_t, payload) => {
        const r = decode(CommandResultSchema, payload);
        if (r.ok) results.push(r.value);
        site.signal.notify();
      });
      await viewer.subscribeAsync(topics.cmdResult(site.address("k1")), { qos: 1 });
    }),
  );
  it.after(async () => {
    await site?.stop();
  });

  const commandsPath = () => `/api/v1/devices/${site.site}/k1/commands`;
  const modeOf = async () => (await site.kiosk("k1").state()).screen?.mode;

  async function rowOf(id: string): Promise<CommandRecord | undefined> {
    const res = await site.operator("GET", commandsPath());
    return (res.body.items as CommandRecord[]).find((c) => c.id === id);
  }

  async function restartKiosk(between: () => Promise<void>): Promise<void> {
    await site.kiosk("k1").stop();
    await between();
    await site.startKiosk("k1");
  }

  it("a command runs on the kiosk and its result comes back in the answer and the audit", async () => {
    const res = await site.operator("POST", commandsPath(), { command: "set-mode", args: { mode: "maintenance" } });
    assert.is(res.status, 200, JSON.stringify(res.body));
    const c = res.body as unknown as CommandRecord;
    assert.is(c.status, "done");
    assert.equal(c.result, { mode: "maintenance", previous: "in-service" });
    assert.is(await modeOf(), "maintenance");
    const row = await rowOf(c.id);
    assert.is(row?.requestedBy, "ops-test");
    assert.is(row?.status, "done");
  });

  it("a command sent while the kiosk is off is delivered when it comes back, and runs once even delivered again", async () => {
    let sent!: CommandRecord;
    await restartKiosk(async () => {
      const res = await site.operator("POST", commandsPath(), {
        command: "set-mode",
        args: { mode: "in-service" },
        waitSeconds: 0.2,
      });
      assert.is(res.status, 202, JSON.stringify(res.body));
      sent = res.body as unknown as CommandRecord;
      assert.is(sent.status, "pending");
    });
    await site.signal.until(async () => (await rowOf(sent.id))?.status === "done", "done once the kiosk is back");
    assert.equal((await rowOf(sent.id))?.result, { mode: "in-service", previous: "maintenance" });
    assert.is(await modeOf(), "in-service");

    // Moved on since; then the first command arrives again (a redelivery).
    const later = await site.operator("POST", commandsPath(), {
      command: "set-mode",
      args: { mode: "out-of-service" },
    });
    assert.is(later.status, 200);
    const mark = results.length;
    const ops = await site.operatorClient("operator");
    await ops.publishAsync(
      topics.cmd(site.address("k1"), "set-mode"),
      encode(CommandSchema, { id: sent.id, args: sent.args, expiresAt: sent.expiresAt ?? undefined }),
      { qos: 1 },
    );
    const again = await site.signal.until(
      () => results.slice(mark).find((r) => r.id === sent.id && r.status !== "accepted"),
      "the kiosk answered the redelivery",
    );
    assert.is(again.status, "done");
    assert.equal(
      (again as { result?: unknown }).result,
      { mode: "in-service", previous: "maintenance" },
      "its first answer",
    );
    assert.is(await modeOf(), "out-of-service", "not run a second time");
    assert.is((await rowOf(sent.id))?.status, "done");
  });

  it("a command that expires while the kiosk is off never runs, and the audit says expired", async () => {
    let sent!: CommandRecord;
    await restartKiosk(async () => {
      const res = await site.operator("POST", commandsPath(), {
        command: "set-mode",
        args: { mode: "maintenance" },
        expiresInSeconds: 5,
        waitSeconds: 0,
      });
      sent = res.body as unknown as CommandRecord;
      skewMs += 10_000;
    });
    await site.signal.until(async () => (await rowOf(sent.id))?.status === "expired", "expired at the kiosk's birth");
    // A command sent now is delivered after anything the birth redelivered.
    const barrier = await site.operator("POST", commandsPath(), { command: "self-test" });
    assert.is(barrier.status, 200);
    assert.is(await modeOf(), "out-of-service", "the expired set-mode never ran");
    assert.is(
      results.some((r) => r.id === sent.id),
      false,
      "the kiosk never heard of it",
    );
  });

  async function configOf(): Promise<DeviceConfigView> {
    const res = await site.operator("GET", `/api/v1/devices/${site.site}/k1/config`);
    return res.body as unknown as DeviceConfigView;
  }

  it("a config the kiosk partly refuses keeps its last good value, and the drift shows through the API", async () => {
    const put = await site.operator("PUT", `/api/v1/devices/${site.site}/k1/config`, {
      settings: { idleTimeoutSeconds: 40 },
    });
    assert.is(put.status, 200, JSON.stringify(put.body));
    const v = (put.body as unknown as DeviceConfigView).desired!.version;
    await site.signal.until(async () => (await configOf()).reported?.version === v, "the kiosk applied it");
    assert.equal((await configOf()).drift, []);

    // An operator's tool skips the API's checks: one field is out of range.
    const ops = await site.operatorClient("operator");
    await ops.publishAsync(
      topics.config(site.address("k1")),
      encode(DesiredConfigSchema, {
        version: v + 1,
        settings: { idleTimeoutSeconds: 1, screenTexts: { welcome: "Hello from ops" } },
      }),
      { qos: 1, retain: true },
    );
    await site.signal.until(async () => (await configOf()).reported?.version === v + 1, "the kiosk answered v+1");
    const view = await configOf();
    assert.equal(view.drift, ["idleTimeoutSeconds"]);
    assert.is(view.reported?.applied.idleTimeoutSeconds, 40, "the last good value stays in force");
    assert.equal(view.reported?.applied.screenTexts, { welcome: "Hello from ops" }, "the good field applied");
    assert.is(view.reported?.rejected[0]?.field, "idleTimeoutSeconds");
    assert.is((await site.kiosk("k1").state()).screen?.idleTimeoutSeconds, 40);

    const fleet = await site.operator("GET", `/api/v1/config/drift?site=${site.site}`);
    assert.equal(
      (fleet.body.items as DeviceConfigView[]).map((d) => [d.device, d.drift]),
      [["k1", ["idleTimeoutSeconds"]]],
    );
  });

  it.run();
}
