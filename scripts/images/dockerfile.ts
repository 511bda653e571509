/**
 * A Dockerfile read as stages, and an image "built" without a Docker daemon: each stage's
 * COPY instructions are carried out into a folder of its own, in order, from the build
 * context (filtered by .dockerignore, as docker does) or from an earlier stage's folder; its
 * RUN instructions are run there. The final stage's folder is then laid out as the image's
 * file system would be, and its CMD can be started from it.
 *
 * Two RUN steps are not run as written, and say so in the log:
 *  - a full `npm ci` (the build stage's dev install) becomes a link to the repository's
 *    node_modules: the same lockfile, already installed; a fresh one takes minutes;
 *  - `npm cache clean --force` is skipped: here it would empty the machine's npm cache,
 *    not an image layer's.
 * Every other RUN this does not know fails, naming it, so a new step is never skipped unseen.
 */

import { spawn } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readFileSync, statSync, symlinkSync } from "node:fs";
import { createRequire } from "node:module";
import { basename, join, posix, relative } from "node:path";
import { type Dockerfile, DockerfileParser, type Instruction, type ModifiableInstruction } from "dockerfile-ast";

// @balena/dockerignore is CommonJS (module.exports = factory) but its types declare a default export
const dockerignore = createRequire(import.meta.url)(
  "@balena/dockerignore",
) as typeof import("@balena/dockerignore").default;

export interface Stage {
  /** Its `AS` name, or its index as text. */
  name: string;
  index: number;
  /** The FROM image, as written. */
  image: string;
  instructions: Instruction[];
}

export interface ParsedDockerfile {
  text: string;
  ast: Dockerfile;
  stages: Stage[];
}

export function parseDockerfile(path: string): ParsedDockerfile {
  const text = readFileSync(path, "utf8");
  const ast = DockerfileParser.parse(text);
  const stages: Stage[] = [];
  for (const instruction of ast.getInstructions()) {
    const keyword = instruction.getKeyword();
    if (keyword === "FROM") {
      const args = instruction.getArguments().map((a) => a.getValue());
      const as = args.findIndex((a) => a.toUpperCase() === "AS");
      const index = stages.length;
      stages.push({
        name: as >= 0 ? (args[as + 1] ?? String(index)) : String(index),
        index,
        image: args.find((a) => !a.startsWith("--")) ?? "",
        instructions: [],
      });
    } else {
      stages.at(-1)?.instructions.push(instruction);
    }
  }
  return { text, ast, stages };
}

/** An instruction's exec form (`["a", "b"]`), or undefined when it is in shell form. */
export function execForm(instruction: Instruction): string[] | undefined {
  const raw = (instruction.getRawArgumentsContent() ?? "").trim();
  const json = raw.replace(/^(--\S+\s+)*(CMD\s+)?/i, "");
  if (!json.startsWith("[")) return undefined;
  try {
    const value = JSON.parse(json) as unknown;
    return Array.isArray(value) && value.every((v) => typeof v === "string") ? value : undefined;
  } catch {
    return undefined;
  }
}

/** A COPY's `--from` stage (undefined: the build context), its sources and its destination. */
export function copyParts(instruction: Instruction): { from: string | undefined; sources: string[]; dest: string } {
  // dockerfile-ast keeps flags apart from the arguments
  const flags = (instruction as ModifiableInstruction).getFlags?.() ?? [];
  const from = flags.find((f) => f.getName() === "from")?.getValue() ?? undefined;
  const words = instruction.getArguments().map((a) => a.getValue());
  const dest = words.pop();
  if (!dest || words.length === 0) {
    throw new Error(`line ${instruction.getRange().start.line + 1}: COPY needs a source and a destination`);
  }
  return { from, sources: words, dest };
}

export interface Emulated {
  /** Each stage's folder (the stage's `/`), by name. */
  roots: Map<string, string>;
  /** The final stage's folder and its WORKDIR inside it. */
  finalRoot: string;
  finalWorkdir: string;
  /** The final stage's ENV, in order. */
  env: Record<string, string>;
  log: string[];
}

/**
 * Lays every stage of `dockerfile` out under `into` from the build context `context`
 * (the repository root), running the RUN steps as described above.
 */
