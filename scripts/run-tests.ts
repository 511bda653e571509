/**
 * Runs every `*.test.ts` (uvu) in its own Node process, two at a time, and
 * ends with one line CI reads: `N passed, N failed`. A file that crashes
 * before uvu prints its summary counts as one failure, never as zero.
 *
 * A file holding the line `// run-tests: alone` runs with no other file
 * beside it, before the others: its assertions are wall-clock contracts an
 * issue fixes (a kiosk gets in within 2 s of a flood), which measure the part
 * under test only when no other suite shares the two cores.
 *
 *   tsx scripts/run-tests.ts [filter...]    only files whose path contains a filter
 */
import { spawn } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { join, relative } from "node:path";

const root = join(import.meta.dirname, "..");
const FOLDERS = ["protocol", "device", "gateway", "cloud", "ui", "ops", "provisioning", "test"];
const CONCURRENCY = Number(process.env.TEST_CONCURRENCY ?? 2);
const FILE_TIMEOUT_MS = Number(process.env.TEST_FILE_TIMEOUT_MS ?? 480_000);

async function findTests(dir: string): Promise<string[]> {
  const out: string[] = [];
  let entries: import("node:fs").Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    if (e.name === "node_modules" || e.name === "dist") continue;
    const path = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await findTests(path)));
    else if (e.name.endsWith(".test.ts")) out.push(path);
  }
  return out;
}

interface FileResult {
  file: string;
  passed: number;
  failed: number;
  skipped: number;
  ms: number;
  output: string;
  code: number | null;
}

const ALONE = /^\/\/ run-tests: alone\b/m;

// biome-ignore lint/suspicious/noControlCharactersInRegex: strips ANSI colour codes from uvu's output
const ANSI = /\u001b\[[0-9;]*m/g;

function runFile(file: string): Promise<FileResult> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", file], {
      cwd: root,
      env: { ...process.env, FORCE_COLOR: "0" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (d) => {
      output += d;
    });
    child.stderr.on("data", (d) => {
      output += d;
    });
    const timer = setTimeout(() => {
      output += `\n[run-tests] ${relative(root, file)} exceeded ${FILE_TIMEOUT_MS / 1000} s and was killed\n`;
      child.kill("SIGKILL");
    }, FILE_TIMEOUT_MS);
    child.on("close", (code) => {
      clearTimeout(timer);
      const text = output.replace(ANSI, "");
      const num = (label: string) => {
        const all = [...text.matchAll(new RegExp(`^\\s*${label}:\\s+(\\d+)`, "gm"))];
        return all.reduce((sum, m) => sum + Number(m[1]), 0);
      };
      const total = num("Total");
      let passed = num("Passed");
      const skipped = num("Skipped");
      let failed = Math.max(0, total - passed - skipped);
      if (total === 0 || (code !== 0 && failed === 0)) {
        // crashed before or after its tests reported: never a silent pass
        failed += 1;
        if (total === 0) passed = 0;
      }
      resolve({ file, passed, failed, skipped, ms: Date.now() - started, output: text, code });
    });
  });
}

async function main(): Promise<void> {
  const filters = process.argv.slice(2);
  const files = (await Promise.all(FOLDERS.map((f) => findTests(join(root, f)))))
    .flat()
    .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
    .sort();
  if (files.length === 0) {
    console.log("no test files found");
    console.log("0 passed, 1 failed");
    process.exitCode = 1;
    return;
  }
  const alone = new Set<string>();
  for (const file of files) if (ALONE.test(await readFile(file, "utf8"))) alone.add(file);
  const results: FileResult[] = [];
  const worker = async (queue: string[]) => {
    for (let file = queue.shift(); file; file = queue.shift()) {
      const r = await runFile(file);
      results.push(r);
      const mark = r.failed > 0 ? "FAIL" : "ok  ";
      console.log(
        `${mark} ${relative(root, r.file)}  ${r.passed} passed, ${r.failed} failed  (${(r.ms / 1000).toFixed(1)} s)`,
      );
      if (r.failed > 0) console.log(r.output.replace(/^/gm, "    | "));
    }
  };
  await worker(files.filter((f) => alone.has(f)));
  const shared = files.filter((f) => !alone.has(f));
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, shared.length) }, () => worker(shared)));
  const passed = results.reduce((s, r) => s + r.passed, 0);
  const failed = results.reduce((s, r) => s + r.failed, 0);
  const skipped = results.reduce((s, r) => s + r.skipped, 0);
  console.log(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
  process.exitCode = failed > 0 ? 1 : 0;
}

await main();
