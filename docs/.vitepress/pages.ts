/**
 * The sidebar is derived from the Markdown files that exist, not from a list
 * that must be kept in step with them: every page under docs/ shows up (a page
 * not in SECTIONS lands in "More"), and a page named in SECTIONS that does not
 * exist yet is left out instead of breaking the build.
 */
import { copyFileSync, mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, extname, join, relative, sep } from "node:path";

/** Sections in sidebar order; within a section, pages in the order listed (paths relative to docs/, no ".md"). */
export const SECTIONS: readonly { text: string; pages: readonly string[] }[] = [
  { text: "Start here", pages: ["index", "getting-started", "architecture", "services", "algorithms"] },
  {
    text: "The kiosk",
    pages: ["kiosk-config", "hardware", "payments", "status"],
  },
  {
    text: "Installers",
    pages: ["installers-guide", "install", "kiosk-image", "image-and-flash", "enrolment", "kiosk-updates"],
  },
  {
    text: "Operations",
    pages: [
      "operations",
      "metrics",
      "alerts",
      "operators",
      "commands",
      "telemetry",
      "fleet-console",
      "dashboard",
      "ops-cli",
      "node-red",
    ],
  },
  {
    text: "APIs",
    pages: [
      "api",
      "reference/index",
      "reference/http-api",
      "reference/mqtt-api",
      "graphql",
      "live-feed",
      "console-accounts",
    ],
  },
  { text: "Security", pages: ["security"] },
  { text: "Offline mode and disaster recovery", pages: ["durability", "conflicts", "disaster-recovery"] },
  {
    text: "Deploy and scale",
    pages: ["containers", "kubernetes", "scale-gateways", "scale-bridges", "scale-api", "partitioning"],
  },
  { text: "Due diligence", pages: ["due-diligence"] },
];

export interface DocPage {
  /** path relative to docs/ without ".md", with "/" separators: "reference/mqtt-api" */
  path: string;
  title: string;
}

const SKIP_DIRS = new Set([".vitepress", "node_modules", "public", "img"]);

/** Every Markdown page under `srcDir` (recursively, skipping .vitepress, public and img), sorted by path. */
export function listPages(srcDir: string): DocPage[] {
  const out: DocPage[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const full = join(dir, name);
      if (statSync(full).isDirectory()) {
        if (!SKIP_DIRS.has(name) && !name.startsWith(".")) walk(full);
      } else if (name.endsWith(".md")) {
        const path = relative(srcDir, full).split(sep).join("/").replace(/\.md$/, "");
        out.push({ path, title: pageTitle(readFileSync(full, "utf8"), path) });
      }
    }
  };
  walk(srcDir);
  return out;
}

/** The frontmatter `title`, else the first `# ` heading without Markdown code marks, else the file name. */
export function pageTitle(source: string, path: string): string {
  const front = /^---\n([\s\S]*?)\n---/.exec(source)?.[1];
  const fromFront = front && /^title:\s*["']?(.+?)["']?\s*$/m.exec(front)?.[1];
  if (fromFront) return fromFront;
  // a `# ` inside a fenced code block is a shell comment, not a title
  const body = source.replace(/^```[\s\S]*?^```/gm, "");
  const heading = /^# (.+)$/m.exec(body)?.[1];
  if (heading) return heading.replace(/`/g, "").trim();
  return path.split("/").pop()!;
}

/** The site link of a page path: "/" for the home page, "/reference/" for a folder's index, "/reference/mqtt-api" otherwise. */
export function pageLink(path: string): string {
  if (path === "index") return "/";
  if (path.endsWith("/index")) return `/${path.slice(0, -"index".length)}`;
  return `/${path}`;
}

export interface SidebarGroup {
  text: string;
  collapsed: boolean;
  items: { text: string; link: string }[];
}

/** The sidebar groups for the pages present: SECTIONS' order, then every other page in "More". */
export function sidebarFor(pages: readonly DocPage[]): SidebarGroup[] {
  const byPath = new Map(pages.map((p) => [p.path, p]));
  const placed = new Set<string>();
  const groups: SidebarGroup[] = [];
  const item = (p: DocPage) => ({ text: p.path === "index" ? "Overview" : p.title, link: pageLink(p.path) });
  for (const section of SECTIONS) {
    const items = section.pages.flatMap((path) => {
      const page = byPath.get(path);
      if (!page) return [];
      placed.add(path);
      return [item(page)];
    });
    if (items.length > 0) groups.push({ text: section.text, collapsed: false, items });
  }
  const rest = pages.filter((p) => !placed.has(p.path));
  if (rest.length > 0) groups.push({ text: "More", collapsed: false, items: rest.map(item) });
  return groups;
}

/** Files beside the pages that pages link to for download (the generated AsyncAPI and OpenAPI documents). */
const DOWNLOADS = new Set([".yaml", ".yml", ".json"]);

/**
 * Copies every downloadable file under `srcDir` (see DOWNLOADS; .vitepress, public and img skipped) to the
 * same place in `outDir`: VitePress copies only what a page imports and what is in public/, so a link such as
 * `[asyncapi.yaml](./asyncapi.yaml)` would otherwise be dead on the site. Returns the paths copied.
 */
export function copyDownloads(srcDir: string, outDir: string): string[] {
  const copied: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const full = join(dir, name);
      if (statSync(full).isDirectory()) {
        if (!SKIP_DIRS.has(name) && !name.startsWith(".")) walk(full);
      } else if (DOWNLOADS.has(extname(name))) {
        const rel = relative(srcDir, full);
        mkdirSync(dirname(join(outDir, rel)), { recursive: true });
        copyFileSync(full, join(outDir, rel));
        copied.push(rel.split(sep).join("/"));
      }
    }
  };
  walk(srcDir);
  return copied;
}
