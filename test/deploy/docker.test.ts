/**
 * The container images without a Docker daemon (issue 19): each Dockerfile's structure and
 * lint, the .dockerignore, and each image "built" by carrying out its COPY and RUN steps into
 * folders (scripts/images/dockerfile.ts) and started from the final stage's folder, not from
 * the repository: the gateway answers /healthz and /readyz, its HEALTHCHECK passes, and the
 * cloud started from its own image folder connects to that gateway and answers too.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { siteRegistryFile } from "@paylane/protocol";
import { validate } from "dockerfile-utils";
import * as esbuild from "esbuild";
import pg from "pg";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { CloudEnvSchema } from "../../cloud/src/config.ts";
import { REDIS_URL, redisPrefix } from "../../gateway/test/support/fleet.ts";
import {
  copyParts,
  type Emulated,
  emulateBuild,
  execForm,
  type ParsedDockerfile,
  parseDockerfile,
} from "../../scripts/images/dockerfile.ts";
import { freePortRun } from "../support/private-mosquitto.ts";
import { within } from "../support/within.ts";

// @balena/dockerignore is CommonJS (module.exports = factory) but its types declare a default export
const dockerignore = createRequire(import.meta.url)(
  "@balena/dockerignore",
) as typeof import("@balena/dockerignore").default;

const root = resolve(import.meta.dirname, "../..");
const IMAGES = {
  gateway: { dockerfile: "gateway/Dockerfile", workspace: "@paylane/gateway" },
  cloud: { dockerfile: "cloud/Dockerfile", workspace: "@paylane/cloud" },
} as const;
type Part = keyof typeof IMAGES;

const parsed = (part: Part): ParsedDockerfile => parseDockerfile(join(root, IMAGES[part].dockerfile));
const finalStage = (d: ParsedDockerfile) => d.stages.at(-1)!;
const keywordsOf = (d: ParsedDockerfile) => finalStage(d).instructions.map((i) => i.getKeyword());
const args = (i: { getArguments(): Array<{ getValue(): string }> }) => i.getArguments().map((a) => a.getValue());
/** node:20.x.y-…slim, or distroless nodejs20 by tag or digest: never a moving tag like 20-slim or latest. */
const PINNED_NODE_20 =
  /^(node:20\.\d+\.\d+-(bookworm-|bullseye-)?slim|gcr\.io\/distroless\/nodejs20-debian1\d(:[\w.-]+)?)(@sha256:[0-9a-f]{64})?$/;
const SECRET_NAME = /SECRET|PASSWORD|PASSWD|TOKEN|PRIVATE|CREDENTIAL|API_?KEY|_KEY$|^KEY$/i;

