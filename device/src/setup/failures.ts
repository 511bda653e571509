/** Why an enrolment (or rotation) failed, with what to do about it: what the setup screen and the CLI say. */
import { ENROL_REFUSALS, type EnrolRefusal } from "@paylane/protocol";
import type { SetupFailure } from "@paylane/protocol/setup-api";

export interface Failure {
  reason: SetupFailure;
  /** What went wrong, in words. */
  message: string;
  /** How to fix it, in words. */
  fix: string;
}

/** The cloud's refusal, split at its first ": " into what happened and what to do. */
export function refusal(reason: EnrolRefusal, detail?: string): Failure {
  const text = ENROL_REFUSALS[reason];
  const at = text.indexOf(": ");
  const [message, fix] =
    at < 0 ? [text, "create a new claim code and try again"] : [text.slice(0, at), text.slice(at + 2)];
  return { reason, message: detail && reason === "bad-signature" ? `${message} (${detail})` : message, fix };
}

export const isRefusal = (reason: string): reason is EnrolRefusal => Object.hasOwn(ENROL_REFUSALS, reason);

export function kioskFailure(
  reason: Exclude<SetupFailure, EnrolRefusal>,
  message: string,
  cloudHost = "the cloud",
): Failure {
  const fixes: Record<typeof reason, string> = {
    "invalid-code": "type the code again (four groups of five digits) or scan its QR code",
    "no-network": "connect the network cable or set up Wi-Fi; the kiosk keeps trying by itself",
    "cloud-unreachable": `check that ${cloudHost} is reachable from this network (firewall, proxy) and that cloudCa trusts its certificate; the kiosk keeps trying`,
    "cloud-error": "the kiosk keeps trying; if this goes on, tell the cloud's operator",
  };
  return { reason, message, fix: fixes[reason] };
}
