/**
 * `paylane-sim printer --link <path> [--paper ok|low|out]`: an ESC/POS
 * receipt printer (TM-T20 class: 80 mm, 48 columns in font A) on a
 * pseudo-terminal, for the kiosk daemon or any ESC/POS encoder. Prints each
 * receipt as readable text — **bold**, __underline__, <2x2>size</2x2>,
 * <inverse>…</inverse>, <font B>…</font>, [barcode CODE128 "…"], [QR "…"],
 * [image 384×120] — and answers DLE EOT / GS r status queries (one line each).
 * A line on stdin changes the roll while it runs:
 *
 *   paper ok | paper low | paper out
 *
 * If the pty goes away under us (socat ends when the last tool closes its
 * end), it is made again at the same path.
 */
import { createInterface } from "node:readline";
import type { PaperStatus } from "../hardware/printer/escpos.ts";
import { type PrintedItem, type PrintedLine, PrinterSimulator, type StyledRun } from "../hardware/printer/simulator.ts";
import { servePty } from "./link.ts";
import type { PrinterSimOptions } from "./main.ts";

export const STDIN_HELP = "type `paper ok`, `paper low` or `paper out` to change the roll";
/** A TM-T20-class 80 mm printer, as the --help text says. */
const COLUMNS = 48;

const PAPER: Readonly<Record<PrinterSimOptions["paper"], PaperStatus>> = { ok: "ok", low: "near-end", out: "out" };
const PAPER_WORDS: Readonly<Record<PaperStatus, string>> = {
  ok: "paper ok",
  "near-end": "paper low (near end)",
  out: "paper out",
};
/** Quiet time after which printed-but-uncut output is shown (an encoder that never cuts). */
const IDLE_FLUSH_MS = 300;
export async function run(options: PrinterSimOptions, signal: AbortSignal, out: (line: string) => void): Promise<void> {
  const sim = new PrinterSimulator({ columns: COLUMNS });
  sim.setPaper(PAPER[options.paper]);
  let shown = 0;
  let receiptNo = 0;
  const show = (items: readonly PrintedItem[]) => {
    for (const item of items) out(`│${describeItem(item, sim.columns)}`);
  };
  sim.onReceipt((r) => {
    show(r.items.slice(shown));
    shown = 0;
    out(`└── cut: receipt ${++receiptNo} ${"─".repeat(Math.max(0, COLUMNS - 20))}`);
  });
  sim.onStatus((q) => out(`? ${q.command} → 0x${q.reply.toString(16).padStart(2, "0")} (${PAPER_WORDS[sim.paper]})`));
  let idle: NodeJS.Timeout | undefined;
  let dropped = 0;
  const flushSoon = () => {
    clearTimeout(idle);
    idle = setTimeout(() => {
      const items = sim.pending.items;
      show(items.slice(shown));
      shown = items.length;
      // As a real printer would be seen to: with no paper, what was sent is gone, and the user should know.
      if (sim.stats.dropped > dropped) {
        out(`  (${PAPER_WORDS[sim.paper]}: ${sim.stats.dropped - dropped} item(s) not printed)`);
        dropped = sim.stats.dropped;
      }
    }, IDLE_FLUSH_MS);
  };

  const stdin = createInterface({ input: process.stdin, terminal: false });
  stdin.on("line", (text) => {
    const [word = "", arg = ""] = text.trim().toLowerCase().split(/\s+/);
    if (word === "") return;
    if (word === "paper" && (arg === "ok" || arg === "low" || arg === "out")) {
      sim.setPaper(PAPER[arg]);
      out(`  ${PAPER_WORDS[sim.paper]}`);
    } else {
      out(`? ${STDIN_HELP}`);
    }
  });

  try {
    await servePty(options.link, signal, {
      attach: (link) => {
        const detach = sim.attach(link);
        const offData = link.onData(flushSoon);
        return () => {
          offData();
          detach();
        };
      },
      ready: (path, first) =>
        out(
          first
            ? `ESC/POS printer (80 mm, ${COLUMNS} columns) on ${path}, ${PAPER_WORDS[sim.paper]}; ${STDIN_HELP}`
            : `  pty made again at ${path}`,
        ),
      out,
    });
  } finally {
    clearTimeout(idle);
    stdin.close();
    process.stdin.pause();
  }
  out(`stopped; ${options.link} is gone`);
}

/** One printed item as a line of readable text. */
export function describeItem(item: PrintedItem, columns: number): string {
  switch (item.type) {
    case "text":
      return describeLine(item.line, columns);
    case "barcode":
      return `[barcode ${item.symbology} ${JSON.stringify(item.data)}]`;
    case "qr":
      return `[QR ${JSON.stringify(item.data)}]`;
    case "image":
      return item.ref
        ? `[image ${item.ref}${item.width > 0 ? ` ${item.width}×${item.height}` : ""}]`
        : `[image ${item.width}×${item.height}]`;
  }
}

/** The line's runs with their styles marked, placed as its justification puts it on the paper. */
function describeLine(line: PrintedLine, columns: number): string {
  if (line.runs.length === 0) return "";
  const width = line.runs.reduce((w, r) => w + r.text.length * (r.width ?? 1) * (r.font ? 0.75 : 1), 0);
  const free = Math.max(0, Math.floor(columns - width));
  const pad = line.align === "center" ? Math.floor(free / 2) : line.align === "right" ? free : 0;
  return " ".repeat(pad) + line.runs.map(describeRun).join("");
}

function describeRun(run: StyledRun): string {
  let t = run.text;
  if (t.trim() === "") return t;
  if (run.underline) t = `__${t}__`;
  if (run.bold) t = `**${t}**`;
  if (run.inverse) t = `<inverse>${t}</inverse>`;
  if (run.width || run.height) {
    const size = `${run.width ?? 1}x${run.height ?? 1}`;
    t = `<${size}>${t}</${size}>`;
  }
  if (run.font) t = `<font ${run.font}>${t}</font>`;
  return t;
}
