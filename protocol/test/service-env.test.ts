/** The shared environment helper: only the schema's variables, blank is unset, every bad one named. */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { z } from "zod";
import {
  ConfigError,
  describeConfigIssues,
  envBoolean,
  envInteger,
  environmentHelp,
  envPort,
  parseEnv,
  timeZone,
} from "../src/service/index.ts";

const Schema = z.object({
  PORT: envPort().default(8080).describe("the port"),
  RETRIES: envInteger(0, 5).optional().describe("how often"),
  TZ_NAME: timeZone().default("UTC"),
  FLAG: envBoolean().default(false),
});

test("reads only the schema's variables; an empty or blank one is unset", () => {
  const env = parseEnv(Schema, { PORT: " 81 ", RETRIES: "", TZ_NAME: "  ", FLAG: "1", HOME: "/root", OTHER_PORT: "x" });
  assert.equal(env, { PORT: 81, RETRIES: undefined, TZ_NAME: "UTC", FLAG: true });
});

test("every bad variable is named in one line, as a ConfigError", () => {
  try {
    parseEnv(Schema, { PORT: "80 80", RETRIES: "9", TZ_NAME: "Mars/Olympus", FLAG: "yes" });
    assert.unreachable("should throw");
  } catch (err) {
    assert.instance(err, ConfigError);
    assert.is(
      (err as Error).message,
      "PORT: expected a TCP port, an integer from 0 to 65535; RETRIES: expected an integer from 0 to 5; " +
        "TZ_NAME: unknown time zone 'Mars/Olympus' (use an IANA name such as Europe/Berlin); FLAG: expected true or false",
    );
  }
  assert.throws(() => parseEnv(Schema, { PORT: "1e3" }), /PORT/);
  assert.throws(() => parseEnv(Schema, { PORT: "-1" }), /PORT/);
  assert.is(parseEnv(Schema, { TZ_NAME: "Europe/Berlin" }).TZ_NAME, "Europe/Berlin");
});

test("an unknown key in a strict object is named, one issue per key", () => {
  const result = z.strictObject({ http: z.strictObject({ port: z.number() }) }).safeParse({
    http: { port: 1, tls: true, cert: "x" },
    bogus: 1,
  });
  assert.ok(!result.success);
  assert.is(
    describeConfigIssues(result.error),
    'http: unknown key "tls"; http: unknown key "cert"; unknown key "bogus"',
  );
});

test("environmentHelp lists the described variables with their defaults", () => {
  const help = environmentHelp(Schema);
  assert.match(help, /^ {2}PORT {5}the port \(default 8080\)$/m);
  assert.match(help, /^ {2}RETRIES {2}how often$/m);
  assert.not.match(help, "TZ_NAME", "undescribed variables are internal");
});

test.run();
