/**
 * `paylane-gateway`'s offline sub-commands: they change or read files and
 * exit, and never start the broker. `operator add|remove` edits the
 * registry's operators; `mosquitto-config` makes a Mosquitto configuration
 * from it (mosquitto.ts).
 *
 * Output: what a person needs goes to stdout (a new password, once, and
 * nowhere else: no log line ever holds it); problems are one line on stderr
 * and a non-zero exit.
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { resolve } from "node:path";
import { OPERATOR_ROLES, type OperatorRole, Registry } from "@paylane/protocol";
import { ConfigError, EXIT, oneLine } from "@paylane/protocol/service";
import { type Command, InvalidArgumentError } from "commander";
import { dynsecConfig, findDynsecPlugin, mosquittoConf } from "./mosquitto.ts";
import { addOperator, readRegistryFile, removeOperator } from "./operators.ts";

/** Sub-command names, so main.ts knows not to start the gateway for them. */
export const ADMIN_COMMANDS = new Set(["operator", "mosquitto-config", "help"]);

const collect = (value: string, previous: string[]) => [...previous, value];
const port = (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new InvalidArgumentError("expected a port from 1 to 65535");
  return n;
};
const role = (value: string) => {
  if (!(OPERATOR_ROLES as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(`expected one of ${OPERATOR_ROLES.join(", ")}`);
  }
  return value as OperatorRole;
};

/** Runs an action; a failure is `<command>: <why>` on stderr, exit 2 for bad input, 1 otherwise. */
function action<A extends unknown[]>(name: string, fn: (...args: A) => Promise<void>) {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      process.stderr.write(`${name}: ${oneLine(err)}\n`);
      process.exit(err instanceof ConfigError ? EXIT.usage : EXIT.failed);
    }
  };
}

/** Commander's own refusals (a missing or bad option) in the same one-line form, naming the sub-command. */
function errorsNamed(command: Command, name: string): Command {
  return command.configureOutput({
    outputError: (text, write) => write(`${name}: ${text.trim().replace(/^error: /, "")} (see ${name} --help)\n`),
  });
}

function examples(lines: { command: string; does: string }[]): string {
  return `\nExamples:\n${lines.map((e) => `  # ${e.does}\n  $ ${e.command}`).join("\n\n")}`;
}

export function addAdminCommands(program: Command): void {
  const bin = program.name();
  const operator = program
    .command("operator")
    .summary("add or remove an operator in a registry file (operator add --help)")
    .description("add or remove an operator (a person or their tool on the broker) in a registry file");

  errorsNamed(operator.command("add"), `${bin} operator add`)
    .description(
      "Adds an operator with a generated password. The registry keeps only its scrypt hash; the password is " +
        "printed once, on stdout, and never logged. A gateway watching the registry lets it in at once.",
    )
    .requiredOption("--registry <file>", "the registry file (REGISTRY_PATH of the gateway)")
    .requiredOption("--id <id>", "the operator's id; it connects as ops:<id>")
    .requiredOption("--role <role>", `${OPERATOR_ROLES.join(" | ")}`, role)
    .option("--site <id>", "a site it sees (and, as operator, steers); repeat for more; admins have all", collect, [])
    .option("--json", "print {username, password} as JSON, for scripts")
    .addHelpText(
      "after",
      examples([
        {
          command: `${bin} operator add --registry registry.json --id alice --role operator --site venue-1`,
          does: "alice may read and command the kiosks of venue-1",
        },
        {
          command: `${bin} operator add --registry registry.json --id noc --role viewer --site venue-1 --site venue-2 --json`,
          does: "a read-only login for two sites, printed as JSON",
        },
      ]),
    )
    .action(
      action(
        `${bin} operator add`,
        async (o: { registry: string; id: string; role: OperatorRole; site: string[]; json?: boolean }) => {
          const login = await addOperator(o.registry, { id: o.id, role: o.role, sites: o.site });
          if (o.json) {
            process.stdout.write(`${JSON.stringify(login)}\n`);
            return;
          }
          const where = o.role === "admin" ? "every site" : `site ${o.site.join(", ")}`;
          process.stdout.write(
            `added ${o.role} ${o.id} (${where}) to ${o.registry}\n` +
              `username: ${login.username}\npassword: ${login.password}\n` +
              "The password is shown only now; the registry keeps only its hash.\n",
          );
        },
      ),
    );

  errorsNamed(operator.command("remove"), `${bin} operator remove`)
    .description("Removes an operator. A gateway watching the registry closes its sessions at once.")
    .requiredOption("--registry <file>", "the registry file (REGISTRY_PATH of the gateway)")
    .requiredOption("--id <id>", "the operator's id")
    .addHelpText(
      "after",
      examples([{ command: `${bin} operator remove --registry registry.json --id alice`, does: "alice is cut off" }]),
    )
    .action(
      action(`${bin} operator remove`, async (o: { registry: string; id: string }) => {
        await removeOperator(o.registry, o.id);
        process.stdout.write(`removed operator ${o.id} from ${o.registry}\n`);
      }),
    );

  errorsNamed(program.command("mosquitto-config"), `${bin} mosquitto-config`)
    .summary("write a Mosquitto 2 configuration (identities, hashes, ACLs) from the registry")
    .description(
      "Writes a Mosquitto 2 configuration equivalent to the gateway's: mosquitto.conf and dynamic-security.json " +
        "(the dynamic-security plugin's identities, PBKDF2-SHA512 hashes and per-role ACLs: devices confined to " +
        "their subtree, the bridge, operators by role and granted site). The registry holds only scrypt hashes, " +
        "which Mosquitto cannot check, so the plain secrets come from --secrets; each is checked against the " +
        "registry first. Identities without a secret there are left out, named on stderr.",
    )
    .requiredOption("--registry <file>", "the registry file")
    .requiredOption("--secrets <file>", 'JSON {"<username>": "<secret>"}: s1/k1, svc:cloud, ops:alice, ...')
    .requiredOption("--out <dir>", "where to write mosquitto.conf and dynamic-security.json")
    .option("--port <n>", "the listener's port", port, 1883)
    .option("--host <address>", "the listener's address", "127.0.0.1")
    .option("--plugin <path>", "mosquitto_dynamic_security.so (default: found in the usual places)")
    .option("--no-verify", "do not check the secrets against the registry's hashes (quicker for thousands)")
    .addHelpText(
      "after",
      examples([
        {
          command: `${bin} mosquitto-config --registry registry.json --secrets secrets.json --out /etc/paylane/mosquitto --port 1883`,
          does: "then: mosquitto -c /etc/paylane/mosquitto/mosquitto.conf",
        },
      ]),
    )
    .action(
      action(
        `${bin} mosquitto-config`,
        async (o: {
          registry: string;
          secrets: string;
          out: string;
          port: number;
          host: string;
          plugin?: string;
          verify: boolean;
        }) => {
          const summary = await writeMosquittoConfig(o);
          process.stdout.write(summary);
        },
      ),
    );
}

