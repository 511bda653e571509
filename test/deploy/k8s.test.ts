/**
 * deploy/k8s: every overlay renders with `kubectl kustomize`, every object it renders is a valid
 * Kubernetes object, and the policies of issue 19 hold in each: probes on /readyz and /healthz, requests
 * and limits, non-root and read-only pods, spread over zones, autoscalers (CPU for the API and the bridge,
 * connections per pod for the gateway), a disruption budget per Deployment, a Service per port, default-deny
 * NetworkPolicies where only the pods docs/kubernetes.md names reach Postgres, and no secret in git. The device
 * registry is a ReadWriteMany claim that the API mounts read-write and the others read-only, each polling it;
 * the API's seed step is run for real (sh, in a temporary directory) to show it never overwrites a registry.
 *
 * Validation is two checks from one package, kubernetes-models (the Kubernetes OpenAPI schemas):
 * its `validate()` (the JSON schema: types, required fields, formats), and, because those schemas let
 * unknown fields through, TypeScript's excess-property check of each object against the same package's
 * declarations, so a misspelt field (`readinesProbe`) fails too. The control cases prove both reject.
 */
import { spawnSync } from "node:child_process";
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Registry } from "@paylane/protocol";
import ts from "typescript";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { parse, parseAllDocuments } from "yaml";
import { CloudEnvSchema } from "../../cloud/src/config.ts";
import { GatewayEnvSchema } from "../../gateway/src/config.ts";

const root = join(import.meta.dirname, "..", "..");
const OVERLAYS = ["dev", "prod"] as const;
type Overlay = (typeof OVERLAYS)[number];

// biome-ignore lint/suspicious/noExplicitAny: rendered manifests are walked as plain JSON
type Obj = Record<string, any>;
type Labels = Record<string, string>;

// --- rendering -------------------------------------------------------------------------------------

const INSTALL_KUBECTL =
  "kubectl not found: install kubectl 1.27 or newer (it embeds kustomize v5; https://kubernetes.io/docs/tasks/tools/, " +
  "or the kubectl package beside google-cloud-cli; Debian's kubernetes-client is too old), or set KUBECTL to its path";

function kubectl(): string {
  const candidates = [process.env.KUBECTL, "/usr/bin/kubectl", "kubectl"].filter((c): c is string => Boolean(c));
  for (const bin of candidates) {
    const r = spawnSync(bin, ["version", "--client", "-o", "json"], { encoding: "utf8" });
    if (r.error || r.status !== 0) continue;
    const kustomize = String(JSON.parse(r.stdout).kustomizeVersion ?? "");
    if (!/^v[5-9]\./.test(kustomize)) {
      throw new Error(`${bin} embeds kustomize ${kustomize || "(none)"}; these overlays need v5: ${INSTALL_KUBECTL}`);
    }
    return bin;
  }
  throw new Error(INSTALL_KUBECTL);
}

