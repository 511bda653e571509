/**
 * GET /status: the kiosk's health on one page for a technician standing at
 * it (no tools, a browser on the service laptop): delivery, journal backlog
 * and its oldest entry's age, storage, and each peripheral. The same facts as
 * /healthz, which stays the machine-readable one.
 */
import { html, raw } from "hono/html";
import type { HtmlEscapedString } from "hono/utils/html";

export interface StatusFacts {
  site: string;
  device: string;
  /** Rows of label and value, in order; nested objects are shown as compact JSON. */
  rows: Array<[string, unknown]>;
}

function show(value: unknown): string {
  if (value === null || value === undefined) return "—";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

export function statusPage(f: StatusFacts): HtmlEscapedString | Promise<HtmlEscapedString> {
  const rows = f.rows.map(([label, value]) => html`<tr><th>${label}</th><td>${show(value)}</td></tr>`);
  return html`<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta http-equiv="refresh" content="5" />
    <title>PayLane kiosk ${f.site}/${f.device}: status</title>
    <style>
      ${raw("body{font:16px system-ui,sans-serif;margin:1.5rem}th{text-align:left;padding:.3rem 1rem .3rem 0;vertical-align:top}td{font-family:ui-monospace,monospace;word-break:break-all}")}
    </style>
  </head>
  <body>
    <h1>Kiosk ${f.site}/${f.device}</h1>
    <table>${rows}</table>
  </body>
</html>`;
}
