/**
 * The live feed across API instances (issue 16): a kiosk taps a card, cloud
 * instance A's bridge commits the check-in, and a WebSocket client connected
 * to instance B — another cloud on the same Postgres schema, with its own
 * connections and LISTEN, whose bridge hears no kiosk of this site — gets it
 * within 500 ms of A's commit. A kiosk that stops shows up on B as offline.
 */
import type { CloudService, FlushOutcome } from "@paylane/cloud";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import WebSocket from "ws";
import { PgListener } from "../../cloud/src/db/pg-listener.ts";
import { FaultProxy } from "../support/fault-proxy.ts";
import { loud } from "../support/hooks.ts";
import { Signal } from "../support/signal.ts";
import { PG_URL, TestSite } from "../support/site.ts";

const it = suite("live feed, two API instances on one database");
let site: TestSite;
let b: CloudService;

it.before(
  loud("site and second instance", async () => {
    site = new TestSite({ db: "pg", presence: "memory", broker: "aedes", kiosks: ["k1"], probes: [] });
    await site.start();
    b = await site.startApiInstance("b");
  }),
);
it.after(async () => {
  await b?.stop();
  await site?.stop();
});

/** A client of `cloud`'s live feed, with every frame and when it arrived. */
async function liveClient(cloud: CloudService, query: string) {
  const frames: { at: number; frame: Record<string, unknown> }[] = [];
  const ws = new WebSocket(`${cloud.url.replace(/^http/, "ws")}/api/v1/live${query}`, {
    headers: { authorization: `Bearer ${await site.operatorToken("viewer")}` },
  });
  ws.on("message", (data) => frames.push({ at: performance.now(), frame: JSON.parse(data.toString()) }));
  await new Promise<void>((resolve, reject) => {
    ws.once("message", () => resolve());
    ws.once("error", reject);
    ws.once("unexpected-response", (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
  });
  return { ws, frames };
}

async function frameWhere(
  frames: { at: number; frame: Record<string, unknown> }[],
  match: (f: Record<string, unknown>) => boolean,
  what: string,
  ms = 5000,
) {
  const deadline = performance.now() + ms;
  for (;;) {
    const found = frames.find((f) => match(f.frame));
    if (found) return found;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

it("a tap at a kiosk reaches a WebSocket client of the other instance within 500 ms of the commit", async () => {
  const a = site.cloud!;
  assert.is.not(a.port, b.port);
  // When A's bridge committed each entry: the acks it hands out after each commit say up to which seq.
  const commits: { at: number; outcome: FlushOutcome }[] = [];
  const committed = new Signal();
  a.bridge.fleet.on("committed", (outcome) => {
    commits.push({ at: performance.now(), outcome });
    committed.notify();
  });
  const client = await liveClient(b, "?types=checkin,device-status");
  assert.is(client.frames[0]!.frame.type, "hello");

  const latencies: number[] = [];
  for (const card of ["04A2B3C4", "04B1C2D3", "04C0FFEE"]) {
    const tap = await site.kiosk("k1").tap(card);
    assert.is(tap.outcome, "welcome");
    const got = await frameWhere(
      client.frames,
      (f) => f.type === "checkin" && (f.data as { seq: number }).seq === tap.seq,
      `check-in seq ${tap.seq} on instance B`,
    );
    // B's LISTEN can hear the NOTIFY before A's bridge has run the code after its COMMIT: wait for it.
    const commit = await committed.until(
      () =>
        commits.find((c) =>
          c.outcome.acks.some((k) => k.device === "k1" && k.site === site.site && k.upTo >= tap.seq!),
        ),
      "instance A's bridge committed it",
      5000,
    );
    const data = got.frame.data as { memberName: string; device: string };
    assert.is(data.device, "k1");
    latencies.push(got.at - commit.at);
  }
  console.log(
    `live feed latency, A's commit to B's WebSocket client: ${latencies.map((l) => `${l.toFixed(1)} ms`).join(", ")}`,
  );
  for (const l of latencies) assert.ok(l < 500, `within 500 ms of the commit (took ${l.toFixed(1)} ms)`);
  // B's bridge heard none of it: A committed every entry
  const bEntries = await fetch(`${b.url}/metrics`, { headers: { authorization: `Bearer ${site.metricsToken}` } });
  assert.not.match(await bEntries.text(), /paylane_bridge_entries_total\{outcome="applied"\} [1-9]/);
  client.ws.close();
});

it("a kiosk that stops shows up offline on the other instance's feed", async () => {
  const client = await liveClient(b, "?types=device-status");
  await site.kiosk("k1").stop();
  site.kiosks.delete("k1");
  const got = await frameWhere(
    client.frames,
    (f) => f.type === "device-status" && (f.data as { state: string }).state === "offline",
    "k1 offline on instance B",
  );
  assert.is(got.frame.device, "k1");
  assert.is(got.frame.site, site.site);
  client.ws.close();
});

it("a LISTEN connection that stops answering (no RST, no FIN) is noticed by its heartbeat and replaced", async () => {
  const proxy = new FaultProxy({ target: { host: "127.0.0.1", port: 5432 } });
  await proxy.start();
  const heard: string[] = [];
  let lost = 0;
  let reconnected = 0;
  const listener = new PgListener(
    { connectionString: proxy.url(PG_URL), connectionTimeoutMillis: 500, query_timeout: 300 },
    { heartbeatMs: 150 },
  );
  const channel = `live_test_${site.site}`;
  const until = async (what: string, ok: () => boolean) => {
    const deadline = performance.now() + 8000;
    while (!ok()) {
      if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  try {
    await listener.listen(channel, (p) => heard.push(p), {
      onLost: () => lost++,
      onReconnected: () => reconnected++,
    });
    await site.db.query("SELECT pg_notify($1, 'before')", [channel]);
    await until("the first notification", () => heard.includes("before"));
    // The network eats every byte: the connection looks open, nothing comes back.
    proxy.blackhole();
    await until("the heartbeat to give up on it", () => lost > 0);
    proxy.heal();
    await until("listening again", () => reconnected > 0);
    await site.db.query("SELECT pg_notify($1, 'after')", [channel]);
    await until("the notification after the partition", () => heard.includes("after"));
  } finally {
    await listener.close();
    await proxy.stop();
  }
});

it.run();
