/**
 * The victim of the kill -9 test (test/integration/crash-appends.test.ts):
 * opens the kiosk's real journal and appends check-ins as fast as it can
 * until it is killed.
 *
 *   node --import tsx test/support/append-child.ts <journal.db> <tag> <inflight>
 *
 * stdout, one line each:
 *   `opening`            about to open the journal (recovery and integrity_check run now)
 *   `ready <lastSeq>`    open; appends start
 *   `done <seq> <id>`    an append RESOLVED: the moment the UI would be told "done"
 *
 * The line is written only after `append` resolves, so a `done` the parent
 * reads is a claim the journal must keep. stdout on a pipe is synchronous on
 * Linux, so each line is in the pipe before the next append starts and a
 * kill cannot take back a line already written.
 *
 * `inflight` > 1 keeps several statements on the one connection at once, as
 * the daemon does (a tap racing a staff call, an append racing the uplink's
 * markAcked).
 */
// The module itself, not `@paylane/device`: the package index loads the whole daemon (hardware, MQTT, HTTP),
// which doubled the time of every cycle (measured: 58 s against 28 s for 50 cycles). Same class either way.

import { type CheckinBody, CheckinBodySchema } from "@paylane/protocol";
import { Journal } from "../../device/src/journal.ts";

const [path, tag, inflightArg] = process.argv.slice(2);
const inflight = Number(inflightArg);
if (!path || !tag || !/^[a-z0-9-]+$/.test(tag) || !Number.isInteger(inflight) || inflight < 1) {
  console.error("usage: append-child.ts <journal.db> <tag: [a-z0-9-]+> <inflight: integer >= 1>");
  process.exit(2);
}

process.stdout.write("opening\n");
const journal = await Journal.open(path);
process.stdout.write(`ready ${(await journal.stats()).lastSeq}\n`);

let next = 0;
/** One append at a time per worker; `inflight` workers keep that many statements on the connection at once. */
async function worker(): Promise<void> {
  for (;;) {
    const i = next++;
    const memberId = `crash-${tag}-${i}`;
    // Parsed, not just typed: a body the cloud would quarantine would fail the end-to-end half for the wrong reason.
    const body: CheckinBody = CheckinBodySchema.parse({
      memberId,
      credential: { type: "code", code: `C${String(i).padStart(7, "0")}` },
      replicaVersion: 0,
      offline: true,
    });
    const at = new Date();
    const entry = await journal.append("checkin", body, at, { memberId, day: at.toISOString().slice(0, 10) });
    process.stdout.write(`done ${entry.seq} ${entry.id}\n`);
  }
}

try {
  await Promise.all(Array.from({ length: inflight }, worker));
} catch (err) {
  // Only a kill should end this process; anything else is the failure the parent must see.
  console.error(`append failed: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
}
