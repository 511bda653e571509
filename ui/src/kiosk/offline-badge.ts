import { css, html, LitElement, nothing } from "lit";
import { customElement, property } from "lit/decorators.js";

/**
 * Shown while the kiosk cannot see the cloud. Check-ins still work offline,
 * so this is a quiet corner badge, not a screen that stops the user.
 */
@customElement("paylane-offline-badge")
export class OfflineBadge extends LitElement {
  static override styles = css`
    :host {
      display: inline-block;
    }
    :host(:not([offline])) {
      display: none;
    }
    div {
      display: inline-flex;
      align-items: center;
      gap: 0.5em;
      padding: 0.35em 0.9em;
      border-radius: 999px;
      background: #ffd54f;
      color: #000;
      font-size: clamp(1rem, 2.5vw, 1.5rem);
      font-weight: 700;
    }
    span {
      width: 0.7em;
      height: 0.7em;
      border-radius: 50%;
      background: #b00020;
    }
  `;

  @property({ type: Boolean, reflect: true }) offline = false;

  override render() {
    if (!this.offline) return nothing;
    return html`<div
      role="status"
      data-testid="offline-badge"
      aria-label="Offline: check-ins are saved on this kiosk and sent when the connection returns"
    >
      <span aria-hidden="true"></span>Offline
    </div>`;
  }
}

declare global {
  interface HTMLElementTagNameMap {
    "paylane-offline-badge": OfflineBadge;
  }
}