function render(dir: string): Obj[] {
  const r = spawnSync(kubectl(), ["kustomize", dir], { cwd: root, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`kubectl kustomize ${dir} failed: ${r.stderr.trim()}`);
  return parseAllDocuments(r.stdout).map((d) => {
    if (d.errors.length) throw new Error(`${dir}: ${d.errors[0]?.message}`);
    return d.toJS() as Obj;
  });
}

const id = (o: Obj) => `${o.kind}/${o.metadata?.name}`;

// --- validation --------------------------------------------------------------------------------------

/** `apps/v1` → `kubernetes-models/apps/v1`; `v1` (core) → `kubernetes-models/v1`. */
const modulePath = (apiVersion: string) => `kubernetes-models/${apiVersion}`;

/** Errors of kubernetes-models' JSON schema check, one string per object that fails. */
async function schemaErrors(objects: Obj[]): Promise<string[]> {
  const errors: string[] = [];
  for (const o of objects) {
    let mod: Record<string, unknown>;
    try {
      mod = await import(modulePath(o.apiVersion));
    } catch {
      errors.push(`${id(o)}: no schema for apiVersion ${o.apiVersion}`);
      continue;
    }
    const Model = mod[o.kind] as (new (data: Obj) => { validate(): void }) | undefined;
    if (!Model) {
      errors.push(`${id(o)}: no schema for kind ${o.kind} in ${o.apiVersion}`);
      continue;
    }
    try {
      new Model(structuredClone(o)).validate();
    } catch (err) {
      errors.push(`${id(o)}: ${(err as Error).message}`);
    }
  }
  return errors;
}

/**
 * Errors of TypeScript's check of each object, as an object literal, against its interface in
 * kubernetes-models: unknown fields (excess properties) at any depth, and wrong types.
 */
const declarations = new Map<string, ts.SourceFile>();
function strictErrors(objects: Obj[]): string[] {
  const file = join(root, "test", "deploy", "k8s-objects.generated.ts");
  const lines: string[] = [];
  const starts: number[] = [];
  objects.forEach((o, i) => {
    lines.push(`import type { I${o.kind} as T${i} } from "${modulePath(o.apiVersion)}/${o.kind}";`);
  });
  objects.forEach((o, i) => {
    starts.push(lines.length);
    lines.push(`export const o${i}: T${i} = ${JSON.stringify(o, null, 2)};`);
  });
  const text = lines.join("\n");
  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, lang, ...rest) => {
    if (name === file) return ts.createSourceFile(name, text, lang);
    // The declarations parse once for all three checks.
    let parsed = declarations.get(name);
    if (!parsed) {
      parsed = getSourceFile(name, lang, ...rest);
      if (parsed) declarations.set(name, parsed);
    }
    return parsed;
  };
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => name === file || fileExists(name);
  const readFile = host.readFile.bind(host);
  host.readFile = (name) => (name === file ? text : readFile(name));
  const program = ts.createProgram([file], options, host);
  const source = program.getSourceFile(file);
  return ts.getPreEmitDiagnostics(program, source).map((d) => {
    const message = ts.flattenDiagnosticMessageText(d.messageText, " ");
    if (!d.file || d.file !== source || d.start === undefined) return message;
    const line = d.file.getLineAndCharacterOfPosition(d.start).line;
    const index = starts.findLastIndex((s) => s <= line);
    const o = objects[index];
    return `${o ? id(o) : "import"}: ${message}`;
  });
}

async function validationErrors(objects: Obj[]): Promise<string[]> {
  return [...(await schemaErrors(objects)), ...strictErrors(objects)];
}

// --- helpers for the policies ------------------------------------------------------------------------

const ofKind = (objects: Obj[], kind: string) => objects.filter((o) => o.kind === kind);
const named = (objects: Obj[], kind: string, name: string) => {
  const o = objects.find((x) => x.kind === kind && x.metadata?.name === name);
  assert.ok(o, `${kind}/${name} is rendered`);
  return o as Obj;
};
const selects = (selector: Obj | undefined, labels: Labels) => {
  assert.not.ok(selector?.matchExpressions, "selectors use matchLabels only (this test reads no expressions)");
  return Object.entries((selector?.matchLabels ?? {}) as Labels).every(([k, v]) => labels[k] === v);
};
const podLabels = (w: Obj): Labels => w.spec.template.metadata.labels;
const workloads = (objects: Obj[]) => objects.filter((o) => o.kind === "Deployment" || o.kind === "StatefulSet");

/** Every variable a container gets, literal or from a ConfigMap; values from Secrets as `secret:<name>/<key>`. */
function environment(objects: Obj[], container: Obj): Map<string, string> {
  const env = new Map<string, string>();
  for (const from of container.envFrom ?? []) {
    assert.ok(from.configMapRef, `${container.name}: envFrom is ConfigMaps only (Secrets by key)`);
    const cm = named(objects, "ConfigMap", from.configMapRef.name);
    for (const [k, v] of Object.entries(cm.data ?? {})) env.set(k, String(v));
  }
  for (const e of container.env ?? []) {
    const ref = e.valueFrom?.secretKeyRef;
    env.set(e.name, ref ? `secret:${ref.name}/${ref.key}` : e.valueFrom ? "(from the pod)" : String(e.value));
  }
  return env;
}

const renders = new Map<Overlay, Obj[]>();
async function rendered(overlay: Overlay): Promise<Obj[]> {
  let objects = renders.get(overlay);
  if (!objects) {
    objects = render(`deploy/k8s/overlays/${overlay}`);
    renders.set(overlay, objects);
  }
  return objects;
}

const DEPLOYMENTS = ["paylane-api", "paylane-bridge", "paylane-gateway"];
const REGISTRY_CLAIM = "paylane-registry";
const REGISTRY_FILE = "registry.json";

