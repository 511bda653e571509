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
import { ProvisionError } from "./errors.ts";
import { withCloudLogin } from "./login-options.ts";

/** A command's last word (cloud/src/fleet/commands.ts). */
const SETTLED = new Set(["done", "failed", "expired"]);

const waitSeconds = (value: string): number => {
  if (!/^\d+$/.test(value) || Number(value) > 600)
    throw new InvalidArgumentError("expected whole seconds from 0 to 600");
  return Number(value);
};

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

/** One kiosk as `GET /api/v1/devices` lists it. */
export interface ListedDevice {
  site: string;
  device: string;
  state: string;
  lastSeen: string | null;
  inRegistry: boolean;
  /** null: registered by hand, not through a claim code. */
  enrolment: {
    keyFingerprint: string | null;
    enrolledAt: string;
    rotatedAt: string | null;
    revokedAt: string | null;
  } | null;
}

/** The table `device list` prints: one row a kiosk. */
export function deviceRows(items: readonly ListedDevice[]): string[][] {
  return items.map((d) => {
    const e = d.enrolment;
    const note = e?.revokedAt
      ? `revoked ${e.revokedAt}`
      : !d.inRegistry
        ? "not in the registry"
        : !e
          ? "registered by hand"
          : e.rotatedAt
            ? `rotated ${e.rotatedAt}`
            : "";
    return [`${d.site}/${d.device}`, d.state, e?.enrolledAt ?? "", e?.keyFingerprint ?? "", note];
  });
}

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
    const site = o.site ? `&site=${encodeURIComponent(o.site)}` : "";
    // The fleet overview comes in pages (limit/before → next).
    const items: ListedDevice[] = [];
    for (let before = ""; ; ) {
      const page = await callCloud<{ items: ListedDevice[]; next?: string | null }>(
        login,
        "GET",
        `/api/v1/devices?limit=1000${site}${before ? `&before=${before}` : ""}`,
      );
      items.push(...page.items);
      if (!page.next) break;
      before = page.next;
    }
    if (o.json) {
      process.stdout.write(`${JSON.stringify({ items })}\n`);
      return;
    }
    if (items.length === 0) {
      process.stdout.write(`no kiosks${o.site ? ` at site ${o.site}` : ""}\n`);
      return;
    }
    const rows = deviceRows(items);
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
      .argument("<kiosk>", "site/device", kioskAddress)
      .option("--wait <seconds>", "wait this long for the kiosk to confirm (0: do not wait)", waitSeconds, 30),
  ).action(async (kiosk: { site: string; device: string }, o: LoginOptions & { wait: number }) => {
    const login = await resolveLogin(o);
    const answer = await callCloud<{ commandId: string; command: { status: string } }>(
      login,
      "POST",
      `/api/v1/devices/${kiosk.site}/${kiosk.device}/rotate`,
      {},
    );
    const name = `${kiosk.site}/${kiosk.device}`;
    process.stdout.write(`asked ${name} to rotate its credentials (command ${answer.commandId})\n`);
    if (o.wait === 0) return;
    const deadline = Date.now() + o.wait * 1000;
    let status = answer.command.status;
    while (!SETTLED.has(status) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 500));
      const { items } = await callCloud<{ items: Array<{ id: string; status: string; reason?: string | null }> }>(
        login,
        "GET",
        `/api/v1/devices/${kiosk.site}/${kiosk.device}/commands?limit=20`,
      );
      const mine = items.find((c) => c.id === answer.commandId);
      if (mine && mine.status !== status) {
        status = mine.status;
        process.stdout.write(`  ${status}${mine.reason ? `: ${mine.reason}` : ""}\n`);
        if (status === "failed" || status === "expired")
          throw new ProvisionError(
            `${name} did not rotate its credentials (${status}${mine.reason ? `: ${mine.reason}` : ""})`,
          );
      }
    }
    if (status === "done") process.stdout.write(`${name} now uses new credentials; the old ones are refused\n`);
    else
      process.stdout.write(
        `${name} has not confirmed yet (${status}): an offline kiosk rotates when it is back, until the command expires\n`,
      );
  });
}