export interface MosquittoConfigOptions {
  registry: string;
  secrets: string;
  out: string;
  port: number;
  host?: string;
  plugin?: string;
  verify?: boolean;
}

/** Writes the two files into `out`; returns what it wrote, for a person. */
export async function writeMosquittoConfig(o: MosquittoConfigOptions): Promise<string> {
  const file = await readRegistryFile(o.registry);
  const secrets = await readSecrets(o.secrets);
  const pluginPath = o.plugin ?? findDynsecPlugin();
  if (!pluginPath) {
    throw new ConfigError(
      "mosquitto_dynamic_security.so not found in the usual places (apt-get install mosquitto); name it with --plugin",
    );
  }
  if (o.verify !== false) await verifySecrets(Registry.parse(file, o.registry), secrets, o.secrets);
  const { config, missing } = dynsecConfig(file, secrets);
  const out = resolve(o.out);
  await mkdir(out, { recursive: true });
  const dynsecPath = resolve(out, "dynamic-security.json");
  const confPath = resolve(out, "mosquitto.conf");
  // Hashes, not secrets, but still nobody else's business: Mosquitto's user must be able to read it.
  await writeFile(dynsecPath, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  await writeFile(
    confPath,
    mosquittoConf({ port: o.port, host: o.host ?? "127.0.0.1", pluginPath, dynsecPath, source: resolve(o.registry) }),
  );
  if (missing.length > 0) {
    process.stderr.write(
      `paylane-gateway mosquitto-config: ${missing.length} identities have no secret in ${o.secrets} and cannot connect to this Mosquitto: ${missing.join(", ")}\n`,
    );
  }
  const count = (prefix: string) => config.clients.filter((c) => c.roles[0]?.rolename.startsWith(prefix)).length;
  return (
    `wrote ${confPath}\n` +
    `wrote ${dynsecPath} (${count("device:")} devices, ${count("service:")} services, ${count("operator:")} operators)\n` +
    `run: mosquitto -c ${confPath}\n`
  );
}

async function readSecrets(path: string): Promise<Record<string, string>> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, "utf8"));
  } catch (err) {
    throw new ConfigError(`--secrets ${path}: ${(err as Error).message}`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new ConfigError(`--secrets ${path}: expected a JSON object {"<username>": "<secret>"}`);
  }
  const bad = Object.entries(json).find(([, v]) => typeof v !== "string");
  if (bad) throw new ConfigError(`--secrets ${path}: the secret of ${bad[0]} is not a string`);
  return json as Record<string, string>;
}

/** Every secret given must open its registry entry: a stale one would make a login that cannot work. */
async function verifySecrets(registry: Registry, secrets: Record<string, string>, path: string): Promise<void> {
  const wrong: string[] = [];
  await Promise.all(
    Object.entries(secrets).map(async ([username, secret]) => {
      if (registry.secretHashOf(username) === undefined) return;
      if (!(await registry.authenticate(username, secret))) wrong.push(username);
    }),
  );
  if (wrong.length > 0) {
    throw new ConfigError(
      `--secrets ${path}: the secret of ${wrong.sort().join(", ")} does not match the registry's hash (a rotated secret?)`,
    );
  }
}
