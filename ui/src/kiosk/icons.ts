/** Symbols more than one screen shows, inline so the kiosk needs no fonts or files beyond its bundle. */
import { type SVGTemplateResult, svg } from "lit";

/** Contactless: tap a card here. */
export const contactless = svg`<svg viewBox="0 0 64 64" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="5" stroke-linecap="round">
  <g transform="translate(-3 0)">
    <path d="M20 22a14 14 0 0 1 0 20" />
    <path d="M30 14a26 26 0 0 1 0 36" />
    <path d="M40 6a38 38 0 0 1 0 52" />
  </g>
</svg>`;

/** A result's symbol: a stroked path inside a circle, drawn in the text colour. */
export const resultIcon = (path: SVGTemplateResult) =>
  svg`<svg viewBox="0 0 64 64" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="6" stroke-linecap="round" stroke-linejoin="round">
    <circle cx="32" cy="32" r="28" stroke-width="4" />${path}</svg>`;

export const tick = resultIcon(svg`<path d="M19 33l9 9 17-19" />`);
export const cross = resultIcon(svg`<path d="M22 22l20 20M42 22L22 42" />`);