/** The API's init container that writes the first registry.json. */
function seedContainer(api: Obj): Obj {
  const seed = (api.spec.template.spec.initContainers ?? []).find((c: Obj) => c.name === "seed-registry");
  assert.ok(seed, "the API has a seed-registry init container");
  return seed as Obj;
}

/** Runs an init container's shell command as the pod would (its command and args), with `env`. */
function runInit(container: Obj, env: Record<string, string>) {
  const [bin, ...flags] = container.command as string[];
  const r = spawnSync(bin as string, [...flags, ...(container.args as string[])], {
    env: { PATH: process.env.PATH, ...env },
    encoding: "utf8",
    timeout: 10_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
const it = suite("deploy/k8s");

// --- the validator itself ----------------------------------------------------------------------------

it("control: the validator rejects a misspelt field, a wrong type and a missing required field", async () => {
  const gateway = named(await rendered("dev"), "Deployment", "paylane-gateway");
  assert.equal(await validationErrors([gateway]), [], "the rendered gateway Deployment is valid");

  const typo = structuredClone(gateway);
  const c = typo.spec.template.spec.containers[0];
  c.readinesProbe = c.readinessProbe;
  delete c.readinessProbe;
  const typoErrors = await validationErrors([typo]);
  assert.ok(
    typoErrors.some((e) => e.includes("readinesProbe") && e.includes("does not exist in type 'IContainer'")),
    `misspelt field refused: ${typoErrors}`,
  );

  const wrongType = structuredClone(gateway);
  wrongType.spec.replicas = "2";
  const typeErrors = await schemaErrors([wrongType]);
  assert.ok(
    typeErrors.some((e) => e.includes("replicas must be integer")),
    `string replicas refused: ${typeErrors}`,
  );

  const missing = structuredClone(gateway);
  delete missing.spec.template.spec.containers[0].name;
  const missingErrors = await schemaErrors([missing]);
  assert.ok(
    missingErrors.some((e) => e.includes("must have required property name")),
    `container without a name refused: ${missingErrors}`,
  );

  const unknownKind = { apiVersion: "apps/v1", kind: "Deploymnet", metadata: { name: "x" } };
  assert.equal(await schemaErrors([unknownKind]), ["Deploymnet/x: no schema for kind Deploymnet in apps/v1"]);
});

for (const overlay of OVERLAYS) {
  it(`${overlay}: renders, and every object validates against the Kubernetes schemas`, async () => {
    const objects = await rendered(overlay);
    assert.ok(objects.length > 20, `${overlay} renders its objects (${objects.length})`);
    assert.equal(await validationErrors(objects), []);
    for (const o of objects) {
      if (o.kind !== "Namespace") assert.ok(o.metadata.namespace, `${id(o)} has a namespace`);
    }
  });

  it(`${overlay}: probes, resources, security and zone spread on every workload`, async () => {
    const objects = await rendered(overlay);
    assert.equal(
      ofKind(objects, "Deployment")
        .map((d) => d.metadata.name)
        .sort(),
      DEPLOYMENTS,
    );
    for (const w of workloads(objects)) {
      const pod = w.spec.template.spec;
      const where = `${overlay} ${id(w)}`;
      assert.is(pod.securityContext?.runAsNonRoot, true, `${where}: runAsNonRoot`);
      assert.is(pod.securityContext?.seccompProfile?.type, "RuntimeDefault", `${where}: seccomp RuntimeDefault`);
      assert.is(pod.automountServiceAccountToken, false, `${where}: no API token mounted`);
      // Init containers too: Pod Security Admission "restricted" checks them as it checks the others.
      for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
        const sc = c.securityContext ?? {};
        assert.is(sc.readOnlyRootFilesystem, true, `${where}/${c.name}: read-only root filesystem`);
        assert.is(sc.allowPrivilegeEscalation, false, `${where}/${c.name}: no privilege escalation`);
        assert.ok(sc.capabilities?.drop?.includes("ALL"), `${where}/${c.name}: drops ALL capabilities`);
        for (const kind of ["requests", "limits"]) {
          assert.ok(c.resources?.[kind]?.cpu && c.resources?.[kind]?.memory, `${where}/${c.name}: ${kind} cpu+memory`);
        }
      }
      if (w.kind !== "Deployment") continue;
      const [c] = pod.containers;
      const ports = new Map<string | number, number>(
        c.ports.flatMap((p: Obj) => [
          [p.name, p.containerPort],
          [p.containerPort, p.containerPort],
        ]),
      );
      assert.is(c.readinessProbe?.httpGet?.path, "/readyz", `${where}: readiness on /readyz`);
      assert.is(c.livenessProbe?.httpGet?.path, "/healthz", `${where}: liveness on /healthz`);
      assert.ok(c.startupProbe?.httpGet, `${where}: a startup probe`);
      for (const probe of [c.readinessProbe, c.livenessProbe, c.startupProbe]) {
        assert.ok(ports.has(probe.httpGet.port), `${where}: probe port ${probe.httpGet.port} is a container port`);
      }
      const zone = pod.topologySpreadConstraints?.find((t: Obj) => t.topologyKey === "topology.kubernetes.io/zone");
      assert.ok(zone, `${where}: spread over topology.kubernetes.io/zone`);
      assert.ok(selects(zone.labelSelector, podLabels(w)), `${where}: the zone spread counts its own pods`);
      if (overlay === "prod") assert.is(zone.whenUnsatisfiable, "DoNotSchedule", `${where}: prod enforces zones`);
      assert.not.ok("replicas" in w.spec, `${where}: no replicas, the HPA owns the count`);
    }
  });

  it(`${overlay}: each service gets only variables it reads, listening on every interface`, async () => {
    const objects = await rendered(overlay);
    // Names of issue 19's contracts (notes/contracts.md) that a service may not declare in its schema yet.
    const known = {
      "paylane-gateway": new Set([...Object.keys(GatewayEnvSchema.shape), "GATEWAY_REDIS_URL", "GATEWAY_INSTANCE"]),
      cloud: new Set([...Object.keys(CloudEnvSchema.shape), "CLOUD_ROLE", "CLOUD_SHARE_GROUP", "CLOUD_SITES"]),
    };
    for (const d of ofKind(objects, "Deployment")) {
      const [c] = d.spec.template.spec.containers;
      const env = environment(objects, c);
      const isGateway = d.metadata.name === "paylane-gateway";
      const names = isGateway ? known["paylane-gateway"] : known.cloud;
      for (const name of env.keys()) assert.ok(names.has(name), `${d.metadata.name}: ${name} is a variable it reads`);
      // Each file a variable names is in a mounted volume, under the key the volume projects.
      const files = isGateway ? ["REGISTRY_PATH", "MQTT_TLS_CERT", "MQTT_TLS_KEY"] : ["REGISTRY_PATH"];
      for (const variable of files) {
        const path = env.get(variable) ?? "";
        const mount = c.volumeMounts?.find((m: Obj) => path.startsWith(`${m.mountPath}/`));
        assert.ok(mount, `${d.metadata.name}: ${variable}=${path} is in a mounted volume`);
        const volume = d.spec.template.spec.volumes.find((v: Obj) => v.name === mount.name);
        const key = path.slice(mount.mountPath.length + 1);
        if (volume.configMap) {
          const cm = named(objects, "ConfigMap", volume.configMap.name);
          assert.ok(
            key in (cm.data ?? {}),
            `${d.metadata.name}: ${variable}: ConfigMap ${cm.metadata.name} has ${key}`,
          );
        } else if (volume.persistentVolumeClaim) {
          // A claim's content is written at run time: the registry's is checked in its own test below.
          named(objects, "PersistentVolumeClaim", volume.persistentVolumeClaim.claimName);
        } else {
          assert.ok(volume.secret, `${d.metadata.name}: ${variable} is in a ConfigMap or a Secret`);
          // kubernetes.io/tls Secrets hold tls.crt and tls.key
          assert.ok(
            ["tls.crt", "tls.key"].includes(key),
            `${d.metadata.name}: ${variable}: ${key} is a TLS Secret key`,
          );
        }
      }
      const port = (name: string) => c.ports.find((p: Obj) => p.name === name)?.containerPort;
      if (isGateway) {
        assert.is(env.get("MQTT_HOST"), "0.0.0.0");
        assert.is(Number(env.get("MQTT_PORT")), port("mqtt"));
        assert.is(Number(env.get("MQTT_TLS_PORT")), port("mqtts"));
        assert.is(Number(env.get("GATEWAY_HTTP_PORT")), port("ops"));
        assert.match(env.get("GATEWAY_REDIS_URL") ?? "", /^secret:/, "the gateway shares its state through Redis");
      } else {
        assert.is(env.get("CLOUD_ROLE"), d.metadata.name.replace("paylane-", ""));
        assert.is(env.get("CLOUD_HOST"), "0.0.0.0");
        assert.is(env.get("CLOUD_METRICS_HOST"), "0.0.0.0");
        assert.is(Number(env.get("CLOUD_PORT")), port("http"));
        assert.is(Number(env.get("CLOUD_METRICS_PORT")), port("metrics"));
        assert.match(env.get("DATABASE_URL") ?? "", /^secret:/);
        const mqtt = new URL(env.get("MQTT_URL") ?? "");
        const svc = named(objects, "Service", mqtt.hostname);
        assert.is(svc.spec.ports[0].port, Number(mqtt.port), "MQTT_URL names the gateway's plain MQTT Service");
      }
    }
  });

  it(`${overlay}: the registry is a ReadWriteMany claim, read-write in the API, read-only elsewhere, polled by all`, async () => {
    const objects = await rendered(overlay);
    const claim = named(objects, "PersistentVolumeClaim", REGISTRY_CLAIM);
    assert.equal(claim.spec.accessModes, ["ReadWriteMany"], `${overlay}: pods on several nodes mount it at once`);
    assert.not.ok(
      ofKind(objects, "ConfigMap").some((cm) => cm.metadata.name === REGISTRY_CLAIM),
      `${overlay}: the registry is no ConfigMap any more`,
    );
    for (const d of ofKind(objects, "Deployment")) {
      const name = d.metadata.name;
      const pod = d.spec.template.spec;
      const volume = pod.volumes.find((v: Obj) => v.persistentVolumeClaim?.claimName === REGISTRY_CLAIM);
      assert.ok(volume, `${overlay} ${name}: mounts the registry claim`);
      const writes = name === "paylane-api";
      if (!writes) assert.is(volume.persistentVolumeClaim.readOnly, true, `${overlay} ${name}: the claim is read-only`);
      for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
        for (const m of (c.volumeMounts ?? []).filter((m: Obj) => m.name === volume.name)) {
          assert.is(
            Boolean(m.readOnly),
            !writes,
            `${overlay} ${name}/${c.name}: ${writes ? "read-write" : "read-only"}`,
          );
        }
      }
      const [c] = pod.containers;
      const env = environment(objects, c);
      const mount = c.volumeMounts.find((m: Obj) => m.name === volume.name);
      assert.is(env.get("REGISTRY_PATH"), `${mount?.mountPath}/${REGISTRY_FILE}`, `${overlay} ${name}: REGISTRY_PATH`);
      // Another node's write reaches no file watch: each pod polls, with a value its own schema accepts.
      const schema = name === "paylane-gateway" ? GatewayEnvSchema : CloudEnvSchema;
      const poll = schema.shape.REGISTRY_POLL_MS.safeParse(env.get("REGISTRY_POLL_MS"));
      assert.ok(poll.success && typeof poll.data === "number", `${overlay} ${name}: REGISTRY_POLL_MS is set and valid`);
    }

    // The API seeds the volume from the overlay's registry.json, which must be a registry the services load.
    const api = named(objects, "Deployment", "paylane-api");
    const seed = seedContainer(api);
    const seedEnv = environment(objects, seed);
    const [apiContainer] = api.spec.template.spec.containers;
    const configRef = seed.env.find((e: Obj) => e.name === "REGISTRY_PATH")?.valueFrom?.configMapKeyRef;
    assert.ok(configRef, `${overlay}: the seed step reads REGISTRY_PATH from a ConfigMap`);
    assert.ok(
      apiContainer.envFrom.some((f: Obj) => f.configMapRef?.name === configRef.name),
      `${overlay}: from the ConfigMap the API reads, so both name the same file`,
    );
    const seedPath = seedEnv.get("REGISTRY_SEED") ?? "";
    const seedMount = seed.volumeMounts.find((m: Obj) => seedPath.startsWith(`${m.mountPath}/`));
    assert.ok(seedMount?.readOnly, `${overlay}: REGISTRY_SEED=${seedPath} is in a read-only mount`);
    const seedVolume = api.spec.template.spec.volumes.find((v: Obj) => v.name === seedMount.name);
    const seedMap = named(objects, "ConfigMap", seedVolume.configMap.name);
    const seedText = seedMap.data?.[seedPath.slice(seedMount.mountPath.length + 1)];
    assert.ok(seedText, `${overlay}: ConfigMap ${seedMap.metadata.name} holds the seed`);
    Registry.fromText(seedText, `${overlay} seed`);
  });

  it(`${overlay}: autoscalers on CPU (API, bridge) and on connections per gateway; a PDB per Deployment`, async () => {
    const objects = await rendered(overlay);
    const hpas = ofKind(objects, "HorizontalPodAutoscaler");
    const pdbs = ofKind(objects, "PodDisruptionBudget");
    for (const d of ofKind(objects, "Deployment")) {
      const name = d.metadata.name;
      const hpa = hpas.find((h) => h.spec.scaleTargetRef.kind === "Deployment" && h.spec.scaleTargetRef.name === name);
      assert.ok(hpa, `${overlay}: an HPA scales ${name}`);
      assert.is(hpa.apiVersion, "autoscaling/v2");
      assert.ok(hpa.spec.maxReplicas >= hpa.spec.minReplicas);
      const cpu = hpa.spec.metrics.find((m: Obj) => m.type === "Resource" && m.resource.name === "cpu");
      if (name === "paylane-gateway") {
        const pods = hpa.spec.metrics.find((m: Obj) => m.type === "Pods");
        assert.is(pods?.pods.metric.name, "paylane_gateway_clients", "the gateway scales on its connections gauge");
      } else {
        assert.ok(cpu, `${name} scales on CPU`);
      }
      const pdb = pdbs.filter((p) => selects(p.spec.selector, podLabels(d)));
      assert.is(pdb.length, 1, `${overlay}: one PodDisruptionBudget covers ${name}`);
    }
    if (overlay === "prod")
      assert.ok(
        hpas.every((h) => h.spec.minReplicas >= 3),
        "prod: one pod per zone at least",
      );
    if (overlay === "dev")
      assert.ok(
        hpas.every((h) => h.spec.minReplicas === 1),
        "dev: one replica each",
      );
  });

  it(`${overlay}: a Service per port, 1883, 8883 and HTTP among them, each reaching a container port`, async () => {
    const objects = await rendered(overlay);
    const services = ofKind(objects, "Service");
    for (const s of services) {
      assert.is(s.spec.ports.length, 1, `${id(s)}: one port per Service`);
      const [p] = s.spec.ports;
      const backends = workloads(objects).filter((w) => selects(s.spec.selector, podLabels(w)));
      assert.ok(backends.length > 0, `${id(s)} selects a workload`);
      const containerPorts = backends.flatMap((w) => w.spec.template.spec.containers.flatMap((c: Obj) => c.ports));
      assert.ok(
        containerPorts.some((cp: Obj) => cp.name === p.targetPort || cp.containerPort === p.targetPort),
        `${id(s)}: targetPort ${p.targetPort} is a container port`,
      );
    }
    const byPort = (port: number) => services.find((s) => s.spec.ports[0].port === port);
    assert.ok(byPort(1883), "plain MQTT Service");
    assert.ok(byPort(8883), "MQTT over TLS Service");
    assert.ok(byPort(8080), "HTTP API Service");
    assert.ok(byPort(8070) && byPort(9464), "metrics Services");
    if (overlay === "prod") {
      assert.is(byPort(8883)?.spec.type, "LoadBalancer", "prod: kiosks reach mqtts through a load balancer");
      assert.is(byPort(8883)?.spec.externalTrafficPolicy, "Local", "prod: the gateway sees each kiosk's address");
      assert.is(byPort(1883)?.spec.type, "ClusterIP", "prod: plain MQTT stays inside the cluster");
    }
  });

  it(`${overlay}: default deny, and only the API and the bridge reach Postgres`, async () => {
    const objects = await rendered(overlay);
    const policies = ofKind(objects, "NetworkPolicy");
    assert.ok(
      policies.some(
        (p) =>
          Object.keys(p.spec.podSelector ?? {}).length === 0 &&
          p.spec.policyTypes?.includes("Ingress") &&
          p.spec.policyTypes?.includes("Egress") &&
          !p.spec.ingress &&
          !p.spec.egress,
      ),
      `${overlay}: a default-deny policy for every pod, both ways`,
    );
    const allows = (rules: Obj[] | undefined, port: number) =>
      (rules ?? []).some(
        (r) =>
          !r.ports?.length ||
          r.ports.some((p: Obj) => p.port === port || (p.endPort && p.port <= port && port <= p.endPort)),
      );
    const policiesOf = (w: Obj, type: string) =>
      policies.filter((p) => p.spec.policyTypes?.includes(type) && selects(p.spec.podSelector, podLabels(w)));
    const reachPostgres = workloads(objects)
      .filter((w) => policiesOf(w, "Egress").some((p) => allows(p.spec.egress, 5432)))
      .map((w) => w.metadata.name)
      .sort();
    assert.equal(reachPostgres, ["paylane-api", "paylane-bridge"], `${overlay}: who may open port 5432`);

    if (overlay === "dev") {
      // The in-cluster Postgres admits exactly those pods, and they reach it, not any address.
      const postgres = named(objects, "StatefulSet", "paylane-postgres");
      const rules = policiesOf(postgres, "Ingress").flatMap((p) => p.spec.ingress ?? []);
      assert.ok(rules.length > 0, "dev: Postgres admits someone");
      const admitted = workloads(objects)
        .filter((w) =>
          rules.some((r) => allows([r], 5432) && r.from?.some((f: Obj) => selects(f.podSelector, podLabels(w)))),
        )
        .map((w) => w.metadata.name)
        .sort();
      assert.equal(admitted, ["paylane-api", "paylane-bridge"], "dev: Postgres admits the API and the bridge only");
      const egress = named(objects, "NetworkPolicy", "paylane-postgres-egress").spec.egress[0].to;
      assert.ok(
        egress.every((t: Obj) => t.podSelector && selects(t.podSelector, podLabels(postgres))),
        "dev: Postgres egress goes to the Postgres pods only",
      );
    }
  });

  it(`${overlay}: Secrets referenced by name, never inlined`, async () => {
    const objects = await rendered(overlay);
    assert.equal(
      ofKind(objects, "Secret").map(id),
      [],
      "no Secret object in the rendered manifests (created outside git)",
    );
    const docs = readFileSync(join(root, "docs", "kubernetes.md"), "utf8");
    const secretName =
      /(SECRET|TOKEN|PASSWORD|ROUTING_KEY)$|^(DATABASE_URL|DATABASE_READ_URL|REDIS_URL|GATEWAY_REDIS_URL)$/;
    const credentialsInUrl = /:\/\/[^/@\s:]*:[^/@\s]+@/;
    for (const cm of ofKind(objects, "ConfigMap")) {
      for (const [k, v] of Object.entries(cm.data ?? {})) {
        assert.not.ok(secretName.test(k), `${id(cm)}: ${k} belongs in a Secret`);
        assert.not.ok(credentialsInUrl.test(String(v)), `${id(cm)}: ${k} has credentials in a URL`);
      }
    }
    for (const w of workloads(objects)) {
      const pod = w.spec.template.spec;
      for (const c of pod.containers) {
        for (const e of c.env ?? []) {
          if (secretName.test(e.name)) {
            assert.ok(e.valueFrom?.secretKeyRef, `${id(w)}: ${e.name} comes from a Secret (secretKeyRef)`);
          }
          assert.not.ok(credentialsInUrl.test(String(e.value ?? "")), `${id(w)}: ${e.name} has credentials in a URL`);
          const ref = e.valueFrom?.secretKeyRef;
          // Whoever deploys must be told which Secret and key to create: the docs name each.
          if (ref) assert.ok(docs.includes(ref.name) && docs.includes(ref.key), `docs name ${ref.name}/${ref.key}`);
        }
      }
      for (const v of pod.volumes ?? []) {
        if (v.secret) assert.ok(docs.includes(v.secret.secretName), `docs name the Secret ${v.secret.secretName}`);
      }
    }
  });
}

it("seed-registry, run for real: writes the seed into an empty volume, and never over a registry", async () => {
  const seed = seedContainer(named(await rendered("prod"), "Deployment", "paylane-api"));
  const dir = mkdtempSync(join(tmpdir(), "paylane-seed-registry-"));
  try {
    // As the pod has them: the seed behind a ConfigMap mount's symlink, an empty volume beside it.
    const seedData = join(dir, "seed", "..data");
    mkdirSync(seedData, { recursive: true });
    const seedText = readFileSync(join(root, "deploy", "k8s", "overlays", "prod", REGISTRY_FILE), "utf8");
    writeFileSync(join(seedData, REGISTRY_FILE), seedText);
    symlinkSync(join("..data", REGISTRY_FILE), join(dir, "seed", REGISTRY_FILE));
    const volume = join(dir, "volume");
    mkdirSync(volume);
    const env = { REGISTRY_PATH: join(volume, REGISTRY_FILE), REGISTRY_SEED: join(dir, "seed", REGISTRY_FILE) };

    const first = runInit(seed, env);
    assert.is(first.status, 0, first.stderr);
    assert.match(first.stdout, "written from");
    assert.is(readFileSync(env.REGISTRY_PATH, "utf8"), seedText, "an empty volume gets the seed");
    assert.equal(readdirSync(volume), [REGISTRY_FILE], "no lock and no temporary file left behind");

    // The API enrols a kiosk; the pod restarts (or another API pod starts): the registry stays as it is.
    const enrolled = seedText.replace(
      '"devices": []',
      '"devices": [{ "site": "s1", "device": "k1", "secretHash": "…" }]',
    );
    assert.is.not(enrolled, seedText);
    writeFileSync(env.REGISTRY_PATH, enrolled);
    const second = runInit(seed, env);
    assert.is(second.status, 0, second.stderr);
    assert.ok(readFileSync(env.REGISTRY_PATH, "utf8") === enrolled, "the enrolled kiosk is still there");
    assert.match(second.stdout, "kept as it is");
    assert.equal(readdirSync(volume), [REGISTRY_FILE]);

    // A lock left by a process that died holding it (untouched for two minutes) does not block the seed.
    rmSync(env.REGISTRY_PATH);
    const lock = `${env.REGISTRY_PATH}.lock`;
    mkdirSync(lock);
    const twoMinutesAgo = new Date(Date.now() - 120_000);
    utimesSync(lock, twoMinutesAgo, twoMinutesAgo);
    const stale = runInit(seed, env);
    assert.is(stale.status, 0, stale.stderr);
    assert.match(stale.stdout, "left by a process that died");
    assert.is(readFileSync(env.REGISTRY_PATH, "utf8"), seedText);
    assert.equal(readdirSync(volume), [REGISTRY_FILE]);

    // A volume it cannot write (here: not mounted where REGISTRY_PATH says): the real reason at once,
    // not two minutes of waiting on a lock nobody holds.
    const unwritable = runInit(seed, { ...env, REGISTRY_PATH: join(dir, "not-mounted", REGISTRY_FILE) });
    assert.is(unwritable.status, 1);
    assert.match(unwritable.stderr, /No such file or directory/);
    assert.match(unwritable.stderr, "seed-registry: cannot create");
    assert.not.match(unwritable.stderr, "has been held");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it("wait-for-registry, run for real: the gateway and the bridge start at once when the registry is there", async () => {
  const dir = mkdtempSync(join(tmpdir(), "paylane-wait-registry-"));
  try {
    const path = join(dir, REGISTRY_FILE);
    writeFileSync(path, readFileSync(join(root, "deploy", "k8s", "overlays", "prod", REGISTRY_FILE)));
    for (const name of ["paylane-gateway", "paylane-bridge"]) {
      const d = named(await rendered("prod"), "Deployment", name);
      const wait = (d.spec.template.spec.initContainers ?? []).find((c: Obj) => c.name === "wait-for-registry");
      assert.ok(wait, `${name} waits for the registry`);
      const run = runInit(wait, { REGISTRY_PATH: path });
      assert.is(run.status, 0, run.stderr);
      assert.is(run.stdout, "", `${name}: no wait when the registry exists`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it("the gateway's autoscaling metric is the gauge the gateway exports, served by the prometheus-adapter rule", async () => {
  const source = readFileSync(join(root, "gateway", "src", "gateway.ts"), "utf8");
  assert.match(source, /new Gauge\(\{\s*name: "paylane_gateway_clients"/, "gateway/src/gateway.ts exports the gauge");
  const values = parse(readFileSync(join(root, "deploy", "k8s", "prometheus-adapter", "values.yaml"), "utf8"));
  const rule = values.rules.custom.find((r: Obj) => r.name.as === "paylane_gateway_clients");
  assert.ok(rule, "prometheus-adapter serves paylane_gateway_clients");
  assert.match(rule.seriesQuery, /^paylane_gateway_clients\{/);
  assert.equal(rule.resources.overrides.pod, { resource: "pod" }, "per pod, as a Pods metric needs");
  for (const overlay of OVERLAYS) {
    const hpa = named(await rendered(overlay), "HorizontalPodAutoscaler", "paylane-gateway");
    const pods = hpa.spec.metrics.find((m: Obj) => m.type === "Pods");
    assert.is(pods.pods.metric.name, rule.name.as, `${overlay}: the HPA asks for the metric the adapter serves`);
  }
});

it.run();
