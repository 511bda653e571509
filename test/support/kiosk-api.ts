/**
 * Calls a kiosk's local API the way a tool on the kiosk does (`npm run tap`,
 * diagnostics): JSON, with this boot's token from `<dataDir>/local-api-token`.
 */
import { readLocalApiToken } from "../../device/src/local-api-token.ts";

/** POST `body` as JSON to the kiosk on `port` whose data folder is `dataDir`. */
export async function kioskPost(port: number, dataDir: string, path: string, body: unknown = {}): Promise<Response> {
  return fetch(`http://127.0.0.1:${port}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${await readLocalApiToken(dataDir)}` },
    body: JSON.stringify(body),
  });
}
