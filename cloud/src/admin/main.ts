#!/usr/bin/env -S npx tsx
/**
 * `paylane-admin`: console operator accounts, straight in the cloud's
 * database (the same DATABASE_URL/DATABASE_SCHEMA or PGLITE_DIR as the
 * cloud). The way to make the first admin of a production cloud; later
 * changes can go through the users API too. A new password, role, site list
 * or a disable ends the account's sessions (every cloud instance refuses
 * their access tokens within seconds).
 *
 * A password is never taken as an argument (it would sit in `ps` and shell
 * history): from a file, from standard input (`--password -`), or generated
 * and printed once.
 */
import { readFile } from "node:fs/promises";
import { CONSOLE_ROLES, type ConsoleRole, PasswordSchema, SiteListSchema, UsernameSchema } from "@paylane/protocol";
import { ConfigError, createCommand, EXIT, oneLine, parseEnv } from "@paylane/protocol/service";
import { type Command, InvalidArgumentError } from "commander";
import { z } from "zod";
import { generatePassword } from "../accounts/password.ts";
import { OperatorStore } from "../accounts/store.ts";
import { CloudEnvSchema } from "../config.ts";
import type { Database } from "../db/database.ts";
import { migrate } from "../db/migrate.ts";
import { openPg } from "../db/pg.ts";
import { openPglite } from "../db/pglite.ts";

export const NAME = "paylane-admin";

// `npm run admin -- …` runs in the repository's top folder; paths typed are relative to where they were typed.
if (process.env.npm_lifecycle_event === "admin" && process.env.INIT_CWD) process.chdir(process.env.INIT_CWD);

const DbEnvSchema = CloudEnvSchema.pick({
  DATABASE_URL: true,
  DATABASE_SCHEMA: true,
  PGLITE_DIR: true,
  DATABASE_QUERY_TIMEOUT_MS: true,
});

const ENVIRONMENT = [
  "  DATABASE_URL      the cloud's Postgres (postgres://…)",
  "  DATABASE_SCHEMA   its schema (default paylane)",
  "  PGLITE_DIR        or the cloud's PGlite folder, when it has no Postgres (npm start: .paylane/cloud-db;",
  "                    stop the cloud first: PGlite is one process's)",
].join("\n");

async function openDb(): Promise<Database> {
  const env = parseEnv(DbEnvSchema, process.env);
  if (!env.DATABASE_URL && !env.PGLITE_DIR) {
    throw new ConfigError(
      "DATABASE_URL or PGLITE_DIR: set one, as for the cloud (an account in a database of its own would be forgotten at exit)",
    );
  }
  const db = env.DATABASE_URL
    ? await openPg({
        url: env.DATABASE_URL,
        schema: env.DATABASE_SCHEMA,
        queryTimeoutMs: env.DATABASE_QUERY_TIMEOUT_MS,
        max: 2,
      })
    : await openPglite(env.PGLITE_DIR);
  try {
    await migrate(db);
  } catch (err) {
    await db.close();
    throw err;
  }
  return db;
}

async function withStore<T>(fn: (store: OperatorStore) => Promise<T>): Promise<T> {
  const db = await openDb();
  try {
    return await fn(new OperatorStore({ db }));
  } finally {
    await db.close();
  }
}

const username = (value: string): string => {
  const parsed = UsernameSchema.safeParse(value);
  if (!parsed.success) throw new InvalidArgumentError(`${parsed.error.issues[0]?.message}`);
  return parsed.data;
};
const role = (value: string): ConsoleRole => {
  const parsed = z.enum(CONSOLE_ROLES).safeParse(value);
  if (!parsed.success) throw new InvalidArgumentError(`expected one of ${CONSOLE_ROLES.join(", ")}`);
  return parsed.data;
};
const site = (value: string, previous: string[] = []): string[] => {
  const parsed = SiteListSchema.safeParse([value]);
  if (!parsed.success) throw new InvalidArgumentError(`expected a site id: lower-case letters, digits, "-" or "_"`);
  return [...previous, value];
};

interface PasswordOptions {
  password?: string;
  passwordFile?: string;
}