export async function emulateBuild(dockerfile: ParsedDockerfile, context: string, into: string): Promise<Emulated> {
  const ignore = dockerignore({ ignorecase: false });
  const ignoreFile = join(context, ".dockerignore");
  if (existsSync(ignoreFile)) ignore.add(readFileSync(ignoreFile, "utf8"));
  const roots = new Map<string, string>();
  const log: string[] = [];
  let env: Record<string, string> = {};
  let finalRoot = "";
  let workdir = "/";

  for (const stage of dockerfile.stages) {
    const root = join(into, `stage-${stage.index}-${stage.name}`);
    mkdirSync(root, { recursive: true });
    roots.set(stage.name, root);
    workdir = "/";
    env = {};
    const inStage = (p: string) => join(root, posix.resolve(workdir, p));

    for (const instruction of stage.instructions) {
      const keyword = instruction.getKeyword();
      const line = instruction.getRange().start.line + 1;
      if (keyword === "WORKDIR") {
        workdir = posix.resolve(workdir, instruction.getArguments()[0]?.getValue() ?? "/");
        mkdirSync(join(root, workdir), { recursive: true });
      } else if (keyword === "ENV") {
        const properties = (
          instruction as unknown as { getProperties(): Array<{ getName(): string; getValue(): string | null }> }
        ).getProperties();
        for (const p of properties) env[p.getName()] = p.getValue() ?? "";
      } else if (keyword === "COPY" || keyword === "ADD") {
        const { from, sources, dest } = copyParts(instruction);
        const fromRoot = from === undefined ? undefined : roots.get(from);
        if (from !== undefined && !fromRoot)
          throw new Error(`line ${line}: COPY --from=${from}: no such earlier stage`);
        const target = inStage(dest);
        const intoFolder = dest.endsWith("/") || sources.length > 1;
        for (const source of sources) {
          const path = fromRoot ? join(fromRoot, posix.resolve("/", source)) : join(context, source);
          const shown = fromRoot ? `${from}:${source}` : source;
          if (!fromRoot && ignore.ignores(source.replace(/\/$/, ""))) {
            throw new Error(`line ${line}: COPY ${source}: excluded by .dockerignore, so docker cannot copy it`);
          }
          if (!existsSync(path))
            throw new Error(`line ${line}: COPY ${shown}: no such file in the ${from ?? "context"}`);
          const isDir = statSync(path).isDirectory();
          const to = isDir || !intoFolder ? target : join(target, basename(path));
          mkdirSync(isDir ? to : join(to, ".."), { recursive: true });
          cpSync(path, to, {
            recursive: true,
            dereference: false,
            verbatimSymlinks: true,
            // the context is filtered by .dockerignore; another stage's files are copied as they are
            filter: (p) => fromRoot !== undefined || !ignore.ignores(relative(context, p) || "."),
          });
        }
      } else if (keyword === "RUN") {
        const command = (instruction.getRawArgumentsContent() ?? "").replace(/\\\n/g, " ").replace(/\s+/g, " ").trim();
        for (const step of command.split(/\s*&&\s*/)) await runStep(step, join(root, workdir), context, log, line);
      }
    }
    finalRoot = root;
  }
  return { roots, finalRoot, finalWorkdir: workdir, env, log };
}

async function runStep(step: string, cwd: string, context: string, log: string[], line: number): Promise<void> {
  if (/^npm cache clean\b/.test(step)) {
    log.push(`line ${line}: skipped "${step}" (it would empty this machine's npm cache, not a layer's)`);
    return;
  }
  if (/^npm ci\b/.test(step) && !/--omit[= ]dev\b/.test(step)) {
    symlinkSync(join(context, "node_modules"), join(cwd, "node_modules"));
    log.push(`line ${line}: "${step}" → node_modules linked to the repository's (same lockfile, dev install)`);
    return;
  }
  if (/^npm (ci|run) /.test(step) || /^mkdir -p /.test(step)) {
    const started = performance.now();
    const run = await new Promise<{ status: number | null; output: string }>((done, fail) => {
      const child = spawn("sh", ["-c", step], { cwd, env: { ...process.env, NO_UPDATE_NOTIFIER: "1" } });
      let output = "";
      child.stdout.on("data", (d) => {
        output += d;
      });
      child.stderr.on("data", (d) => {
        output += d;
      });
      child.once("error", fail);
      child.once("close", (status) => done({ status, output }));
    });
    if (run.status !== 0) {
      const said = run.output
        .split("\n")
        .filter((l) => l.trim() && !/EBADENGINE|^npm warn {2}/.test(l))
        .slice(-8)
        .join("\n");
      throw new Error(`line ${line}: "${step}" failed (exit ${run.status}):\n${said}`);
    }
    log.push(`line ${line}: ran "${step}" in ${Math.round(performance.now() - started)} ms`);
    return;
  }
  throw new Error(
    `line ${line}: RUN "${step}": the emulation does not know this step; teach scripts/images/dockerfile.ts`,
  );
}
