/**
 * `paylane-provision enrol`: enrols a kiosk with a claim code, the way its
 * daemon does in setup mode (the same client: device/src/setup), from a
 * shell: at first boot, or by hand. It prints each step and the result,
 * never the claim code nor the secret, and exits 0 when the kiosk is
 * enrolled (or already was), 1 with the reason and the fix when not.
 */
import {
  EnrolClient,
  type EnrolProgress,
  loadKioskFile,
  loadOrCreateDeviceKey,
  readCloudCa,
  rewriteKioskFile,
} from "@paylane/device";
import { realTimers } from "@paylane/protocol";
import { ConfigError } from "@paylane/protocol/service";
import { type Command, InvalidArgumentError } from "commander";
import pino from "pino";
import { ProvisionError } from "./errors.ts";

interface EnrolOptions {
  config?: string;
  claim?: string;
  attempts: number;
  again: boolean;
}

const attempts = (value: string): number => {
  if (!/^\d+$/.test(value) || Number(value) > 1000)
    throw new InvalidArgumentError("expected a whole number from 0 (keep trying) to 1000");
  return Number(value);
};

const say = (step: string, text: string) => process.stdout.write(`${step.padEnd(11)}${text}\n`);

export function enrolCommand(program: Command): void {
  program
    .command("enrol")
    .description(
      "Enrols the kiosk that kiosk.json describes: makes its Ed25519 key (<dataDir>/device-key.pem, never sent) and " +
        "secret, presents the claim code to the cloud's POST /api/v1/enrol over HTTPS (cloudCa for a private CA), and " +
        "writes its identity into kiosk.json (secret and device added, claim removed). The daemon does the same by " +
        "itself in setup mode; this is for a first-boot script or by hand. Never prints the code or the secret.",
    )
    .option("-c, --config <file>", "the kiosk's kiosk.json (required)")
    .option(
      "--claim <code>",
      'the claim code, or "-" to read it from standard input (not seen in ps); default: claim in kiosk.json',
    )
    .option("--attempts <n>", "tries while the cloud cannot be reached, with backoff (0: keep trying)", attempts, 5)
    .option(
      "--again",
      "enrol an enrolled kiosk anew (after a revoke, or to move it): its old secret is dropped, its key kept",
      false,
    )
    .addHelpText(
      "after",
      "\nExamples:\n  paylane-provision enrol --config /etc/paylane/kiosk.json\n" +
        "  paylane-provision enrol -c kiosk.json --claim 12345-67890-12345-67894\n" +
        "  paylane-provision enrol -c kiosk.json --again --claim -     # a revoked kiosk, with a new code on stdin\n",
    )
    .action(async (o: EnrolOptions) => {
      if (!o.config) throw new ConfigError("missing --config: the kiosk's kiosk.json");
      let loaded = await loadKioskFile(o.config);
      if (loaded.enrolled && o.again) {
        // Stop the daemon first (systemctl stop paylane-device): it holds the old identity in memory.
        await rewriteKioskFile(o.config, loaded.raw, { secret: undefined, nextSecret: undefined });
        say("again", `${loaded.config.site}/${loaded.config.device}: the old secret is dropped from ${o.config}`);
        loaded = await loadKioskFile(o.config);
      }
      if (loaded.enrolled) {
        say(
          "enrolled",
          `already: ${loaded.config.site}/${loaded.config.device} (kiosk.json has its secret); nothing to do ` +
            "(after a revoke: --again with a new claim code)",
        );
        return;
      }
      const code = o.claim === "-" ? (await readStdin()).trim() : (o.claim ?? loaded.file.claim);
      if (!code) throw new ConfigError("no claim code: pass --claim, or set claim in kiosk.json");
      const key = await loadOrCreateDeviceKey(loaded.file.dataDir);
      const client = new EnrolClient({
        configPath: o.config,
        raw: loaded.raw,
        file: loaded.file,
        key,
        ca: await readCloudCa(loaded.file),
        logger: pino({ level: process.env.LOG_LEVEL ?? "silent" }),
        timers: realTimers,
        now: () => new Date(),
        maxAttempts: o.attempts === 0 ? undefined : o.attempts,
        onProgress: (p) => report(p, `${loaded.file.site}/${client.device}`, loaded.file.cloudUrl),
      });
      say("key", `${client.device}, fingerprint ${key.fingerprint} (${loaded.file.dataDir}/device-key.pem)`);
      const outcome = await client.enrol(code);
      if (!outcome.ok)
        throw new ProvisionError(
          `enrolment failed (${outcome.failure.reason}): ${outcome.failure.message}; ${outcome.failure.fix}`,
        );
      say(
        "done",
        `${outcome.response.username} enrolled at ${outcome.response.enrolledAt}; ${o.config} holds its identity`,
      );
    });
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

function report(p: EnrolProgress, who: string, cloudUrl: string): void {
  if (p.state === "enrolling" && p.step === "request")
    say("request", `asking ${new URL(cloudUrl).origin} to enrol ${who}`);
  else if (p.state === "enrolled") say("registered", `${who}: kiosk.json rewritten (secret added, claim removed)`);
  else if (p.state === "failed" && p.failure && /trying again/.test(p.failure.message))
    say("retry", `${p.failure.reason}: ${p.failure.message}`);
}
