/**
 * `paylane-sim pcsc-card [--vpcd host:port] [--card UID]`: a contactless card
 * on vsmartcard's virtual reader, so pcscd, pcsc_scan and the kiosk's PC/SC
 * backend can be tried without a USB reader. Debian's vsmartcard-vpcd gives
 * pcscd a reader "Virtual PCD" listening on 127.0.0.1:35963; this puts the
 * card on it and answers GET DATA (FF CA 00 00 00) with the UID.
 *
 *   card 04A1B2C3        take the card off and put this one on
 *   remove / insert      take it off the reader, put it back
 *
 * When pcscd goes away the card falls off with its reader; it is put back
 * once the reader listens again.
 */
import { createInterface } from "node:readline";
import { VirtualCard } from "../hardware/pcsc/virtual-card.ts";
import { hex, parseUid } from "../hardware/pn532/commands.ts";
import type { PcscCardSimOptions } from "./main.ts";
import { RepeatFolder } from "./repeat-folder.ts";

export const STDIN_HELP = "type `card <uid>` to put another card on, `remove` / `insert` to take it off and back";
/** How often a card that fell off (pcscd gone) tries to get back on. */
const RETRY_MS = 1000;
const CONTROL: Record<number, string> = { 0: "power off", 1: "power on", 2: "reset", 4: "ATR?" };

export async function run(
  options: PcscCardSimOptions,
  signal: AbortSignal,
  print: (line: string) => void,
): Promise<void> {
  const [host = "127.0.0.1", portText = "35963"] = options.vpcd.split(":");
  const port = Number(portText);
  // pcscd asks for the ATR every ~400 ms while the card is on: folded into one counted line.
  const log = new RepeatFolder(print);
  const out = (line: string) => {
    log.flush();
    print(line);
  };
  let uid = options.card;
  let wanted = true;
  const make = () =>
    new VirtualCard({
      host,
      port,
      uid,
      onExchange: (message, answer) => log.line(describe(message, answer)),
      onDropped: () => {
        if (!wanted || retry || signal.aborted) return;
        out("  the reader went away (pcscd stopped?): the card waits to go back on");
        retry = setTimeout(() => void putOn(false), RETRY_MS);
      },
    });
  let card = make();
  let retry: NodeJS.Timeout | undefined;

  const putOn = async (first: boolean): Promise<void> => {
    retry = undefined;
    if (signal.aborted || !wanted) return;
    try {
      await card.insert();
      out(first ? `card ${uid} on the vpcd reader at ${host}:${port}; ${STDIN_HELP}` : `  card ${uid} on the reader`);
    } catch (err) {
      // The first failure is the user's to fix (no pcscd, no vpcd); later ones wait for the reader to return.
      if (first) {
        throw new Error(
          `${(err as Error).message}; is pcscd running with vsmartcard-vpcd installed? (apt-get install pcscd vsmartcard-vpcd; systemctl restart pcscd)`,
        );
      }
      retry = setTimeout(() => void putOn(false), RETRY_MS);
    }
  };
  await putOn(true);
  const stdin = createInterface({ input: process.stdin, terminal: false });
  stdin.on("line", (text) => {
    const [word = "", arg] = text.trim().split(/\s+/);
    void (async () => {
      try {
        if (word === "remove") {
          wanted = false;
          await card.remove();
          out("  card taken off");
        } else if (word === "insert") {
          wanted = true;
          await putOn(false);
        } else if (word === "card" && arg) {
          parseUid(arg); // a bad UID is refused before the old card goes
          wanted = false;
          await card.remove();
          uid = arg.toUpperCase();
          card = make();
          wanted = true;
          await putOn(false);
        } else if (word !== "") {
          out(`? ${STDIN_HELP}`);
        }
      } catch (err) {
        out(`? ${(err as Error).message}`);
      }
    })();
  });

  await new Promise<void>((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
  clearTimeout(retry);
  stdin.close();
  process.stdin.pause();
  await card.remove();
  log.flush();
  print("stopped; the card is off the reader");
}

function describe(message: Uint8Array, answer: Uint8Array | undefined): string {
  if (message.length === 1) {
    const what = CONTROL[message[0] ?? -1] ?? `control ${hex(message[0] ?? 0)}`;
    return answer ? `← ${what} → ${spaced(answer)}` : `← ${what}`;
  }
  const command = spaced(message);
  const name = message[0] === 0xff && message[1] === 0xca ? "GET DATA" : "APDU";
  if (!answer || answer.length < 2) return `← ${name} ${command}`;
  const sw = spaced(answer.subarray(-2));
  const data = answer.length > 2 ? `UID ${spaced(answer.subarray(0, -2)).replaceAll(" ", "")} ` : "";
  return `← ${name} ${command} → ${data}${sw}`;
}

function spaced(bytes: Uint8Array): string {
  return Buffer.from(bytes)
    .toString("hex")
    .toUpperCase()
    .replace(/(..)(?=.)/g, "$1 ");
}