for (const part of Object.keys(IMAGES) as Part[]) {
  test(`${part}/Dockerfile: dockerfile-utils finds nothing to flag`, () => {
    const d = parsed(part);
    const diagnostics = validate(d.text);
    assert.equal(
      diagnostics.map((x) => `line ${x.range.start.line + 1}: ${x.message}`),
      [],
      "lint diagnostics",
    );
  });

  test(`${part}/Dockerfile: multi-stage, every base a pinned Node 20 slim (or a stage of its own)`, () => {
    const d = parsed(part);
    assert.ok(d.stages.length >= 2, `expected a build stage and the image, got ${d.stages.length} stage(s)`);
    const names = new Set<string>();
    for (const stage of d.stages) {
      if (!names.has(stage.image))
        assert.match(stage.image, PINNED_NODE_20, `stage ${stage.name}: FROM ${stage.image}`);
      names.add(stage.name);
    }
    assert.match(finalStage(d).image, PINNED_NODE_20);
  });

  test(`${part}/Dockerfile: runs as a non-root user, CMD in exec form after it`, () => {
    const d = parsed(part);
    const keywords = keywordsOf(d);
    const userAt = keywords.lastIndexOf("USER");
    const cmdAt = keywords.lastIndexOf("CMD");
    assert.ok(userAt >= 0, "the final stage sets no USER: the image would run as root");
    assert.ok(cmdAt > userAt, "CMD must come after USER");
    const user = args(finalStage(d).instructions[userAt]!)[0] ?? "";
    assert.not.match(user, /^(root|0)(:|$)/, `USER ${user}`);
    const cmd = execForm(finalStage(d).instructions[cmdAt]!);
    assert.ok(cmd, "CMD is in shell form: signals would go to /bin/sh, not to node");
    assert.equal(cmd[0], "node");
    assert.not.ok(keywords.includes("ENTRYPOINT") && cmd[0] !== "node", "no wrapper ENTRYPOINT");
  });

  test(`${part}/Dockerfile: production dependencies of ${IMAGES[part].workspace} only, through npm ci --omit=dev`, () => {
    const d = parsed(part);
    const runs = d.stages.flatMap((s) =>
      s.instructions.filter((i) => i.getKeyword() === "RUN").map((i) => i.getRawArgumentsContent() ?? ""),
    );
    const prod = runs.find((r) => /npm ci\b[^&]*--omit=dev/.test(r));
    assert.ok(prod, "no RUN npm ci --omit=dev");
    assert.match(
      prod,
      new RegExp(`--workspace[= ]${IMAGES[part].workspace}\\b`),
      "npm ci --omit=dev for the service's workspace only",
    );
    // the final stage installs nothing itself: it copies node_modules from the stage that ran it
    assert.not.ok(keywordsOf(d).includes("RUN"), "the final stage runs nothing (no build tools, no cache in a layer)");
  });

  test(`${part}/Dockerfile: HEALTHCHECK hits /healthz on an EXPOSEd port`, () => {
    const d = parsed(part);
    const stage = finalStage(d);
    const checks = stage.instructions.filter((i) => i.getKeyword() === "HEALTHCHECK");
    assert.is(checks.length, 1, "one HEALTHCHECK in the final stage");
    const command = execForm(checks[0]!);
    assert.ok(command, "HEALTHCHECK CMD in exec form (there is no curl in node:slim; node does the request)");
    assert.equal(command.slice(0, 2), ["node", "-e"]);
    const script = command[2] ?? "";
    assert.match(script, /\/healthz/);
    const defaultPort = script.match(/\|\|(\d+)\)/)?.[1];
    assert.ok(defaultPort, `no default port in ${script}`);
    const exposed = stage.instructions.filter((i) => i.getKeyword() === "EXPOSE").flatMap(args);
    assert.ok(exposed.includes(defaultPort), `HEALTHCHECK's port ${defaultPort} is not EXPOSEd (${exposed.join(" ")})`);
  });

  test(`${part}/Dockerfile: no ENV or ARG carries a secret, and it is labelled`, () => {
    const d = parsed(part);
    for (const stage of d.stages) {
      for (const i of stage.instructions.filter((x) => x.getKeyword() === "ENV" || x.getKeyword() === "ARG")) {
        const text = i.getRawArgumentsContent() ?? "";
        for (const [, name, value] of text.matchAll(/([A-Za-z_][A-Za-z0-9_]*)(?:=|\s+)(\S*)/g)) {
          if (SECRET_NAME.test(name ?? ""))
            assert.is(value, "", `${i.getKeyword()} ${name} holds a value in the image`);
        }
      }
    }
    const labels = finalStage(d)
      .instructions.filter((i) => i.getKeyword() === "LABEL")
      .map((i) => i.getRawArgumentsContent() ?? "")
      .join(" ");
    for (const key of ["title", "description", "version", "revision"]) {
      assert.ok(labels.includes(`org.opencontainers.image.${key}=`), `LABEL org.opencontainers.image.${key}`);
    }
  });
}

