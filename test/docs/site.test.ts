/**
 * The documentation site (docs/, VitePress): `npm run docs:build`'s build of
 * the real pages exits 0, every docs page becomes an HTML page listed in the
 * sidebar, no internal link or #anchor of the built site points nowhere, and
 * the Mermaid diagrams draw in a browser. Controls show each check can fail:
 * a planted dead link and dead anchor are found by the scanner, and small
 * builds of a copy fail on a dead page link, a dead anchor, and a link to a
 * source file that is not in the repository.
 */
import { spawn } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { extname, join, normalize } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { findDeadLinks } from "../../docs/.vitepress/dead-links.ts";
import { listPages, pageLink, sidebarFor } from "../../docs/.vitepress/pages.ts";
import { launchChromium } from "../support/browser.ts";
import { within } from "../support/within.ts";

const root = join(import.meta.dirname, "..", "..");
const docs = join(root, "docs");
const VITEPRESS = join(root, "node_modules", "vitepress", "bin", "vitepress.js");

interface Built {
  code: number | null;
  output: string;
}

/** `vitepress build <srcDir> --outDir <outDir>`, as `npm run docs:build` runs it, with the source links checked against `repoRoot`. */
function build(srcDir: string, outDir: string, repoRoot: string, extra: string[] = [], base = "/"): Promise<Built> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [VITEPRESS, "build", srcDir, "--outDir", outDir, ...extra], {
      cwd: root,
      env: { ...process.env, DOCS_REPO_ROOT: repoRoot, DOCS_BASE: base, FORCE_COLOR: "0", NO_COLOR: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (d) => {
      output += d;
    });
    child.stderr.on("data", (d) => {
      output += d;
    });
    child.on("close", (code) => resolve({ code, output }));
  });
}

let tmp = "";
let out = "";
let built: Built | undefined;

test.before(async () => {
  tmp = await mkdtemp(join(tmpdir(), "paylane-docs-"));
  out = join(tmp, "site");
  const started = Date.now();
  built = await build(docs, out, root);
  console.log(`docs build: exit ${built.code} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
});

test.after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

test("npm run docs:build's build of docs/ exits 0", () => {
  assert.is(built?.code, 0, built?.output);
});

test("every page in docs/ is built to HTML and listed in the sidebar", () => {
  const pages = listPages(docs);
  assert.ok(pages.length >= 30, `only ${pages.length} pages found`);
  const inSidebar = new Set(sidebarFor(pages).flatMap((g) => g.items.map((i) => i.link)));
  const sidebarHtml = readFileSync(join(out, "getting-started.html"), "utf8");
  for (const p of pages) {
    assert.ok(existsSync(join(out, `${p.path}.html`)), `${p.path}.md was not built to ${p.path}.html`);
    assert.ok(inSidebar.has(pageLink(p.path)), `${p.path} is missing from the sidebar`);
    // the sidebar as rendered on a page, not only as configured
    const link = pageLink(p.path);
    const href = link.endsWith("/") ? link : `${link}.html`;
    assert.ok(sidebarHtml.includes(`href="${href}"`), `the rendered sidebar has no link to ${p.path}`);
  }
});

test("no internal link or #anchor in the built site points nowhere", () => {
  const dead = findDeadLinks(out, "/");
  assert.equal(dead, [], dead.map((d) => `${d.page}: ${d.href} (${d.why})`).join("\n"));
});

test("links from pages to source files go to the repository, not to a page of the site", () => {
  const html = readFileSync(join(out, "algorithms.html"), "utf8");
  assert.match(html, /href="https:\/\/github\.com\/[^"]+\/blob\/main\/device\/src\/journal\.ts"/);
  assert.not.match(html, /href="[^"]*\.\.\/device\/src\/journal\.ts"/);
});

test("control: the scanner finds a planted dead link and a dead anchor, and passes a live anchor", () => {
  const copy = join(tmp, "planted-site");
  cpSync(out, copy, { recursive: true });
  writeFileSync(
    join(copy, "planted.html"),
    `<html><body><h1 id="here">x</h1>
      <a href="./architecture.html#parts">live anchor</a>
      <a href="#here">live local anchor</a>
      <a href="./architecture.html#no-such-heading">dead anchor</a>
      <a href="./no-such-page.html">dead page</a>
      <img src="/img/no-such.png">
      <a href="https://example.com/elsewhere">external</a>
    </body></html>`,
  );
  const dead = findDeadLinks(copy, "/").filter((d) => d.page === "planted.html");
  assert.equal(
    dead.map((d) => d.href),
    ["./architecture.html#no-such-heading", "./no-such-page.html", "/img/no-such.png"],
  );
});

/** A copy of docs/.vitepress and the given pages in a folder laid out like the repository (`cloud/src/cloud.ts` present). */
function miniRepo(name: string, pages: Record<string, string>): string {
  const repo = join(tmp, name);
  cpSync(join(docs, ".vitepress"), join(repo, "docs", ".vitepress"), {
    recursive: true,
    filter: (src) => !/[/\\](dist|cache)$/.test(src),
  });
  for (const [file, text] of Object.entries(pages)) writeFileSync(join(repo, "docs", file), text);
  mkdirSync(join(repo, "cloud", "src"), { recursive: true });
  cpSync(join(root, "cloud", "src", "cloud.ts"), join(repo, "cloud", "src", "cloud.ts"));
  // the config is ESM and imports vitepress and the mermaid plugin from node_modules, as in the repository
  writeFileSync(join(repo, "package.json"), '{ "private": true, "type": "module" }\n');
  symlinkSync(join(root, "node_modules"), join(repo, "node_modules"), "dir");
  return repo;
}

test("control: builds of a copy fail on a dead page link, a dead anchor and a missing source file", async () => {
  const ok = "# Home\n\n[the cloud](../cloud/src/cloud.ts) [other](./other.md#other-page)\n";
  const other = "# Other page\n\nText.\n";
  const cases = [
    { name: "dead-page", page: "[gone](./missing-page.md)", expect: /missing-page/ },
    { name: "dead-anchor", page: "[gone](./other.md#no-such-heading)", expect: /no element with id "no-such-heading"/ },
    {
      name: "dead-source",
      page: "[gone](../cloud/src/deleted-file.ts)",
      expect: /cloud\/src\/deleted-file\.ts does not exist in the repository/,
    },
  ];
  const results = await Promise.all(
    cases.map(async (c) => {
      const repo = miniRepo(c.name, { "index.md": ok, "other.md": other, "planted.md": `# Planted\n\n${c.page}\n` });
      // --mpa: the same pages and link checks without the client bundle (a few seconds instead of half a minute)
      return { c, r: await build(join(repo, "docs"), join(repo, "out"), repo, ["--mpa"]) };
    }),
  );
  for (const { c, r } of results) {
    assert.is.not(r.code, 0, `${c.name}: the build should have failed\n${r.output}`);
    assert.match(r.output, c.expect, `${c.name}: ${r.output}`);
  }
});

