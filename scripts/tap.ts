/**
 * `npm run tap -- --kiosk k1 --uid 04A2B3C4`: taps a card on a running kiosk's
 * simulated reader. The kiosk's local API wants this boot's token, which the
 * daemon writes to `<kiosk dataDir>/local-api-token` (readable by its user only).
 */
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { ID_PATTERN } from "@paylane/protocol";
import { ConfigError, createCommand, environmentHelp, oneLine, parseEnv } from "@paylane/protocol/service";
import { InvalidArgumentError } from "commander";
import { z } from "zod";
import { readLocalApiToken } from "../device/src/local-api-token.ts";

const TapEnvSchema = z.object({
  PAYLANE_DATA: z.string().default(".paylane").describe("where `npm start` keeps the site (site.json, kiosks/<id>)"),
});

/** What `npm start` writes to <PAYLANE_DATA>/site.json that tap needs: each kiosk's local API URL. */
const SiteFileSchema = z.object({ kiosks: z.record(z.string(), z.string()) });

const kioskId = (value: string): string => {
  if (!ID_PATTERN.test(value)) throw new InvalidArgumentError("expected a kiosk id such as k1");
  return value;
};
const httpUrl = (value: string): string => {
  if (!URL.canParse(value) || !/^https?:$/.test(new URL(value).protocol)) {
    throw new InvalidArgumentError("expected an http:// URL such as http://127.0.0.1:8081");
  }
  return value;
};

const program = createCommand({
  name: "npm run tap --",
  packageJson: new URL("../device/package.json", import.meta.url),
  description:
    "Taps a card on a running kiosk's simulated reader (a kiosk configured with reader.type pn532-simulator, " +
    "as under npm start) and prints what the kiosk decided.",
  helpCommand: "npm run tap -- --help",
  errorPrefix: "tap:",
  sections: [{ title: "Environment", body: environmentHelp(TapEnvSchema) }],
  examples: [
    { command: "npm run tap -- --kiosk k1 --uid 04A2B3C4", does: "Ada taps at kiosk k1 of the site npm start runs" },
    {
      command: "npm run tap -- --uid 04A2B3C4 --url http://127.0.0.1:8081 --data-dir /var/lib/paylane",
      does: "a kiosk started by hand",
    },
  ],
})
  .option("-k, --kiosk <id>", "the kiosk", kioskId, "k1")
  .option("-u, --uid <hex>", "the card's UID, 8, 14 or 20 hex digits (required)")
  .option("--url <url>", "the kiosk's local API (default: from the running site)", httpUrl)
  .option("--data-dir <dir>", "the kiosk's dataDir, where its local API token is (default: the site's)");

interface TapOptions {
  kiosk: string;
  uid?: string;
  url?: string;
  dataDir?: string;
}

async function siteKioskUrl(siteDir: string, kiosk: string): Promise<string> {
  const sitePath = join(siteDir, "site.json");
  let text: string;
  try {
    text = await readFile(sitePath, "utf8");
  } catch {
    throw new ConfigError(
      `PAYLANE_DATA: no running site in ${siteDir} (no site.json); start one with npm start, or pass --url`,
    );
  }
  const site = SiteFileSchema.safeParse(JSON.parse(text));
  if (!site.success) throw new Error(`${sitePath} is not a site file written by npm start`);
  const url = site.data.kiosks[kiosk];
  if (!url)
    throw new ConfigError(`--kiosk: no kiosk ${kiosk}; this site has ${Object.keys(site.data.kiosks).join(", ")}`);
  return url;
}

async function main(): Promise<number> {
  program.parse();
  const o = program.opts<TapOptions>();
  // Not a commander requiredOption: that check comes first, and would hide a mistyped flag behind it.
  if (!o.uid) throw new ConfigError("missing --uid: the card's UID, e.g. --uid 04A2B3C4 (see npm run tap -- --help)");
  const env = parseEnv(TapEnvSchema, process.env);
  const siteDir = resolve(env.PAYLANE_DATA);
  const base = o.url ?? (await siteKioskUrl(siteDir, o.kiosk));
  // npm start keeps each kiosk's data in <PAYLANE_DATA>/kiosks/<kiosk>.
  const token = await readLocalApiToken(o.dataDir ?? join(siteDir, "kiosks", o.kiosk));
  let res: Response;
  try {
    res = await fetch(new URL("/api/sim/tap", base), {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ uid: o.uid }),
    });
  } catch (err) {
    throw new Error(`kiosk ${o.kiosk} at ${base} is not answering: ${oneLine(err)}`);
  }
  const body = (await res.json()) as { message?: string; detail?: string; outcome?: string };
  if (!res.ok) {
    console.error(`tap: kiosk ${o.kiosk} refused the tap: ${body.detail ?? res.status}`);
    return 2;
  }
  console.log(`${o.kiosk}: ${body.message} (${body.outcome})`);
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(`tap: ${oneLine(err)}`);
    process.exitCode = 2;
  },
);
