/**
 * Scans a built site for internal links that point nowhere: an `<a href>` or
 * `<img src>` to a file the build did not produce, and a `#fragment` that no
 * element of the target page carries as its `id`. VitePress itself fails the
 * build on a link to a missing page but checks no anchors, and nothing written
 * as raw HTML; this reads what a browser will get.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, sep } from "node:path";

export interface DeadLink {
  /** the built file holding the link, relative to outDir: "architecture.html" */
  page: string;
  href: string;
  why: string;
}

const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", "#39": "'" };

function decodeEntities(s: string): string {
  return s.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (whole, name: string) => {
    const known = ENTITIES[name.toLowerCase()];
    if (known !== undefined) return known;
    if (name.startsWith("#x") || name.startsWith("#X")) return String.fromCodePoint(Number.parseInt(name.slice(2), 16));
    if (name.startsWith("#")) return String.fromCodePoint(Number(name.slice(1)));
    return whole;
  });
}

function htmlFiles(dir: string, root = dir): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) out.push(...htmlFiles(full, root));
    else if (name.endsWith(".html")) out.push(relative(root, full).split(sep).join("/"));
  }
  return out;
}

/** The ids (and legacy `name`s of anchors) a page carries: what a `#fragment` can land on. */
export function pageIds(html: string): Set<string> {
  const ids = new Set<string>();
  for (const m of html.matchAll(/<[a-z][^>]*?\s(?:id|name)="([^"]*)"/gi)) ids.add(decodeEntities(m[1]!));
  return ids;
}

/** The link targets a page holds: `href` of `<a>`, `src` of `<img>`. */
export function pageLinks(html: string): string[] {
  // code blocks and inline scripts hold text, not links
  const body = html.replace(/<script\b[\s\S]*?<\/script>/gi, "");
  const out: string[] = [];
  for (const tag of body.matchAll(/<(a|img)\s[^>]*>/gi)) {
    const attr = tag[1]!.toLowerCase() === "a" ? "href" : "src";
    const m = new RegExp(`\\s${attr}="([^"]*)"`, "i").exec(tag[0]);
    if (m) out.push(decodeEntities(m[1]!));
  }
  return out;
}

const EXTERNAL = /^(?:[a-z][a-z0-9+.-]*:|\/\/)/i;

/** Every dead internal link or anchor in the site built into `outDir`, served under `base` ("/" or "/repo/"). */
export function findDeadLinks(outDir: string, base = "/"): DeadLink[] {
  const prefix = base.endsWith("/") ? base : `${base}/`;
  const files = htmlFiles(outDir);
  const idCache = new Map<string, Set<string>>();
  const idsOf = (file: string) => {
    let ids = idCache.get(file);
    if (!ids) {
      ids = pageIds(readFileSync(join(outDir, file), "utf8"));
      idCache.set(file, ids);
    }
    return ids;
  };
  const resolveFile = (path: string): string | null => {
    const candidates = path === "" || path.endsWith("/") ? [`${path}index.html`] : [path, `${path}.html`];
    for (const c of candidates) {
      const full = join(outDir, c);
      if (existsSync(full) && statSync(full).isFile()) return c;
    }
    return null;
  };
  const dead: DeadLink[] = [];
  for (const page of files) {
    const html = readFileSync(join(outDir, page), "utf8");
    for (const href of pageLinks(html)) {
      if (href === "" || EXTERNAL.test(href)) continue;
      const url = new URL(href, `http://site${prefix}${page}`);
      if (!url.pathname.startsWith(prefix)) {
        dead.push({ page, href, why: `points outside the site's base ${prefix}` });
        continue;
      }
      let path: string;
      try {
        path = decodeURIComponent(url.pathname.slice(prefix.length));
      } catch {
        dead.push({ page, href, why: "is not a valid URL path" });
        continue;
      }
      const target = resolveFile(path);
      if (target === null) {
        dead.push({ page, href, why: `no file ${path || "index.html"} in the built site` });
        continue;
      }
      if (url.hash.length > 1 && target.endsWith(".html")) {
        const id = decodeURIComponent(url.hash.slice(1));
        if (!idsOf(target).has(id)) dead.push({ page, href, why: `${target} has no element with id "${id}"` });
      }
    }
  }
  return dead;
}
