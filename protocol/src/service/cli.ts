/**
 * The command line every PayLane bin shares (commander): `--help` with
 * examples and the environment it reads, `--version` from the package's own
 * package.json, and a bad flag answered in one line that names it, in the
 * same format as any other failed start.
 */
import { readFileSync } from "node:fs";
import { Command, type CommanderError } from "commander";

export interface CommandSpec {
  /** The command as a person types it, e.g. `paylane-gateway` (also the prefix of its error lines). */
  name: string;
  /** The bin's package.json, e.g. `new URL("../package.json", import.meta.url)`. */
  packageJson: URL;
  /** What it does, one paragraph. */
  description: string;
  /** Full command lines, each with what it does, shown under "Examples". */
  examples: readonly { command: string; does: string }[];
  /** Extra sections shown after the options, e.g. the environment (see `environmentHelp`). */
  sections?: readonly { title: string; body: string }[];
  /** How an error line starts; default `<name>: failed to start:`. */
  errorPrefix?: string;
  /** How to ask for help, for error lines; default `<name> --help`. */
  helpCommand?: string;
}

/** Exit codes of every PayLane bin. */
export const EXIT = {
  /** could not start (a port taken, a database unreachable), or stopping failed */
  failed: 1,
  /** bad flags or configuration: nothing was started */
  usage: 2,
} as const;

export function packageVersion(packageJson: URL): string {
  const { version } = JSON.parse(readFileSync(packageJson, "utf8")) as { version?: unknown };
  if (typeof version !== "string") throw new Error(`${packageJson.pathname} has no version`);
  return version;
}

/**
 * A commander program with the shared conventions; add the bin's own options
 * to it, then `parse()` it (or hand it to `runService`).
 */
export function createCommand(spec: CommandSpec): Command {
  const prefix = spec.errorPrefix ?? `${spec.name}: failed to start:`;
  const examples = spec.examples.map((e) => `  # ${e.does}\n  $ ${e.command}`).join("\n\n");
  const sections = [...(spec.sections ?? []), { title: "Examples", body: examples }]
    .map((s) => `\n${s.title}:\n${s.body.replace(/\n+$/, "")}`)
    .join("\n");
  return new Command(spec.name)
    .description(spec.description)
    .version(packageVersion(spec.packageJson), "-V, --version", "print the version and exit")
    .helpOption("-h, --help", "print this help and exit")
    .addHelpText("after", sections)
    .configureOutput({
      // commander says "error: unknown option '--bogus'"; ours say who failed and where help is.
      outputError: (text, write) =>
        write(`${prefix} ${text.trim().replace(/^error: /, "")} (see ${spec.helpCommand ?? `${spec.name} --help`})\n`),
    })
    .exitOverride((err: CommanderError) => {
      // --help and --version exit 0; anything else commander refuses is a usage error.
      process.exit(err.exitCode === 0 ? 0 : EXIT.usage);
    });
}
