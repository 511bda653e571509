/** `paylane-provision flash`: (being built; see docs/install.md). */
import type { Command } from "commander";

export function flashCommand(program: Command): void {
  void program;
}
