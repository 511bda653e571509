/** The provisioning library: what paylane-provision is made of, for tests and other tools. */
export { ProvisionError } from "./cli/errors.ts";
