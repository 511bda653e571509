/** `paylane-provision claim`: (being built; see docs/install.md). */
import type { Command } from "commander";

export function claimCommands(program: Command): void {
  void program;
}