test(".dockerignore keeps dependencies, git, data, build output and secrets out of the context", () => {
  const ig = dockerignore().add(readFileSync(join(root, ".dockerignore"), "utf8"));
  for (const path of [
    "node_modules/hono/package.json",
    "cloud/node_modules/x/index.js",
    ".git/HEAD",
    ".paylane/registry.json",
    "cloud/dist/paylane-cloud.mjs",
    "ui/dist/dashboard/app.js",
    "docs/_site/index.html",
    "device/journal.db",
    "data/cloud.db",
    "deploy/secrets/postgres-password",
    "certs/server.pem",
    "server.key",
    ".env",
    "deploy/compose.env",
    "secrets.json",
    "gateway/secrets.json",
    "ops-credentials.json",
    "test/deploy/docker.test.ts",
    "cloud/test/api.test.ts",
    "npm-debug.log",
  ]) {
    assert.ok(ig.ignores(path), `${path} should not reach the build context`);
  }
  // and everything the Dockerfiles copy from the context does
  for (const part of Object.keys(IMAGES) as Part[]) {
    for (const stage of parsed(part).stages) {
      for (const copy of stage.instructions.filter((i) => i.getKeyword() === "COPY")) {
        const { from, sources } = copyParts(copy);
        if (from !== undefined) continue;
        for (const source of sources) {
          assert.not.ok(ig.ignores(source.replace(/\/$/, "")), `${part}: COPY ${source} is excluded by .dockerignore`);
        }
      }
    }
  }
});

// ---- the images, laid out and started -------------------------------------------------------

const scratch = await mkdtemp(join(tmpdir(), "paylane-images-"));
const children: ChildProcess[] = [];
const CLOUD_SECRET = "cloud-secret-for-the-image-test";

// Both images are laid out at once (their npm ci steps overlap); each test awaits its own.
const builds = new Map<Part, Promise<Emulated>>();
for (const part of Object.keys(IMAGES) as Part[]) {
  const building = emulateBuild(parsed(part), root, join(scratch, part));
  building.catch(() => {}); // reported by the test that awaits it
  builds.set(part, building);
}

async function build(part: Part): Promise<Emulated> {
  const image = await builds.get(part)!;
  console.log(`${part}:\n  ${image.log.join("\n  ")}`);
  return image;
}

/** The package names a bundle imports and leaves to node_modules (node: builtins aside). */
async function externalImports(dist: string): Promise<Map<string, string[]>> {
  const files = (await readdir(dist)).filter((f) => f.endsWith(".mjs")).map((f) => join(dist, f));
  const result = await esbuild.build({
    entryPoints: files,
    bundle: true,
    write: false,
    metafile: true,
    platform: "node",
    format: "esm",
    packages: "external",
    outdir: join(scratch, "scan"),
    logLevel: "silent",
  });
  const out = new Map<string, string[]>();
  for (const [file, input] of Object.entries(result.metafile.inputs)) {
    for (const imp of input.imports) {
      if (!imp.external || imp.path.startsWith("node:") || imp.path.startsWith(".")) continue;
      const name = imp.path.split("/", imp.path.startsWith("@") ? 2 : 1).join("/");
      out.set(name, [...(out.get(name) ?? []), file]);
    }
  }
  return out;
}

/** Production dependencies of a workspace and of the @paylane workspaces it depends on. */
function productionDependencies(workspaceDir: string, seen = new Set<string>()): Set<string> {
  const pkg = JSON.parse(readFileSync(join(root, workspaceDir, "package.json"), "utf8")) as {
    dependencies?: Record<string, string>;
  };
  const deps = new Set<string>();
  for (const name of Object.keys(pkg.dependencies ?? {})) {
    if (name.startsWith("@paylane/")) {
      const dir = name.slice("@paylane/".length);
      if (!seen.has(dir) && existsSync(join(root, dir, "package.json"))) {
        seen.add(dir);
        for (const d of productionDependencies(dir, seen)) deps.add(d);
      }
    } else deps.add(name);
  }
  return deps;
}

