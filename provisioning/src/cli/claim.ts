/**
 * `paylane-provision claim create|list`: single-use claim codes a kiosk
 * enrols with. The cloud keeps only their hash, so the code is shown once,
 * here: as text, as a QR code on the terminal, and as a PNG (mode 0600: it is a
 * credential until used) that a kiosk's barcode scanner or an installer's
 * phone can read.
 */
import { constants } from "node:fs";
import { access, stat, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { DEFAULT_CLAIM_TTL_SECONDS, ID_PATTERN, MAX_CLAIM_TTL_SECONDS } from "@paylane/protocol";
import { type Command, InvalidArgumentError, Option } from "commander";
import QRCode from "qrcode";
import { callCloud, resolveLogin } from "../cloud/admin-client.ts";
import { formatDuration, parseDuration } from "./duration.ts";
import { ProvisionError } from "./errors.ts";
import { withCloudLogin } from "./login-options.ts";

export interface CreatedClaim {
  id: string;
  code: string;
  expiresAt: string;
}

export interface ClaimSummary {
  id: string;
  site: string;
  state: string;
  createdAt: string;
  expiresAt: string;
  createdBy: string;
  usedAt: string | null;
  usedByDevice: string | null;
}

export const siteId = (value: string): string => {
  if (!ID_PATTERN.test(value))
    throw new InvalidArgumentError(`expected a site id: lower-case letters, digits, "-" or "_" (e.g. demo)`);
  return value;
};

const count = (value: string): number => {
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 100)
    throw new InvalidArgumentError("expected how many codes, a whole number from 1 to 100");
  return Number(value);
};

const ttl = (value: string): number => {
  const seconds = parseDuration(value);
  if (seconds < 60 || seconds > MAX_CLAIM_TTL_SECONDS)
    throw new InvalidArgumentError(`expected from 1m to ${formatDuration(MAX_CLAIM_TTL_SECONDS)}`);
  return seconds;
};

interface CreateOptions {
  site: string;
  count: number;
  ttl: number;
  qrDir: string;
  qr: boolean;
  json: boolean;
  cloudUrl?: string;
  tokenFile?: string;
  ca?: string;
}

export function claimCommands(program: Command): void {
  const claim = program
    .command("claim")
    .description("Single-use claim codes that kiosks enrol with (admin operator token).");

  withCloudLogin(
    claim
      .command("create")
      .description(
        "Creates claim codes for a site. Each enrols one kiosk, once, before it expires. Printed with a QR code, and " +
          "written as claim-<site>-<id>.png (mode 0600) into --qr-dir.",
      )
      .requiredOption("--site <id>", "the site the kiosks will belong to", siteId)
      .option("--count <n>", "how many codes (1 to 100)", count, 1)
      .addOption(
        new Option("--ttl <duration>", "how long each code stays valid (e.g. 30m, 24h, 7d)")
          .argParser(ttl)
          .default(DEFAULT_CLAIM_TTL_SECONDS, formatDuration(DEFAULT_CLAIM_TTL_SECONDS)),
      )
      .option("--qr-dir <dir>", "where the PNG QR codes go", ".")
      .option("--no-qr", "no QR codes (terminal or PNG)")
      .option("--json", "one JSON object on stdout (codes included), nothing else", false)
      .addHelpText(
        "after",
        "\nExamples:\n  $ paylane-provision claim create --site demo\n  $ paylane-provision claim create --site demo --count 10 --ttl 7d --qr-dir claims/",
      ),
  ).action(async (o: CreateOptions) => {
    const login = await resolveLogin(o);
    // Checked before the codes exist: a code the cloud made but nobody saw stays valid until it expires.
    if (o.qr && !o.json) await writableFolder(o.qrDir);
    const { claims } = await callCloud<{ claims: CreatedClaim[] }>(login, "POST", "/api/v1/claims", {
      site: o.site,
      count: o.count,
      ttlSeconds: o.ttl,
    });
    if (o.json) {
      process.stdout.write(`${JSON.stringify({ site: o.site, claims })}\n`);
      return;
    }
    const out: string[] = [];
    for (const c of claims) {
      out.push(`claim ${c.id} for site ${o.site}, valid until ${c.expiresAt}:`, "", `    ${c.code}`, "");
      if (o.qr) {
        out.push(await QRCode.toString(c.code, { type: "terminal", small: true, errorCorrectionLevel: "M" }));
        const png = join(resolve(o.qrDir), `claim-${o.site}-${c.id}.png`);
        await writeFile(png, await QRCode.toBuffer(c.code, { errorCorrectionLevel: "M", margin: 2, scale: 8 }), {
          mode: 0o600,
        });
        out.push(`QR code written to ${png}`, "");
      }
    }
    out.push(
      `Bake a code into an image (paylane-provision image build --claim …) or type it on the kiosk's setup screen.`,
      `Each code works once; the cloud keeps only its hash, so keep this output safe until the kiosks are enrolled.`,
    );
    process.stdout.write(`${out.join("\n")}\n`);
  });

  withCloudLogin(
    claim
      .command("list")
      .description("The site's claim codes (never the codes themselves): unused, used by which kiosk, or expired.")
      .requiredOption("--site <id>", "the site", siteId)
      .option("--json", "one JSON object on stdout", false),
  ).action(async (o: { site: string; json: boolean; cloudUrl?: string; tokenFile?: string; ca?: string }) => {
    const login = await resolveLogin(o);
    const { items } = await callCloud<{ items: ClaimSummary[] }>(
      login,
      "GET",
      `/api/v1/claims?site=${encodeURIComponent(o.site)}`,
    );
    if (o.json) {
      process.stdout.write(`${JSON.stringify({ site: o.site, items })}\n`);
      return;
    }
    if (items.length === 0) {
      process.stdout.write(`no claim codes for site ${o.site}\n`);
      return;
    }
    const rows = items.map((c) => [c.id, c.state, c.expiresAt, c.usedByDevice ?? "", c.createdBy]);
    process.stdout.write(`${table(["ID", "STATE", "EXPIRES", "DEVICE", "CREATED BY"], rows)}\n`);
  });
}

async function writableFolder(dir: string): Promise<void> {
  try {
    if (!(await stat(dir)).isDirectory()) throw new Error("not a folder");
    await access(dir, constants.W_OK);
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code === "ENOENT" ? "no such folder" : "not a folder you can write to";
    throw new ProvisionError(`--qr-dir ${dir}: ${why}; nothing was created (make it, or pass --no-qr)`, 2);
  }
}

/** A plain aligned table: what `docker ps`-style listings look like, easy to grep. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}
