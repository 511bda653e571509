/**
 * `npm run tap -- --kiosk k1 --uid 04A2B3C4`: taps a card on a running kiosk's
 * simulated reader. The kiosk's local API wants this boot's token, which the
 * daemon writes to `<kiosk dataDir>/local-api-token` (readable by its user only).
 */
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { readLocalApiToken } from "../device/src/local-api-token.ts";

const usage =
  "usage: npm run tap -- --kiosk k1 --uid 04A2B3C4  [--url http://127.0.0.1:8081 --data-dir <the kiosk's dataDir>]";

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      kiosk: { type: "string", default: "k1" },
      uid: { type: "string" },
      url: { type: "string" },
      "data-dir": { type: "string" },
    },
    strict: true,
  });
  if (!values.uid) throw new Error(`missing --uid\n${usage}`);
  const siteDir = resolve(process.env.PAYLANE_DATA ?? ".paylane");
  let base = values.url;
  if (!base) {
    const sitePath = join(siteDir, "site.json");
    let site: { kiosks: Record<string, string> };
    try {
      site = JSON.parse(await readFile(sitePath, "utf8"));
    } catch {
      throw new Error(`no running site found (${sitePath}); start one with npm start, or pass --url`);
    }
    base = site.kiosks[values.kiosk];
    if (!base) throw new Error(`no kiosk ${values.kiosk}; this site has ${Object.keys(site.kiosks).join(", ")}`);
  }
  // npm start keeps each kiosk's data in <PAYLANE_DATA>/kiosks/<kiosk>.
  const token = await readLocalApiToken(values["data-dir"] ?? join(siteDir, "kiosks", values.kiosk));
  let res: Response;
  try {
    res = await fetch(new URL("/api/sim/tap", base), {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ uid: values.uid }),
    });
  } catch (err) {
    throw new Error(`kiosk ${values.kiosk} at ${base} is not answering: ${(err as Error).message}`);
  }
  const body = (await res.json()) as { message?: string; detail?: string; outcome?: string };
  if (!res.ok) {
    console.error(`kiosk ${values.kiosk} refused the tap: ${body.detail ?? res.status}`);
    return 2;
  }
  console.log(`${values.kiosk}: ${body.message} (${body.outcome})`);
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(`tap: ${(err as Error).message}`);
    process.exitCode = 2;
  },
);
