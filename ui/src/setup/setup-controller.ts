import type { SetupState } from "@paylane/protocol/setup-api";
import type { ReactiveController, ReactiveControllerHost } from "lit";
import { getSetup, postClaim, probeSetupMode } from "./api.ts";

export interface SetupOptions {
  /** How often the setup state is fetched while in setup, and the daemon asked while it does not answer. */
  pollMs: () => number;
  /** True while the kiosk's live view is up: the daemon is running normally, nothing to ask. */
  running: () => boolean;
  /** Enrolled, and the daemon runs as a kiosk: setup is over. */
  onDone: () => void;
}

/**
 * Whether the kiosk is in setup mode, and its setup state while it is.
 *
 * While the live view is down the daemon is asked (`GET /api/state`: 409
 * `{setup: true}` means not enrolled) until it says either way. In setup,
 * `/api/setup` is polled; once it says enrolled, the daemon is asked again,
 * and setup ends (`onDone`) when it answers as a running kiosk, so the
 * enrolled screen stays up until there is a kiosk to go to.
 */
export class SetupController implements ReactiveController {
  /** The daemon is in setup mode: the setup screen is up. */
  active = false;
  /** The latest setup state; undefined until the first answer. */
  state: SetupState | undefined;
  /** Why the last call failed (the daemon is unreachable), while it stays failed. */
  error: string | undefined;
  /** A claim code is on its way. */
  busy = false;
  /** How many claim codes the daemon has taken: each starts an enrolment whose outcome replaces the last. */
  accepted = 0;

  private readonly host: ReactiveControllerHost;
  private readonly options: SetupOptions;
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** A tick is under way (its call to the daemon has not answered yet). */
  private inFlight = false;
  private connected = false;
  /** Bumped by each claim sent: a poll that was asked before it is older than its answer and is dropped. */
  private generation = 0;

  constructor(host: ReactiveControllerHost, options: SetupOptions) {
    this.host = host;
    this.options = options;
    host.addController(this);
  }

  hostConnected(): void {
    this.connected = true;
    this.check();
  }

  hostDisconnected(): void {
    this.connected = false;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Ask the daemon whether it is in setup, unless that is already under way. */
  check(): void {
    if (!this.connected || this.inFlight || this.timer) return;
    void this.tick();
  }

  /** Send a claim code (its digits, checked already). Resolves to the daemon's refusal, if any. */
  async claim(digits: string): Promise<string | undefined> {
    this.busy = true;
    this.generation += 1;
    this.host.requestUpdate();
    const answer = await postClaim(digits);
    this.busy = false;
    if (answer.ok) {
      this.generation += 1;
      this.accepted += 1;
      this.state = answer.result;
    }
    this.host.requestUpdate();
    return answer.ok ? undefined : answer.error;
  }

  private async tick(): Promise<void> {
    this.timer = undefined;
    this.inFlight = true;
    try {
      if (this.active) await this.follow();
      else await this.probe();
    } finally {
      this.inFlight = false;
    }
    if (this.connected && (this.active || !this.options.running())) {
      this.timer = setTimeout(() => void this.tick(), this.options.pollMs());
    }
  }

  /** Not in setup (as far as we know): ask whether the daemon is. */
  private async probe(): Promise<void> {
    if (this.options.running()) return;
    if ((await probeSetupMode()) !== "setup") return;
    this.active = true;
    this.host.requestUpdate();
    await this.follow();
  }

  /** In setup: the latest state; once enrolled, leave when the daemon runs as a kiosk. */
  private async follow(): Promise<void> {
    const generation = this.generation;
    const answer = await getSetup();
    if (generation !== this.generation) return;
    if (answer.ok) {
      this.state = answer.result;
      this.error = undefined;
    } else {
      this.error = answer.error;
    }
    // Enrolled, or no answer (the daemon is switching over, or came back as a kiosk): is it running?
    if ((this.state?.enrolled || !answer.ok) && (await probeSetupMode()) === "ready") {
      this.active = false;
      this.state = undefined;
      this.options.onDone();
    }
    this.host.requestUpdate();
  }
}
