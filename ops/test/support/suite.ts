/**
 * The paylane-ops suite, run against each broker (ops-aedes.test.ts,
 * ops-mosquitto.test.ts): the real bin as a child process, raw MQTT clients
 * playing the kiosks and the cloud. Waits are on output or messages, never
 * on the clock.
 */
import {
  type Alert,
  alertKey,
  alertTopicLevel,
  type Command,
  type DesiredConfig,
  type ReportedState,
  topics,
} from "@paylane/protocol";
import type { MqttClient } from "mqtt";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { type BrokerKind, Harness } from "./harness.ts";

const now = () => new Date().toISOString();

function birth(session: number) {
  return JSON.stringify({ state: "online", version: "1.0.0", bootedAt: now(), protocol: 1, session });
}

/** The next message on `topic` (subscribed first), parsed. */
function nextMessage<T>(client: MqttClient, topic: string): Promise<T> {
  return new Promise((resolve) => {
    const on = (t: string, payload: Buffer) => {
      if (t !== topic) return;
      client.off("message", on);
      resolve(JSON.parse(payload.toString()) as T);
    };
    client.on("message", on);
  });
}

export function opsSuite(kind: BrokerKind): void {
  const h = new Harness(kind);
  test.before(() => h.start());
  test.after(() => h.stop());

  test(`${kind}: watch in a terminal shows a kiosk going offline`, async () => {
    const k1 = await h.device("k1");
    await k1.publishAsync(topics.status(h.address("k1")), birth(1), { qos: 1, retain: true });
    const watch = h.spawnOps(["watch", "--site", h.site], h.env(h.login("viewer")), { pty: true });
    const row = (plain: string, state: string) =>
      plain.split("\n").some((l) => l.includes(`${h.site}/k1`) && l.includes(state));
    await watch.until((p) => row(p, "online"), "k1 online in the table");
    // A clean goodbye, as a stopping kiosk publishes it (a Will would say the same, without `at`).
    await k1.publishAsync(topics.status(h.address("k1")), JSON.stringify({ state: "offline", at: now(), session: 1 }), {
      qos: 1,
      retain: true,
    });
    await watch.until((p) => row(p.slice(p.lastIndexOf("cloud ")), "offline"), "k1 offline in the redrawn table");
    const screen = watch.stdout;
    // Redrawn in place: log-update moves the cursor up and erases, rather than printing the table again below.
    assert.ok(screen.includes("\u001b[2K") && screen.includes("\u001b[1A"), "erase line, cursor up");
    await watch.stop();
  });

  test(`${kind}: watch --json prints one parseable line per change`, async () => {
    const k2 = await h.device("k2");
    await k2.publishAsync(topics.status(h.address("k2")), birth(7), { qos: 1, retain: true });
    const watch = h.spawnOps(["watch", "--site", h.site, "--json"], h.env(h.login("viewer")));
    const k2Rows = () =>
      watch.stdout
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { type: string; kiosk?: string; status?: string; backlog?: number | null })
        .filter((r) => r.kiosk === `${h.site}/k2`);
    await watch.until(() => k2Rows().some((r) => r.status === "online"), "k2 online as JSON");
    await k2.publishAsync(
      topics.telemetry(h.address("k2")),
      JSON.stringify({
        at: now(),
        backlog: 42,
        ackedUpTo: 0,
        lastSeq: 42,
        replicaVersion: 1,
        reader: "ok",
        uptimeSeconds: 5,
      }),
      { qos: 1 },
    );
    await watch.until(() => k2Rows().some((r) => r.backlog === 42), "k2's backlog from its telemetry");
    const stopped = await watch.stop();
    for (const line of stopped.stdout.split("\n").filter(Boolean)) JSON.parse(line);
  });

  test(`${kind}: send --wait prints the device's answers and exits 0 when done`, async () => {
    const k1 = await h.device("k1");
    await k1.subscribeAsync(topics.cmdAll(h.address("k1")), { qos: 1 });
    const received = nextMessage<Command>(k1, topics.cmd(h.address("k1"), "unlock"));
    const send = h.spawnOps(
      ["send", `${h.site}/k1`, "unlock", "--arg", "seconds=7", "--wait", "20"],
      h.env(h.login("operator")),
    );
    const command = await received;
    assert.equal(command.args, { seconds: 7 });
    assert.ok(Date.parse(command.expiresAt!) > Date.now(), "an expiry in the future");
    if (kind === "aedes") assert.is(command.by, "operator", "the gateway stamps the sender");
    const result = (status: string, extra = {}) =>
      k1.publishAsync(
        topics.cmdResult(h.address("k1")),
        JSON.stringify({ id: command.id, command: "unlock", status, at: now(), ...extra }),
        { qos: 1 },
      );
    await result("accepted");
    await send.until((p) => p.includes("accepted"), "accepted printed");
    await result("done", { result: { openedSeconds: 7 } });
    const ended = await send.ended;
    assert.is(ended.code, 0, ended.stderr);
    assert.match(ended.stdout, /done \{"openedSeconds":7\}/);
  });

  test(`${kind}: send --wait exits 1 on failed and 3 when no answer comes`, async () => {
    const k1 = await h.device("k1");
    await k1.subscribeAsync(topics.cmdAll(h.address("k1")), { qos: 1 });
    const received = nextMessage<Command>(k1, topics.cmd(h.address("k1"), "print-test"));
    const send = h.spawnOps(["send", `${h.site}/k1`, "print-test", "--wait", "--json"], h.env(h.login("operator")));
    const command = await received;
    await k1.publishAsync(
      topics.cmdResult(h.address("k1")),
      JSON.stringify({ id: command.id, status: "failed", reason: "no paper", at: now() }),
      { qos: 1 },
    );
    const failed = await send.ended;
    assert.is(failed.code, 1, failed.stderr);
    const lines = failed.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { type: string; status?: string; reason?: string });
    assert.equal(lines.at(-1), { ...lines.at(-1), type: "cmd-result", status: "failed", reason: "no paper" });

    const silent = await h.run(["send", `${h.site}/k2`, "self-test", "--wait", "1"], h.env(h.login("operator")));
    assert.is(silent.code, 3, silent.stderr);
    assert.match(silent.stdout, /no final result from .*k2 for self-test/);
  });

  test(`${kind}: config set then get shows drift until the device reports`, async () => {
    const k2 = await h.device("k2");
    const set = await h.run(
      ["config", "set", `${h.site}/k2`, "mode=maintenance", "idleTimeoutSeconds=30"],
      h.env(h.login("operator")),
    );
    assert.is(set.code, 0, set.stderr);
    assert.match(set.stdout, /config v1/);
    const drifting = await h.run(["config", "get", `${h.site}/k2`, "--json"], h.env(h.login("viewer")));
    assert.is(drifting.code, 0, drifting.stderr);
    const before = JSON.parse(drifting.stdout) as { desired: DesiredConfig; drift: string[] };
    assert.equal(before.desired.settings, { mode: "maintenance", idleTimeoutSeconds: 30 });
    assert.equal(before.drift.sort(), ["idleTimeoutSeconds", "mode"]);

    // The kiosk reads its retained config and reports what it applied.
    const retained = nextMessage<DesiredConfig>(k2, topics.config(h.address("k2")));
    await k2.subscribeAsync(topics.config(h.address("k2")), { qos: 1 });
    const desired = await retained;
    const state: ReportedState = { version: desired.version, applied: desired.settings, rejected: [], at: now() };
    await k2.publishAsync(topics.state(h.address("k2")), JSON.stringify(state), { qos: 1, retain: true });
    const settled = await h.run(["config", "get", `${h.site}/k2`], h.env(h.login("viewer")));
    assert.is(settled.code, 0, settled.stderr);
    assert.match(settled.stdout, /reported v1 at /);
    assert.match(settled.stdout, /drift {4}none/);

    // A second set merges into the first and bumps the version; --wait sees the kiosk refuse it.
    const next = nextMessage<DesiredConfig>(k2, topics.config(h.address("k2")));
    const setAgain = h.spawnOps(
      ["config", "set", `${h.site}/k2`, "logLevel=debug", "--wait", "20"],
      h.env(h.login("operator")),
    );
    const v2 = await next;
    assert.is(v2.version, 2);
    assert.equal(v2.settings, { mode: "maintenance", idleTimeoutSeconds: 30, logLevel: "debug" });
    await k2.publishAsync(
      topics.state(h.address("k2")),
      JSON.stringify({
        ...state,
        version: 2,
        rejected: [{ field: "logLevel", reason: "locked by the site" }],
        at: now(),
      }),
      { qos: 1, retain: true },
    );
    const refused = await setAgain.ended;
    assert.is(refused.code, 1, refused.stderr);
    assert.match(refused.stdout, /rejected logLevel: locked by the site/);
  });

  test(`${kind}: alerts --once lists a retained alert`, async () => {
    const cloud = await h.cloud();
    const key = alertKey("paper-out", h.site, "k1");
    const alert: Alert = {
      key,
      rule: "paper-out",
      severity: "warning",
      state: "firing",
      site: h.site,
      device: "k1",
      summary: "Kiosk k1 is out of paper",
      firedAt: now(),
      at: now(),
    };
    await cloud.publishAsync(topics.alert(h.site, alertTopicLevel(key)), JSON.stringify(alert), {
      qos: 1,
      retain: true,
    });
    const listed = await h.run(["alerts", "--once", "--site", h.site], h.env(h.login("viewer")));
    assert.is(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, new RegExp(`FIRING warning ${key} ${h.site}/k1: Kiosk k1 is out of paper`));
    const json = await h.run(["alerts", "--once", "--json"], h.env(h.login("viewer")));
    const alerts = json.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Alert);
    assert.ok(alerts.some((a) => a.key === key && a.state === "firing"));
  });

  test(`${kind}: tail prints committed events, status changes and command results of one kiosk`, async () => {
    const cloud = await h.cloud();
    const k1 = await h.device("k1");
    const tail = h.spawnOps(["tail", `${h.site}/k1`], h.env(h.login("viewer")));
    await tail.until((p) => p.includes("status"), "the retained status");
    await cloud.publishAsync(
      topics.eventsMeta(h.address("k1")),
      JSON.stringify({
        site: h.site,
        device: "k1",
        entries: [{ seq: 12, id: "0b6c1f8e-4f4b-4c55-9d57-1a2b3c4d5e6f", kind: "checkin", at: now() }],
        committedAt: now(),
      }),
      { qos: 1 },
    );
    await tail.until((p) => /event #12 checkin/.test(p), "the committed checkin");
    await k1.publishAsync(topics.status(h.address("k1")), birth(2), { qos: 1, retain: true });
    await tail.until((p) => /status online session 2/.test(p), "the new birth");
    await tail.stop();
  });
}