function start(
  image: Emulated,
  env: Record<string, string>,
  name: string,
): { child: ChildProcess; output: () => string } {
  const cmd = parsed(name.startsWith("gateway") ? "gateway" : "cloud");
  const argv = execForm(finalStage(cmd).instructions.findLast((i) => i.getKeyword() === "CMD")!)!;
  assert.is(argv[0], "node");
  // the image's environment: its ENV, then what `docker run -e` would add; nothing from this shell but PATH
  const child = spawn(process.execPath, argv.slice(1), {
    cwd: join(image.finalRoot, image.finalWorkdir),
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...image.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let output = "";
  child.stdout?.on("data", (d) => {
    output += d;
  });
  child.stderr?.on("data", (d) => {
    output += d;
  });
  return { child, output: () => output };
}

async function answers(url: string, what: string, out: () => string, ms = 45_000): Promise<number> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (res.ok || Date.now() > deadline) return res.status;
    } catch {
      if (Date.now() > deadline) throw new Error(`${what} never answered at ${url}; it said:\n${out().slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Runs the image's HEALTHCHECK command as docker would inside the container: same environment. */
function healthcheck(part: Part, image: Emulated, env: Record<string, string>): number | null {
  const check = finalStage(parsed(part)).instructions.find((i) => i.getKeyword() === "HEALTHCHECK")!;
  const [node, ...rest] = execForm(check)!;
  assert.is(node, "node");
  return spawnSync(process.execPath, rest, {
    cwd: join(image.finalRoot, image.finalWorkdir),
    env: { PATH: process.env.PATH ?? "", ...image.env, ...env },
    timeout: 10_000,
  }).status;
}

async function stop(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode;
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  child.kill("SIGTERM");
  return within(exited, 15_000, "the service to stop on SIGTERM");
}

async function assertBundleDependencies(part: Part, image: Emulated) {
  const app = join(image.finalRoot, image.finalWorkdir);
  const externals = await externalImports(join(app, part, "dist"));
  const allowed = productionDependencies(part);
  assert.ok(externals.size > 0, "the bundle imports its npm packages from node_modules");
  for (const [name, files] of externals) {
    assert.ok(
      allowed.has(name),
      `${part}'s bundle imports ${name} (${files[0]}), which is not a production dependency of ${part} or its workspaces: npm ci --omit=dev would not install it`,
    );
    const found = [join(app, part, "node_modules", name), join(app, "node_modules", name)].some((p) =>
      existsSync(join(p, "package.json")),
    );
    assert.ok(found, `${name} is not in the image's node_modules`);
  }
  // nothing of the repository's sources came along: only bundles, package.json and listed data
  assert.not.ok(existsSync(join(app, part, "src")), `${part}/src is in the image`);
  assert.not.ok(existsSync(join(app, "protocol", "src")), "protocol/src is in the image");
  console.log(`${part}: ${externals.size} packages imported from node_modules, each a production dependency`);
}

let gatewayMqttPort = 0;
const redisKeys = redisPrefix("images");
const registry = join(scratch, "registry.json");

test("gateway image: built from its Dockerfile's steps, started by its CMD from the image folder, healthy", async () => {
  writeFileSync(
    registry,
    JSON.stringify(await siteRegistryFile("s1", [["k1", "kiosk-secret-k1-0123456789"]], CLOUD_SECRET)),
  );
  const image = await build("gateway");
  await assertBundleDependencies("gateway", image);
  assert.is(image.env.MQTT_HOST, "0.0.0.0", "the image listens on every interface of the container");
  const [mqtt, http] = [await freePortRun(1), await freePortRun(1)];
  gatewayMqttPort = mqtt;
  // 127.0.0.1 here only because this is not a container: the image's own ENV says 0.0.0.0
  // on Redis, as deploy/compose.yaml runs it: aedes-persistence-redis and mqemitter-redis load from the image
  const env = {
    REGISTRY_PATH: registry,
    MQTT_PORT: String(mqtt),
    GATEWAY_HTTP_PORT: String(http),
    MQTT_HOST: "127.0.0.1",
    GATEWAY_REDIS_URL: REDIS_URL,
    GATEWAY_REDIS_PREFIX: redisKeys.prefix,
    GATEWAY_INSTANCE: "image-gateway",
  };
  const gateway = start(image, env, "gateway");
  assert.is(await answers(`http://127.0.0.1:${http}/healthz`, "gateway", gateway.output), 200);
  assert.is(await answers(`http://127.0.0.1:${http}/readyz`, "gateway", gateway.output), 200);
  const health = (await (await fetch(`http://127.0.0.1:${http}/healthz`)).json()) as Record<string, unknown>;
  assert.equal(
    [health.persistence, health.redis],
    ["redis", "ok"],
    "state in Redis, loaded from the image's node_modules",
  );
  assert.is(healthcheck("gateway", image, env), 0, "the HEALTHCHECK command passes");
  assert.match(gateway.output(), /MQTT gateway listening/);
});

