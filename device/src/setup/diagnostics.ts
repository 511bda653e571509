/**
 * The checks a technician needs at first boot (setup-api.ts Diagnostics):
 * is the reader there, the printer and its paper, the GPIO, can the cloud be
 * reached, is the clock right. Each answers with one line, never throws.
 */
import { execFile } from "node:child_process";
import type { DiagnosticCheck, Diagnostics } from "@paylane/protocol/setup-api";
import type { DeviceConfig, KioskFile } from "../config.ts";
import type { Peripherals, PeripheralsHealth } from "../peripherals.ts";
import { assertSafeCloudUrl, cloudRequest } from "./cloud-request.ts";

/** A clock further than this from the cloud's is reported (the cloud refuses enrolment at 600 s). */
export const CLOCK_TOLERANCE_MS = 60_000;

export interface DiagnosticsOptions {
  config: KioskFile | DeviceConfig;
  peripherals: Peripherals;
  ca?: string;
  now: () => Date;
  /** `timedatectl show -p NTPSynchronized --value`; undefined where there is no timedatectl (tests inject). */
  ntpSynchronized?: () => Promise<boolean | undefined>;
}

function paperOf(paper: string): "ok" | "low" | "out" | "unknown" {
  return paper === "near-end" ? "low" : paper === "ok" || paper === "out" ? paper : "unknown";
}

/** systemd's view of NTP, where there is one. */
export function timedatectlSynchronized(): Promise<boolean | undefined> {
  return new Promise((resolve) => {
    execFile("timedatectl", ["show", "-p", "NTPSynchronized", "--value"], { timeout: 2000 }, (err, stdout) => {
      if (err) return resolve(undefined);
      const v = stdout.trim();
      resolve(v === "yes" ? true : v === "no" ? false : undefined);
    });
  });
}

export async function runDiagnostics(o: DiagnosticsOptions): Promise<Diagnostics> {
  const health = o.peripherals.health();
  const r = health.reader;
  const reader: DiagnosticCheck = { ok: r.state === "ok", detail: readerDetail(o.config.reader, r) };
  const p = health.printer;
  const printer: Diagnostics["printer"] =
    p === null
      ? { ok: true, detail: "no printer configured (receipts are shown as a QR code)", paper: "unknown" }
      : {
          ok: p.state === "ok" && p.paper !== "out",
          detail:
            p.state === "disconnected"
              ? `${p.type} printer not found${p.lastError ? `: ${p.lastError}` : ""}`
              : `${p.type} printer ${p.state}, paper ${p.paper}`,
          paper: paperOf(p.paper),
        };
  const g = health.gpio;
  const gpio: DiagnosticCheck =
    g === null
      ? { ok: true, detail: "no GPIO configured" }
      : {
          ok: g.state === "ok",
          detail: `${g.backend} ${g.state}${g.lastError ? `: ${g.lastError}` : ""}; roles: ${Object.keys(g.roles).join(", ") || "none"}`,
        };
  const { cloud, clock } = await cloudAndClock(o);
  return { reader, printer, gpio, cloud, clock, at: o.now().toISOString() };
}

/** One GET of the cloud's /healthz: whether it answers, and how far its Date header is from this clock. */
async function cloudAndClock(o: DiagnosticsOptions): Promise<{ cloud: DiagnosticCheck; clock: DiagnosticCheck }> {
  const ntp = await (o.ntpSynchronized ?? timedatectlSynchronized)();
  const ntpLine = ntp === undefined ? "" : ntp ? "; NTP synchronised" : "; NTP not synchronised";
  let cloud: DiagnosticCheck;
  let skewMs: number | undefined;
  try {
    const url = new URL("/healthz", assertSafeCloudUrl(o.config.cloudUrl));
    const started = Date.now();
    const res = await cloudRequest("GET", url, undefined, { ca: o.ca, timeoutMs: 5000 });
    const ms = Date.now() - started;
    cloud = {
      ok: res.status >= 200 && res.status < 300,
      detail: `${url.host} answered ${res.status} in ${ms} ms`,
    };
    const date = typeof res.headers.date === "string" ? Date.parse(res.headers.date) : Number.NaN;
    if (!Number.isNaN(date)) skewMs = o.now().getTime() - date;
  } catch (err) {
    cloud = { ok: false, detail: (err as Error).message };
  }
  let clock: DiagnosticCheck;
  if (skewMs !== undefined) {
    // The Date header has whole seconds: a second either way is the header's, not the clock's.
    const off = Math.abs(skewMs) <= 1000 ? 0 : skewMs;
    clock = {
      ok: Math.abs(off) <= CLOCK_TOLERANCE_MS && ntp !== false,
      detail:
        off === 0
          ? `in step with the cloud${ntpLine}`
          : `${Math.round(Math.abs(off) / 1000)} s ${off > 0 ? "ahead of" : "behind"} the cloud${ntpLine}`,
    };
  } else {
    clock = {
      ok: ntp === true,
      detail: `not compared with the cloud (unreachable)${ntpLine || "; no timedatectl to ask"}`,
    };
  }
  return { cloud, clock };
}

/** What the installer reads on the setup screen: which reader, where, and what to check when it is not there. */
function readerDetail(config: DeviceConfig["reader"], r: PeripheralsHealth["reader"]): string {
  if (config.type === "pcsc") {
    const name = r.name ? ` "${r.name}"` : "";
    if (r.state === "disconnected") {
      return `no PC/SC reader${config.reader ? ` matching "${config.reader}"` : ""}: ${r.reason ?? "check its USB cable, then pcsc_scan"}`;
    }
    return `PC/SC reader${name}${r.state === "degraded" ? `, degraded${r.reason ? `: ${r.reason}` : ""}` : ""}`;
  }
  const where = config.type === "pn532" ? ` on ${config.path}` : "";
  if (r.state === "disconnected")
    return `no PN532 answers${where}: check its cable and that the serial port is enabled`;
  return `PN532${r.firmware ? ` v${r.firmware}` : ""}${r.simulated ? " (simulated)" : where}${r.state === "degraded" ? ", degraded" : ""}`;
}
