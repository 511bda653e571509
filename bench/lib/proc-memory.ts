/** A process's memory as the kernel counts it, from /proc (Linux only). */
import { readdirSync, readFileSync } from "node:fs";

export interface ProcMemory {
  /** Resident set size now, KiB (VmRSS). */
  rssKb: number;
  /** Of it, anonymous memory: the process's own (heaps, stacks), KiB (RssAnon). */
  anonKb: number;
  /**
   * Of it, mapped files, KiB (RssFile): mostly the node binary's pages, which
   * are clean, shared with every other Node process and dropped under memory pressure.
   */
  fileKb: number;
  /** The most it was ever resident, KiB (VmHWM). */
  peakKb: number;
}

/** VmRSS and VmHWM of `pid`; undefined once it has gone. */
export function procMemory(pid: number): ProcMemory | undefined {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return undefined;
  }
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? Number.NaN);
  return { rssKb: kb("VmRSS"), anonKb: kb("RssAnon"), fileKb: kb("RssFile"), peakKb: kb("VmHWM") };
}

/** Every process whose parent chain leads to `pid` (not `pid` itself), by name. */
export function descendants(pid: number): { pid: number; comm: string }[] {
  const parents = new Map<number, { ppid: number; comm: string }>();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      // comm may hold spaces or parentheses: the fields after the last ')' are fixed
      const close = stat.lastIndexOf(")");
      const ppid = Number(stat.slice(close + 2).split(" ")[1]);
      parents.set(Number(d), { ppid, comm: stat.slice(stat.indexOf("(") + 1, close) });
    } catch {
      // it exited while we looked
    }
  }
  const out: { pid: number; comm: string }[] = [];
  const walk = (parent: number) => {
    for (const [child, p] of parents) {
      if (p.ppid !== parent) continue;
      out.push({ pid: child, comm: p.comm });
      walk(child);
    }
  };
  walk(pid);
  return out;
}