const PG_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";

/** Starts the cloud image in one role and checks what a load balancer and docker would. */
async function cloudInRole(image: Emulated, role: string, env: Record<string, string>) {
  const [port, metrics] = [await freePortRun(1), await freePortRun(1)];
  const full = {
    REGISTRY_PATH: registry,
    CLOUD_PORT: String(port),
    CLOUD_HOST: "127.0.0.1",
    CLOUD_METRICS_PORT: String(metrics),
    CLOUD_METRICS_HOST: "127.0.0.1",
    MQTT_URL: `mqtt://127.0.0.1:${gatewayMqttPort}`,
    CLOUD_MQTT_SECRET: CLOUD_SECRET,
    CLOUD_INSTANCE: `image-${role}`,
    ...(role === "all" ? {} : { CLOUD_ROLE: role }),
    ...env,
  };
  const cloud = start(image, full, `cloud-${role}`);
  const base = `http://127.0.0.1:${port}`;
  assert.is(await answers(`${base}/healthz`, `cloud (${role})`, cloud.output), 200, `${role}: /healthz`);
  assert.is(await answers(`${base}/readyz`, `cloud (${role})`, cloud.output), 200, `${role}: /readyz`);
  assert.is(healthcheck("cloud", image, full), 0, `${role}: the HEALTHCHECK command passes`);
  if (role !== "bridge") {
    // the dashboard, the API reference and Swagger UI come from files the image copied, not from the repository
    assert.is((await fetch(`${base}/dashboard/`)).status, 200, `${role}: /dashboard/ from ui/dist/dashboard`);
    const spec = (await (await fetch(`${base}/api/v1/openapi.json`)).json()) as { info: { version: string } };
    assert.is(spec.info.version, JSON.parse(readFileSync(join(root, "cloud/package.json"), "utf8")).version);
    const css = await fetch(`${base}/api/v1/docs/swagger-ui.css`);
    assert.is(css.status, 200, `${role}: Swagger UI's files from node_modules/swagger-ui-dist`);
  }
  return cloud;
}

test("cloud image: API and bridge start from the image folder against that gateway, healthy in every role", async () => {
  const image = await build("cloud");
  await assertBundleDependencies("cloud", image);
  const app = join(image.finalRoot, image.finalWorkdir);
  assert.ok(existsSync(join(app, "cloud/migrations")), "migrations copied");
  assert.ok(existsSync(join(app, "ui/dist/dashboard/index.html")), "the ops dashboard copied");

  // role all, as npm start runs it: PGlite in memory
  const all = await cloudInRole(image, "all", {});
  assert.is(await stop(all.child), 0, "all: exits 0 on SIGTERM");
  console.log("cloud image, role all (PGlite): /healthz 200, /readyz 200, HEALTHCHECK 0, clean stop");

  // a bridge and an API side by side on one Postgres schema, as deploy/compose.yaml runs them
  if (!("CLOUD_ROLE" in CloudEnvSchema.shape)) {
    console.log("cloud image: this cloud has no CLOUD_ROLE yet; only role all was started");
    return;
  }
  const schema = `img_${Date.now().toString(36)}`;
  const db = { DATABASE_URL: PG_URL, DATABASE_SCHEMA: schema, REDIS_URL, REDIS_PREFIX: `${redisKeys.prefix}:cloud:` };
  try {
    const bridge = await cloudInRole(image, "bridge", db);
    const api = await cloudInRole(image, "api", db);
    assert.is(await stop(api.child), 0, "api: exits 0 on SIGTERM");
    assert.is(await stop(bridge.child), 0, "bridge: exits 0 on SIGTERM");
    console.log(
      "cloud image, roles bridge + api (one Postgres schema, Redis): /healthz 200, /readyz 200, HEALTHCHECK 0, clean stops",
    );
  } finally {
    const client = new pg.Client({ connectionString: PG_URL });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await client.end();
  }
});

test.after(async () => {
  for (const child of children) await stop(child).catch(() => child.kill("SIGKILL"));
  console.log(`removed ${await redisKeys.clear()} Redis keys under ${redisKeys.prefix}:`);
  await rm(scratch, { recursive: true, force: true });
});

test.run();
