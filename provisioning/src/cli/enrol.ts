/** `paylane-provision enrol`: (being built; see docs/install.md). */
import type { Command } from "commander";

export function enrolCommand(program: Command): void {
  void program;
}
