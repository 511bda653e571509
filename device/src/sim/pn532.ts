/**
 * `paylane-sim pn532 --link <path> [--card UID]`: a PN532 v1.6 on HSU at a
 * pseudo-terminal, for libnfc (LIBNFC_DEFAULT_DEVICE=pn532_uart:<path>
 * nfc-list), the kiosk daemon, or any other tool. Prints every frame it
 * receives and answers, one line each. Lines typed on stdin change the field
 * while it runs:
 *
 *   card 04A1B2C3        a MIFARE Classic 1K (4-byte UID) or NTAG213 (7-byte UID) is placed
 *   remove               the card leaves the field
 *
 * Tools open and close the port as they like (each nfc-list run does); if
 * the pty goes away under us (socat ended), it is made again at the same path.
 */
import { createInterface } from "node:readline";
import { describeEvent } from "../hardware/pn532/describe.ts";
import { Pn532Simulator } from "../hardware/pn532/simulator.ts";
import { openSimLink, type SimLink } from "./link.ts";
import type { Pn532SimOptions } from "./main.ts";

export const STDIN_HELP = "type `card <uid>` to place a card, `remove` to take it away";

/** Pause before making a lost pty again, so a failing socat cannot spin. */
const RELINK_MS = 200;

export async function run(options: Pn532SimOptions, signal: AbortSignal, out: (line: string) => void): Promise<void> {
  const sim = new Pn532Simulator({
    onEvent: (e) => {
      const line = describeEvent(e);
      if (line !== undefined) out(line);
    },
  });
  const field = () => (sim.card ? `card ${sim.card} (${sim.cardKind})` : "field empty");
  if (options.card) sim.placeCard(options.card);

  const stdin = createInterface({ input: process.stdin, terminal: false });
  stdin.on("line", (text) => {
    const [word = "", arg] = text.trim().split(/\s+/);
    try {
      if (word === "card" && arg) sim.placeCard(arg);
      else if (word === "remove") sim.removeCard();
      else if (word !== "") {
        out(`? ${STDIN_HELP}`);
        return;
      }
      if (word !== "") out(`  ${field()}`);
    } catch (err) {
      out(`? ${(err as Error).message}`);
    }
  });

  try {
    let first = true;
    while (!signal.aborted) {
      let link: SimLink;
      try {
        link = await openSimLink(options.link);
      } catch (err) {
        // The first failure is the user's to fix (path exists, no socat); later ones are retried.
        if (first) throw err;
        out(`  pty not made again yet: ${(err as Error).message}`);
        await pause(RELINK_MS, signal);
        continue;
      }
      sim.start(link.link);
      out(
        first
          ? `PN532 v1.6 on ${link.path} (HSU 115200 baud), ${field()}; ${STDIN_HELP}`
          : `  pty made again at ${link.path}`,
      );
      first = false;
      const lost = await untilClosedOrAborted(link, signal);
      sim.stop();
      await link.close();
      if (!lost) break;
      out("  pty lost (socat ended); making it again");
      await pause(RELINK_MS, signal);
    }
  } finally {
    stdin.close();
    process.stdin.pause();
  }
}

/** Resolves true when the link closed by itself, false when the signal aborted. */
function untilClosedOrAborted(link: SimLink, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve(false);
      return;
    }
    const onAbort = () => {
      off();
      resolve(false);
    };
    const off = link.link.onClose(() => {
      signal.removeEventListener("abort", onAbort);
      resolve(true);
    });
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