test("a project page's base path (DOCS_BASE) prefixes every link, and the links still resolve", async () => {
  const repo = miniRepo("project-page", {
    "index.md": "# Home\n\n[other](./other.md#other-page) [source](../cloud/src/cloud.ts)\n",
    "other.md": "# Other page\n\n![diagram](./img/x.svg)\n",
  });
  mkdirSync(join(repo, "docs", "img"));
  writeFileSync(join(repo, "docs", "img", "x.svg"), '<svg xmlns="http://www.w3.org/2000/svg"/>');
  const outDir = join(repo, "out");
  const r = await build(join(repo, "docs"), outDir, repo, ["--mpa"], "paylane");
  assert.is(r.code, 0, r.output);
  const home = readFileSync(join(outDir, "index.html"), "utf8");
  assert.match(home, /href="\.\/other\.html#other-page"/);
  assert.match(home, /href="https:\/\/github\.com\/[^"]+\/blob\/main\/cloud\/src\/cloud\.ts"/);
  // the sidebar's link and the stylesheet, absolute under the base
  const other = readFileSync(join(outDir, "other.html"), "utf8");
  assert.match(other, /href="\/paylane\/other\.html"/);
  assert.match(other, /href="\/paylane\/assets\/style\.[^"]+\.css"/);
  assert.equal(findDeadLinks(outDir, "/paylane/"), []);
});

test("every Mermaid diagram of every page draws in a browser, none as a syntax error", async () => {
  const pages = listPages(docs)
    .map((p) => `${p.path}.html`)
    .filter((file) => readFileSync(join(out, file), "utf8").includes('class="mermaid"'));
  assert.ok(pages.includes("architecture.html"), `pages with diagrams: ${pages.join(", ")}`);
  const server = await serve(out);
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    const { port } = server.address() as AddressInfo;
    let total = 0;
    const broken: string[] = [];
    for (const file of pages) {
      await page.goto(`http://127.0.0.1:${port}/${file}`);
      // mermaid draws every block, a bad one as its "Syntax error" picture
      const drawn = await within(
        page.waitForFunction(
          () => {
            const boxes = [...document.querySelectorAll(".mermaid")];
            return boxes.length > 0 && boxes.every((b) => b.querySelector("svg")) ? boxes.length : false;
          },
          undefined,
          { timeout: 30_000 },
        ),
        35_000,
        `the diagrams of ${file}`,
      );
      total += (await drawn.jsonValue()) as number;
      const bad = await page
        .locator(".mermaid")
        .evaluateAll((boxes) =>
          boxes.flatMap((b, i) => (/Syntax error/i.test(b.textContent ?? "") ? [`diagram ${i + 1}`] : [])),
        );
      broken.push(...bad.map((d) => `${file} ${d}`));
    }
    assert.equal(broken, [], "diagrams drawn as a syntax error");
    console.log(`mermaid: ${total} diagrams drawn on ${pages.length} pages (${pages.join(", ")})`);
  } finally {
    await browser.close();
    await new Promise((r) => server.close(r));
  }
});

const TYPES: Record<string, string> = {
  ".html": "text/html",
  ".js": "text/javascript",
  ".css": "text/css",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".json": "application/json",
  ".woff2": "font/woff2",
};

/** The built site on 127.0.0.1 at a free port, as GitHub Pages serves it (a path without .html finds the page). */
function serve(dir: string): Promise<Server> {
  const server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname)).replace(
      /^(\.\.[/\\])+/,
      "",
    );
    const candidates = path.endsWith("/") ? [`${path}index.html`] : [path, `${path}.html`];
    for (const c of candidates) {
      const file = join(dir, c);
      if (existsSync(file) && !file.endsWith("/")) {
        try {
          const body = readFileSync(file);
          res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" });
          res.end(body);
          return;
        } catch {
          // a folder: try the next candidate
        }
      }
    }
    res.writeHead(404).end();
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

test.run();
