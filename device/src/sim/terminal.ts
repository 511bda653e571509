/**
 * `paylane-sim terminal --link <path>`: the simulated ZVT payment terminal on
 * a pseudo-terminal, speaking ZVT's serial transport (DLE/STX frames, CRC,
 * ACK/NAK) as an RS-232 terminal does. Every APDU received (←) and sent (→)
 * is printed in words; passwords show as ******, cards by their last four.
 *
 * The next payment's outcome is chosen while it runs: a line on stdin saying
 * `approve`, `decline` or `timeout` (a card that never comes); with none
 * chosen, payments are approved.
 */
import { createInterface } from "node:readline";
import { describeApdu } from "../hardware/terminal/zvt-describe.ts";
import { type SimulatedOutcome, ZvtSimulator } from "../hardware/terminal/zvt-simulator.ts";
import { servePty } from "./link.ts";
import type { TerminalSimOptions } from "./main.ts";

const OUTCOMES: readonly SimulatedOutcome[] = ["approve", "decline", "timeout"];

export async function run(
  options: TerminalSimOptions,
  signal: AbortSignal,
  out: (line: string) => void,
): Promise<void> {
  const sim = new ZvtSimulator({
    password: options.password,
    onApdu: (direction, apdu) => out(`${direction === "in" ? "←" : "→"} ${describeApdu(apdu)}`),
  });
  const input = createInterface({ input: process.stdin, terminal: false });
  input.on("line", (line) => {
    const word = line.trim().toLowerCase();
    if (!word) return;
    if ((OUTCOMES as readonly string[]).includes(word)) {
      sim.nextOutcome(word as SimulatedOutcome);
      out(`next payment: ${word}`);
    } else {
      out(`unknown command "${word}": type ${OUTCOMES.join(", ")}`);
    }
  });

  try {
    await servePty(options.link, signal, {
      attach: (link) => sim.attach(link),
      ready: (path, first) =>
        out(
          first
            ? `ZVT terminal at ${path} (serial transport, 9600 8N1 for the ECR; password ******). ` +
                `Type ${OUTCOMES.join(", ")} + Enter to choose the next payment's outcome; Ctrl-C stops.`
            : `  pty made again at ${path}`,
        ),
      out,
    });
  } finally {
    input.close();
    process.stdin.pause();
  }
  out(`stopped; ${options.link} is gone`);
}
