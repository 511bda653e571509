import type { ScreenSettings } from "@paylane/protocol/kiosk-api";
import { css, html, LitElement } from "lit";
import { customElement, property } from "lit/decorators.js";

/** What the screen says when ops set no text of their own. */
const DEFAULTS = {
  maintenance: {
    title: "Under maintenance",
    text: "This kiosk is being serviced. Please ask at the desk.",
  },
  "out-of-service": {
    title: "Out of service",
    text: "This kiosk is out of service. Please ask at the desk.",
  },
} as const;

/**
 * Shown instead of "Tap your card" while ops have the kiosk in maintenance
 * or out of service (`cmd/set-mode`, desired configuration): a calm screen
 * that says so, with ops' own text when they set one. A tap meanwhile is
 * answered politely by the daemon; nothing is recorded.
 */
@customElement("paylane-mode-screen")
export class ModeScreen extends LitElement {
  static override styles = css`
    :host {
      display: flex;
      flex-direction: column;
      align-items: center;
      justify-content: center;
      gap: clamp(0.5rem, 3vh, 2rem);
      height: 100%;
      padding: 0 1.5rem;
      box-sizing: border-box;
      text-align: center;
      color: #fff;
      background: #1a1400;
    }
    :host([mode="out-of-service"]) {
      background: #1f0a0a;
    }
    .banner {
      padding: 0.3em 1em;
      border-radius: 999px;
      font-size: clamp(1rem, 2.5vw, 1.5rem);
      font-weight: 700;
      background: #ffd54f;
      color: #000;
    }
    :host([mode="out-of-service"]) .banner {
      background: #ff8a80;
    }
    h1 {
      margin: 0;
      font-size: clamp(2.25rem, 8vw, 6rem);
      line-height: 1.1;
      font-weight: 800;
    }
  `;

  @property({ reflect: true }) mode: "maintenance" | "out-of-service" = "maintenance";

  @property({ attribute: false }) texts: NonNullable<ScreenSettings["texts"]> = {};

  override render() {
    const d = DEFAULTS[this.mode];
    const text = (this.mode === "maintenance" ? this.texts.maintenance : this.texts.outOfService) || d.text;
    return html`<div class="banner" role="status" data-testid="mode-banner">${d.title}</div>
      <h1 data-testid="message">${text}</h1>`;
  }
}

declare global {
  interface HTMLElementTagNameMap {
    "paylane-mode-screen": ModeScreen;
  }
}
