/**
 * The footprint bench's module trace, loaded with `--import` into one daemon
 * run: every module the kiosk's own source files import (packages and Node
 * built-ins, not its own files or the @paylane workspaces) is appended to
 * FOOTPRINT_TRACE as `<specifier>\t<resolved URL>`, in the order first asked
 * for. The deps-only process then imports exactly those URLs.
 *
 * Plain JavaScript: it is loaded as a loader hook module, before any
 * TypeScript loader could apply to it.
 */
import { appendFileSync } from "node:fs";
import { register } from "node:module";
import { isMainThread } from "node:worker_threads";

// In the main thread this module registers itself; in the hooks thread it is the hooks.
if (isMainThread) register(import.meta.url);

const out = process.env.FOOTPRINT_TRACE;
const root = process.env.FOOTPRINT_ROOT ?? "";
const seen = new Set();

/** A file of this repository, not of a package under node_modules. */
function firstParty(url) {
  return url?.startsWith(`file://${root}/`) && !url.includes("/node_modules/");
}

export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  const bare = !/^(\.|\/|file:|#)/.test(specifier) && !specifier.startsWith("@paylane/");
  if (out && bare && firstParty(context.parentURL) && !seen.has(resolved.url)) {
    seen.add(resolved.url);
    appendFileSync(out, `${specifier}\t${resolved.url}\n`);
  }
  return resolved;
}
