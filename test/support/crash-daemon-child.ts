/**
 * The victim of the kill -9 test (test/integration/crash-appends.test.ts):
 * the real kiosk daemon, offline, checking members in through its own local
 * API (`POST /api/code`, the booking-code path of the touch UI) as fast as it
 * can, several at once, until it is killed.
 *
 *   node --import tsx test/support/crash-daemon-child.ts <dataDir> <tag> <inflight> <day>
 *
 * stdout, one line each:
 *   `opening`            about to start the daemon (journal open, recovery, integrity_check)
 *   `ready <lastSeq>`    started; check-ins begin
 *   `done <seq> <id>`    the daemon answered "Welcome": what the UI shows, so a promise made
 *
 * The daemon's clock is set to day `<day>` after 2030-01-01, so every cycle is
 * a new site-local day and the members of the replica (C0000..) can check in
 * again; "already checked in today" never hides an entry.
 */
import { KioskDaemon, parseDeviceConfig } from "@paylane/device";
import type { TapResult } from "@paylane/protocol/kiosk-api";
import pino from "pino";
import { readLocalApiToken } from "../../device/src/local-api-token.ts";
import { CRASH_MEMBERS, crashMemberCode } from "./crash-members.ts";

const [dataDir, tag, inflightArg, dayArg] = process.argv.slice(2);
const inflight = Number(inflightArg);
const day = Number(dayArg);
if (!dataDir || !tag || !Number.isInteger(inflight) || inflight < 1 || !Number.isInteger(day) || day < 0) {
  console.error("usage: crash-daemon-child.ts <dataDir> <tag> <inflight: integer >= 1> <day: integer >= 0>");
  process.exit(2);
}

const t0 = Date.now();
const dayStart = Date.UTC(2030, 0, 1) + day * 86_400_000;
process.stdout.write("opening\n");
const daemon = new KioskDaemon({
  config: parseDeviceConfig({
    site: "crash",
    device: "k1",
    secret: "crash-daemon-secret-0123",
    // nothing listens on port 9: offline, deciding from the replica and journal
    mqttUrl: "mqtt://127.0.0.1:9",
    cloudUrl: "http://127.0.0.1:9",
    dataDir,
    http: { host: "127.0.0.1", port: 0 },
    // no reader attached: members check in with booking codes through the local API
    reader: { type: "pn532", path: "/nonexistent/paylane-crash-reader" },
  }),
  logger: pino({ level: "silent" }),
  now: () => new Date(dayStart + (Date.now() - t0)),
});
await daemon.start();
// the local API's per-boot token, as a tool on the kiosk reads it
const token = await readLocalApiToken(dataDir);
process.stdout.write(`ready ${(await daemon.journal.stats()).lastSeq}\n`);

let next = 0;
async function worker(): Promise<void> {
  for (;;) {
    const i = next++;
    if (i >= CRASH_MEMBERS) return; // the parent kills long before; never reuse a member within a day
    const res = await fetch(`http://127.0.0.1:${daemon.port}/api/code`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ code: crashMemberCode(i) }),
    });
    const result = (await res.json()) as TapResult;
    if (result.outcome !== "welcome" || result.seq === undefined || !result.id)
      throw new Error(`member ${crashMemberCode(i)}: ${JSON.stringify(result)}`);
    process.stdout.write(`done ${result.seq} ${result.id}\n`);
  }
}

try {
  await Promise.all(Array.from({ length: inflight }, worker));
  await new Promise(() => {}); // out of members: wait for the kill
} catch (err) {
  console.error(`check-in failed: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
}
