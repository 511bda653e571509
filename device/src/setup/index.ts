/** Enrolment and credentials, for the tools that run them outside the daemon (`paylane-provision enrol`). */
export * from "./cloud-request.ts";
export * from "./device-key.ts";
export * from "./enrol-client.ts";
export * from "./failures.ts";
export * from "./kiosk-runner.ts";
export { rewriteKioskFile } from "./private-file.ts";
export { readCloudCa } from "./setup-mode.ts";
