/** `paylane-provision image`: (being built; see docs/install.md). */
import type { Command } from "commander";

export function imageCommands(program: Command): void {
  void program;
}
