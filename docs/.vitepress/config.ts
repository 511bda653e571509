/**
 * The PayLane documentation site: VitePress over docs/ as it is, so every page
 * reads the same on GitHub and on the site.
 *
 *   npm run docs:dev      live preview
 *   npm run docs:build    static site in docs/.vitepress/dist (git-ignored)
 *
 * Environment (all optional; .github/workflows/docs.yml sets them for GitHub Pages):
 *   DOCS_BASE       the site's base path: "/" (default) or "/<repo>/" for a project page
 *   DOCS_REPO_URL   the repository links to source files point at
 *   DOCS_BRANCH     the branch those links use (default main)
 *   DOCS_REPO_ROOT  the working tree source links are checked against (default: the folder above docs/)
 */
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitepress";
import { findDeadLinks } from "./dead-links.ts";
import { HOME_FRONTMATTER } from "./home.ts";
import { copyDownloads, listPages, pageLink, sidebarFor } from "./pages.ts";
import { repoLinks } from "./repo-links.ts";

const srcDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** Where links to source files (`../cloud/src/cloud.ts`) go on the site. */
export const repoUrl = (process.env.DOCS_REPO_URL ?? "https://github.com/paylane/paylane").replace(/\/+$/, "");
const branch = process.env.DOCS_BRANCH ?? "main";
const repoRoot = resolve(process.env.DOCS_REPO_ROOT ?? resolve(srcDir, ".."));

function normalizeBase(raw: string | undefined): string {
  const trimmed = (raw ?? "/").trim().replace(/^\/+|\/+$/g, "");
  return trimmed === "" ? "/" : `/${trimmed}/`;
}

/**
 * GitHub's heading anchors (lower case; letters, digits, spaces, "-" and "_" kept; spaces to "-"),
 * so a `page.md#anchor` link written for GitHub lands on the same heading on the site.
 */
export function githubSlug(text: string): string {
  return text
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, "")
    .replace(/ /g, "-");
}

const pages = listPages(srcDir);
const present = (link: string) => pages.some((p) => pageLink(p.path) === link);
/** The home page's hero and cards, without those whose page is not there (yet). */
const home = {
  ...HOME_FRONTMATTER,
  hero: { ...HOME_FRONTMATTER.hero, actions: HOME_FRONTMATTER.hero.actions.filter((a) => present(a.link)) },
  features: HOME_FRONTMATTER.features.filter((f) => present(f.link)),
};

export default defineConfig({
  title: "PayLane",
  description: "Walk-up check-in and payment kiosks, and the fleet software behind them",
  base: normalizeBase(process.env.DOCS_BASE),
  // the pages' own links are checked: VitePress fails on a missing page, repoLinks on a missing source file,
  // buildEnd on a missing anchor
  ignoreDeadLinks: false,
  lastUpdated: false,
  markdown: {
    // fences whose language Shiki does not ship (crontab lines) are shown as shell
    languageAlias: { cron: "bash" },
    anchor: { slugify: githubSlug },
    config(md) {
      repoLinks(md, { srcDir, repoRoot, repoUrl, branch });
      // ```mermaid blocks go to the page as their source; theme/index.ts draws them in the browser.
      // v-pre: Vue must not read `{{…}}` (a Mermaid hexagon) as an interpolation.
      const fence = md.renderer.rules.fence!;
      md.renderer.rules.fence = (tokens, idx, options, env, self) => {
        const token = tokens[idx]!;
        if (token.info.trim() !== "mermaid") return fence(tokens, idx, options, env, self);
        return `<pre class="mermaid" v-pre>${md.utils.escapeHtml(token.content)}</pre>\n`;
      };
    },
  },
  themeConfig: {
    nav: [
      { text: "Getting started", link: "/getting-started" },
      { text: "Architecture", link: "/architecture" },
      { text: "Operations", link: "/operations" },
      { text: "Security", link: "/security" },
      { text: "Due diligence", link: "/due-diligence" },
    ].filter((item) => present(item.link)),
    sidebar: sidebarFor(pages),
    outline: [2, 3],
    search: { provider: "local" },
    socialLinks: [{ icon: "github", link: repoUrl }],
    editLink: { pattern: `${repoUrl}/edit/${branch}/docs/:path`, text: "Edit this page" },
  },
  // Mermaid's diagram types (loaded only by a page that draws one) and the local search index are
  // 450–700 kB chunks by nature; warn only above that
  vite: { build: { chunkSizeWarningLimit: 1000 } },
  transformPageData(pageData) {
    if (pageData.relativePath === "index.md") pageData.frontmatter = { ...home, ...pageData.frontmatter };
  },
  buildEnd(site) {
    copyDownloads(site.srcDir, site.outDir);
    const dead = findDeadLinks(site.outDir, site.site.base);
    if (dead.length > 0) {
      const lines = dead.map((d) => `  ${d.page}: ${d.href} — ${d.why}`);
      throw new Error(`docs: ${dead.length} dead link(s) in the built site:\n${lines.join("\n")}`);
    }
  },
});
