import type { SetupFailure, SetupState } from "@paylane/protocol/setup-api";

/** What went wrong and how to fix it, in an installer's words. */
export interface FailureWords {
  message: string;
  fix: string;
}

const CREATE = "Create a new one with: paylane-provision claim create";

/**
 * The words for each failure when the daemon sends none of its own (it
 * usually does; an older daemon or a reason added later may not).
 */
const WORDS: Record<SetupFailure, (s: SetupState) => FailureWords> = {
  "claim-unknown": () => ({ message: "The cloud does not know this claim code.", fix: `Check the code. ${CREATE}` }),
  "claim-used": () => ({
    message: "This claim code has already enrolled a kiosk.",
    fix: `Each code works once. ${CREATE}`,
  }),
  "claim-expired": () => ({ message: "This claim code has expired.", fix: CREATE }),
  "claim-other-site": (s) => ({
    message: "This claim code is for another site.",
    fix: `Use a code created for site ${s.site}.`,
  }),
  "device-taken": (s) => ({
    message: `Another kiosk is already enrolled as ${s.device}.`,
    fix: "Revoke it first (paylane-provision device revoke), or build this kiosk's image with another device id.",
  }),
  "clock-skew": () => ({
    message: "This kiosk's clock is wrong.",
    fix: "Let the kiosk reach a time server (NTP) on this network, then try again.",
  }),
  "bad-signature": () => ({
    message: "The cloud could not verify this kiosk's key.",
    fix: "Try again. If it keeps failing, flash the image again.",
  }),
  "device-revoked": () => ({
    message: "This kiosk was revoked.",
    fix: `Enrol it again with a new claim code. ${CREATE}`,
  }),
  "rate-limited": () => ({ message: "Too many enrolment attempts.", fix: "Wait a minute, then try again." }),
  "invalid-code": () => ({ message: "This claim code has a typo.", fix: "Check each group of five digits." }),
  "no-network": () => ({
    message: "This kiosk has no network.",
    fix: "Plug in Ethernet or check the Wi-Fi settings in the image.",
  }),
  "cloud-unreachable": (s) => ({
    message: "The cloud does not answer.",
    fix: `Check that this network can reach ${s.cloudUrl} (firewall, proxy), then try again.`,
  }),
  "cloud-error": () => ({ message: "The cloud could not enrol this kiosk right now.", fix: "Try again in a minute." }),
};

/** The daemon's words for the failure, filling in whichever it left out. */
export function failureWords(state: SetupState): FailureWords {
  const { reason, message, fix } = state.enrolment;
  const fallback = reason
    ? WORDS[reason](state)
    : { message: "Enrolment failed.", fix: "Try again. If it keeps failing, open Diagnostics." };
  return { message: prose(message || fallback.message), fix: prose(fix || fallback.fix) };
}

/** The daemon words failures as CLI lines ("each code works once; create a new one"): on screen, sentences. */
function prose(text: string): string {
  const line = sentence(text.trim());
  return /[.!?…]$/.test(line) ? line : `${line}.`;
}

/** A line as the screen shows it: the shared checks and the daemon word theirs for a CLI, in lower case. */
export function sentence(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
