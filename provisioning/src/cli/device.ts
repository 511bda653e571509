/** `paylane-provision device`: (being built; see docs/install.md). */
import type { Command } from "commander";

export function deviceCommands(program: Command): void {
  void program;
}
