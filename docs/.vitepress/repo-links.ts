/**
 * Links from a docs page to files outside docs/ (`../cloud/src/cloud.ts`,
 * `../README.md`, `../deploy/k8s/`) read well on GitHub but are not pages of
 * the site. This markdown-it rule turns each into a link to the file in the
 * GitHub repository (`<repoUrl>/blob/<branch>/<path>`, `tree/` for a folder),
 * after checking the file exists in the working tree: a link to a deleted or
 * misspelt source file fails the build with the page and the link named, the
 * way VitePress fails it on a dead link between pages.
 */
import { existsSync, statSync } from "node:fs";
import { dirname, isAbsolute, relative, resolve, sep } from "node:path";
import type { MarkdownRenderer } from "vitepress";

export interface RepoLinkOptions {
  /** absolute path of the docs source folder (VitePress' srcDir) */
  srcDir: string;
  /** absolute path of the repository's working tree */
  repoRoot: string;
  /** e.g. https://github.com/owner/paylane (no trailing slash) */
  repoUrl: string;
  /** branch the links point at */
  branch: string;
}

/** A link the rule could not turn into a repository link; the build fails on the first. */
export class DeadRepoLinkError extends Error {
  constructor(page: string, href: string, why: string) {
    super(`docs: ${page} links to ${href}, ${why}; fix the link or the file it names`);
    this.name = "DeadRepoLinkError";
  }
}

const SCHEME = /^[a-z][a-z0-9+.-]*:/i;

/**
 * What a relative link written on page `pagePath` becomes: `null` when it stays as
 * it is (external, an anchor, or a page/asset inside srcDir — VitePress checks those),
 * otherwise the repository URL. Throws DeadRepoLinkError when the target is missing.
 */
export function repoLinkFor(
  href: string,
  pagePath: string,
  opts: RepoLinkOptions,
  as: "link" | "image" = "link",
): string | null {
  if (href === "" || href.startsWith("#") || href.startsWith("/") || href.startsWith("//") || SCHEME.test(href)) {
    return null;
  }
  const hashAt = href.search(/[?#]/);
  const pathPart = hashAt < 0 ? href : href.slice(0, hashAt);
  const suffix = hashAt < 0 ? "" : href.slice(hashAt);
  let target: string;
  try {
    target = resolve(dirname(pagePath), decodeURI(pathPart));
  } catch {
    return null;
  }
  const inDocs = relative(opts.srcDir, target);
  if (!inDocs.startsWith("..") && !isAbsolute(inDocs)) return null;
  const page = relative(opts.srcDir, pagePath).split(sep).join("/");
  const inRepo = relative(opts.repoRoot, target);
  if (inRepo.startsWith("..") || isAbsolute(inRepo)) {
    throw new DeadRepoLinkError(page, href, "which is outside the repository");
  }
  if (!existsSync(target)) {
    throw new DeadRepoLinkError(page, href, `but ${inRepo.split(sep).join("/")} does not exist in the repository`);
  }
  const kind = statSync(target).isDirectory() ? "tree" : as === "image" ? "raw" : "blob";
  const path = inRepo.split(sep).map(encodeURIComponent).join("/");
  return `${opts.repoUrl}/${kind}/${opts.branch}/${path}${suffix}`;
}

/** markdown-it plugin: rewrites link hrefs (and image srcs) that leave srcDir into repository URLs. */
export function repoLinks(md: MarkdownRenderer, opts: RepoLinkOptions): void {
  md.core.ruler.push("paylane_repo_links", (state) => {
    const pagePath = (state.env as { path?: string }).path;
    if (!pagePath) return;
    const visit = (tokens: typeof state.tokens) => {
      for (const token of tokens) {
        if (token.children) visit(token.children);
        const attr = token.type === "link_open" ? "href" : token.type === "image" ? "src" : null;
        if (!attr) continue;
        const value = token.attrGet(attr);
        if (value === null) continue;
        const rewritten = repoLinkFor(value, pagePath, opts, attr === "src" ? "image" : "link");
        if (rewritten !== null) token.attrSet(attr, rewritten);
      }
    };
    visit(state.tokens);
  });
}
