/**
 * The victim of the payment kill -9 test (test/integration/payment-crash.test.ts):
 * the real kiosk daemon, online, paying for a coffee with a card. Its journal
 * is wrapped so that the `payment` entry is never written: the process prints
 * `charged <key>` at the moment the cloud has approved and the kiosk is about
 * to journal it, and waits there for the kill.
 *
 *   node --import tsx test/support/crash-payment-child.ts '<config JSON>' <uid>
 *
 * stdout: `ready`, then `charged <key>`.
 */
import { Journal, KioskDaemon, parseDeviceConfig } from "@paylane/device";
import pino from "pino";
import { Signal } from "./signal.ts";

const [configJson, uid] = process.argv.slice(2);
if (!configJson || !uid) {
  console.error("usage: crash-payment-child.ts '<config JSON>' <uid>");
  process.exit(2);
}

const daemon = new KioskDaemon({
  config: parseDeviceConfig(JSON.parse(configJson)),
  logger: pino({ level: "silent" }),
  openJournal: async (path) => {
    const journal = await Journal.open(path);
    const append = journal.append.bind(journal);
    journal.append = async (kind, body, at, index) => {
      if (kind === "payment") {
        process.stdout.write(`charged ${String(body.key)}\n`);
        await new Promise(() => {}); // the power goes here
      }
      return append(kind, body, at, index);
    };
    return journal;
  },
});
const signal = new Signal();
daemon.events.on("cloud-link-changed", signal.notify);
await daemon.start();
await signal.until(() => daemon.uplink.online, "the kiosk online");
await daemon.replicaSync.syncNow();
process.stdout.write("ready\n");
await daemon.payments.start({ kind: "purchase", itemId: "coffee" });
await daemon.present(uid);
