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
import { servePty } from "./link.ts";
import type { Pn532SimOptions } from "./main.ts";
import { RepeatFolder } from "./repeat-folder.ts";

export const STDIN_HELP = "type `card <uid>` to place a card, `remove` to take it away";

export async function run(options: Pn532SimOptions, signal: AbortSignal, print: (line: string) => void): Promise<void> {
  // Frames fold when a tool repeats itself; anything else says what was folded first.
  const frames = new RepeatFolder(print);
  const out = (line: string) => {
    frames.flush();
    print(line);
  };
  const sim = new Pn532Simulator({
    onEvent: (e) => {
      const line = describeEvent(e);
      if (line !== undefined) frames.line(line);
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
    await servePty(options.link, signal, {
      attach: (link) => {
        sim.start(link);
        return () => sim.stop();
      },
      ready: (path, first) =>
        out(
          first ? `PN532 v1.6 on ${path} (HSU 115200 baud), ${field()}; ${STDIN_HELP}` : `  pty made again at ${path}`,
        ),
      out,
    });
  } finally {
    frames.flush();
    stdin.close();
    process.stdin.pause();
  }
}