/** What only a broker with ACLs can show: the viewer's refusal, a wrong password. */
export function refusalSuite(kind: BrokerKind): void {
  const h = new Harness(kind);
  test.before(() => h.start());
  test.after(() => h.stop());

  test(`${kind}: a viewer's send is refused with one clear line`, async () => {
    const r = await h.run(["send", `${h.site}/k1`, "reboot"], h.env(h.login("viewer")));
    assert.is(r.code, 1);
    const lines = r.stderr.trim().split("\n");
    assert.is(lines.length, 1, r.stderr);
    assert.match(lines[0]!, /^paylane-ops: the broker refused ops:viewer publishing to .*\/k1\/cmd\/reboot/);
    assert.not.match(r.stderr, new RegExp(h.login("viewer").PAYLANE_OPS_PASSWORD!));
  });

  test(`${kind}: an operator of another site cannot set this site's config`, async () => {
    const r = await h.run(["config", "set", `${h.site}/k1`, "mode=maintenance"], h.env(h.login("other-operator")));
    assert.is(r.code, 1);
    assert.match(r.stderr, /^paylane-ops: the broker refused ops:other-operator reading .*config/);
  });

  test(`${kind}: a wrong password is one line naming the user, never the password`, async () => {
    const r = await h.run(
      ["watch", "--once"],
      h.env({ PAYLANE_OPS_USERNAME: "ops:viewer", PAYLANE_OPS_PASSWORD: "wrong-password-123" }),
    );
    assert.is(r.code, 1);
    assert.is(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.match(r.stderr, /refused the login of ops:viewer: (bad user name or password|not authorized)/);
    assert.not.match(r.stderr, /wrong-password-123/);
  });
}
