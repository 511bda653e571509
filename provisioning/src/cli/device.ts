/**
 * `paylane-provision device list|revoke|rotate`: the rest of a kiosk's life.
 * Revoking removes its identity from the registry the gateway and cloud
 * watch, so its session is closed within a second and it cannot reconnect;
 * rotating asks the kiosk, over its live session, to make new credentials.
 */
import { ID_PATTERN } from "@paylane/protocol";
import { type Command, InvalidArgumentError } from "commander";
import { callCloud, resolveLogin } from "../cloud/admin-client.ts";
import { siteId, table } from "./claim.ts";
import { withCloudLogin } from "./login-options.ts";

interface LoginOptions {
  cloudUrl?: string;
  tokenFile?: string;
  ca?: string;
}

/** `site/device`, as every fleet tool writes a kiosk. */
export function kioskAddress(value: string): { site: string; device: string } {
  const [site, device, ...rest] = value.split("/");
  if (!site || !device || rest.length || !ID_PATTERN.test(site) || !ID_PATTERN.test(device))
    throw new InvalidArgumentError(`expected a kiosk as site/device, e.g. demo/kiosk-1, got ${JSON.stringify(value)}`);
  return { site, device };
}

/** One device as the cloud lists it; fields the cloud does not send stay blank. */
type DeviceRow = Record<string, unknown>;
const text = (v: unknown): string => (v === null || v === undefined ? "" : String(v));

export function deviceCommands(program: Command): void {
  const device = program.command("device").description("Enrolled kiosks: list, revoke, rotate credentials.");

  withCloudLogin(
    device
      .command("list")
      .description("The kiosks of a site (or every site the token sees): enrolment, key fingerprint, online.")
      .option("--site <id>", "one site", siteId)
      .option("--json", "one JSON object on stdout", false),
  ).action(async (o: LoginOptions & { site?: string; json: boolean }) => {
    const login = await resolveLogin(o);
    const query = o.site ? `?site=${encodeURIComponent(o.site)}` : "";
    const { items } = await callCloud<{ items: DeviceRow[] }>(login, "GET", `/api/v1/devices${query}`);
    if (o.json) {
      process.stdout.write(`${JSON.stringify({ items })}\n`);
      return;
    }
    if (items.length === 0) {
      process.stdout.write(`no kiosks${o.site ? ` at site ${o.site}` : ""}\n`);
      return;
    }
    const rows = items.map((d) => [
      `${text(d.site)}/${text(d.device ?? d.id)}`,
      text(d.state ?? (d.online === true ? "online" : d.online === false ? "offline" : "")),
      text(d.enrolledAt),
      text(d.fingerprint ?? d.keyFingerprint),
      d.revokedAt ? `revoked ${text(d.revokedAt)}` : "",
    ]);
    process.stdout.write(`${table(["KIOSK", "STATE", "ENROLLED", "KEY", "NOTE"], rows)}\n`);
  });

  withCloudLogin(
    device
      .command("revoke")
      .description(
        "Revokes a kiosk: its identity leaves the registry, its broker session is closed and it cannot reconnect. " +
          "To bring it back, enrol it again with a new claim code.",
      )
      .argument("<kiosk>", "site/device", kioskAddress),
  ).action(async (kiosk: { site: string; device: string }, o: LoginOptions) => {
    const login = await resolveLogin(o);
    await callCloud(login, "POST", `/api/v1/devices/${kiosk.site}/${kiosk.device}/revoke`, {});
    process.stdout.write(`revoked ${kiosk.site}/${kiosk.device}: its session is closed and its credentials refused\n`);
  });

  withCloudLogin(
    device
      .command("rotate")
      .description(
        "Asks a kiosk, over its live session, to make new credentials and register them; it reconnects with them " +
          "and the old ones stop working. An offline kiosk does it when it comes back (until the command expires).",
      )
      .argument("<kiosk>", "site/device", kioskAddress),
  ).action(async (kiosk: { site: string; device: string }, o: LoginOptions) => {
    const login = await resolveLogin(o);
    const answer = await callCloud<Record<string, unknown>>(
      login,
      "POST",
      `/api/v1/devices/${kiosk.site}/${kiosk.device}/rotate`,
      {},
    );
    const status = text(answer.status) || "sent";
    process.stdout.write(
      `rotation of ${kiosk.site}/${kiosk.device}: ${status}${answer.id ? ` (command ${text(answer.id)})` : ""}\n`,
    );
  });
}
