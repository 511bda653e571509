/**
 * The footprint bench's yardstick process: imports the modules it is given
 * (FOOTPRINT_MODULES, a JSON array of URLs: the daemon's dependencies as the
 * trace found them), one after another, timing each; then answers
 * GET /healthz on FOOTPRINT_PORT, as the daemon does once ready, and idles.
 * Plain JavaScript, so it runs with or without the TypeScript loader: with
 * no modules, under `--import tsx`, it is Node plus that loader.
 *
 * Prints one line, `{"type":"loaded","loads":[{url,ms,rssKb}]}`, once listening.
 * Each import's figures include whatever it is the first to load.
 */
import { createServer } from "node:http";
import { performance } from "node:perf_hooks";

/** @type {string[]} */
const urls = JSON.parse(process.env.FOOTPRINT_MODULES ?? "[]");
const port = Number(process.env.FOOTPRINT_PORT);

const loads = [];
for (const url of urls) {
  const rss0 = process.memoryUsage.rss();
  const t0 = performance.now();
  await import(url);
  loads.push({ url, ms: performance.now() - t0, rssKb: (process.memoryUsage.rss() - rss0) / 1024 });
}

createServer((req, res) => {
  res.writeHead(req.url === "/healthz" ? 200 : 404).end();
}).listen(port, "127.0.0.1", () => {
  process.stdout.write(`${JSON.stringify({ type: "loaded", loads })}\n`);
});