/** The password from --password-file or standard input; undefined: generate one. */
async function readPassword(o: PasswordOptions): Promise<string | undefined> {
  if (o.password !== undefined && o.passwordFile !== undefined) {
    throw new ConfigError("--password and --password-file: give one of them");
  }
  let raw: string;
  if (o.passwordFile !== undefined) raw = await readFile(o.passwordFile, "utf8");
  else if (o.password === "-") raw = await readStdin();
  else if (o.password !== undefined) {
    throw new ConfigError("--password: only - (read it from standard input); a password typed here would show in ps");
  } else return undefined;
  const password = raw.replace(/\r?\n$/, "");
  const parsed = PasswordSchema.safeParse(password);
  if (!parsed.success) throw new ConfigError(`password: ${parsed.error.issues[0]?.message}`);
  return password;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

const sitesText = (sites: string[] | null) => (sites === null ? "every site" : `sites ${sites.join(", ")}`);

function passwordOptions(cmd: Command): Command {
  return cmd
    .option("--password <->", "read the password from standard input (only -)")
    .option("--password-file <file>", "read the password from a file (its first line)");
}

const program = createCommand({
  name: NAME,
  packageJson: new URL("../../package.json", import.meta.url),
  description:
    "Manages the console's operator accounts in the cloud's database: add, new password, role and sites, " +
    "disable and enable, list (docs/console-accounts.md).",
  errorPrefix: `${NAME}:`,
  sections: [
    { title: "Environment", body: ENVIRONMENT },
    { title: "Roles", body: "  viewer · operator · finance · admin (docs/console-accounts.md)" },
    { title: "Exit codes", body: "  0 done · 1 failed · 2 bad usage (nothing was changed)" },
  ],
  examples: [
    {
      command: `DATABASE_URL=postgres://db/paylane ${NAME} user add alice --role admin`,
      does: "the first admin of a production cloud, with a generated password printed once",
    },
    {
      command: `${NAME} user add bob --role operator --site demo --password-file bob.txt`,
      does: "an operator of site demo, the password from a file",
    },
    { command: `printf %s "$PW" | ${NAME} user passwd bob --password -`, does: "a new password from standard input" },
    { command: `${NAME} user role bob finance --all-sites`, does: "bob moves to finance for every site" },
    { command: `${NAME} user disable bob`, does: "bob can no longer log in; his sessions end" },
  ],
});

const user = program.command("user").description("Operator accounts.");

passwordOptions(
  user
    .command("add")
    .description("Adds an account. Without --password or --password-file, a password is generated and printed once.")
    .argument("<username>", "2-64 of a-z 0-9 . _ @ -", username)
    .requiredOption("--role <role>", `one of ${CONSOLE_ROLES.join(", ")}`, role)
    .option("--site <site>", "a site the account may touch (repeat for several; none: every site)", site),
).action(async (name: string, o: PasswordOptions & { role: ConsoleRole; site?: string[] }) => {
  const given = await readPassword(o);
  const password = given ?? generatePassword();
  const account = await withStore((s) => s.create({ username: name, password, role: o.role, sites: o.site ?? null }));
  console.log(`added ${account.username}: ${account.role} of ${sitesText(account.sites)}`);
  if (!given) console.log(`password: ${password}\n(shown once: give it to ${account.username} now)`);
});

passwordOptions(
  user
    .command("passwd")
    .description(
      "Sets a new password and ends the account's sessions. Without a password option, one is generated and printed once.",
    )
    .argument("<username>", "the account", username),
).action(async (name: string, o: PasswordOptions) => {
  const given = await readPassword(o);
  const password = given ?? generatePassword();
  const { revoked } = await withStore((s) => s.update(name, { password }));
  console.log(`new password for ${name}; ${sessionsEnded(revoked)}`);
  if (!given) console.log(`password: ${password}\n(shown once: give it to ${name} now)`);
});

user
  .command("role")
  .description("Changes an account's role and, with --site or --all-sites, its sites; ends its sessions.")
  .argument("<username>", "the account", username)
  .argument("<role>", `one of ${CONSOLE_ROLES.join(", ")}`, role)
  .option("--site <site>", "the sites it may touch from now (repeat for several)", site)
  .option("--all-sites", "every site")
  .action(async (name: string, r: ConsoleRole, o: { site?: string[]; allSites?: boolean }) => {
    if (o.site && o.allSites) throw new ConfigError("--site and --all-sites: give one of them");
    const sites = o.allSites ? null : o.site;
    const { account, revoked } = await withStore((s) =>
      s.update(name, { role: r, ...(sites !== undefined ? { sites } : {}) }),
    );
    console.log(`${account.username}: ${account.role} of ${sitesText(account.sites)}; ${sessionsEnded(revoked)}`);
  });

user
  .command("disable")
  .description("Refuses the account's logins and ends its sessions.")
  .argument("<username>", "the account", username)
  .action(async (name: string) => {
    const { revoked } = await withStore((s) => s.update(name, { disabled: true }));
    console.log(`${name} disabled; ${sessionsEnded(revoked)}`);
  });

user
  .command("enable")
  .description("Lets a disabled account log in again (with its password).")
  .argument("<username>", "the account", username)
  .action(async (name: string) => {
    await withStore((s) => s.update(name, { disabled: false }));
    console.log(`${name} enabled`);
  });

user
  .command("list")
  .description("Every account: role, sites, state, last login.")
  .option("--json", "as JSON")
  .action(async (o: { json?: boolean }) => {
    const accounts = await withStore((s) => s.list());
    if (o.json) {
      console.log(JSON.stringify(accounts, null, 2));
      return;
    }
    if (accounts.length === 0) {
      console.log(`no accounts yet (${NAME} user add <username> --role admin)`);
      return;
    }
    const rows = accounts.map((a) => [
      a.username,
      a.role,
      a.sites === null ? "*" : a.sites.join(","),
      a.disabled ? "disabled" : "enabled",
      a.lastLoginAt ?? "never",
    ]);
    const header = ["USERNAME", "ROLE", "SITES", "STATE", "LAST LOGIN"];
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    for (const r of [header, ...rows])
      console.log(
        r
          .map((v, i) => v.padEnd(widths[i]!))
          .join("  ")
          .trimEnd(),
      );
  });

function sessionsEnded(n: number): string {
  return n === 0 ? "no session was open" : `${n} session${n === 1 ? "" : "s"} ended`;
}

program.parseAsync().catch((err: unknown) => {
  const usage = err instanceof ConfigError;
  process.stderr.write(`${NAME}: ${oneLine(err)}${usage ? ` (see ${NAME} --help)` : ""}\n`);
  process.exitCode = usage ? EXIT.usage : EXIT.failed;
});
