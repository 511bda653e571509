import type { ReceiptNotice } from "@paylane/protocol/kiosk-api";
import { css, html, nothing } from "lit";

/** Styles for `renderReceipt`, for every screen that shows a result's receipt. */
export const receiptStyles = css`
  .receipt {
    margin: 0;
    display: flex;
    align-items: center;
    gap: 1rem;
    font-size: clamp(1rem, 2.5vw, 1.5rem);
  }
  .receipt img {
    width: clamp(6rem, 22vh, 12rem);
    height: auto;
    background: #fff;
    padding: 0.5rem;
    border-radius: 8px;
  }
  .receipt figcaption {
    max-width: 24ch;
    text-align: left;
  }
`;

/**
 * What became of the receipt of the transaction `id` (a check-in or a
 * payment): nothing until the printer has answered, then "take your receipt",
 * or its QR code when nothing was printed.
 */
export function renderReceipt(receipt: ReceiptNotice | undefined, id: string | undefined) {
  if (!receipt || id === undefined || receipt.id !== id) return nothing;
  if (receipt.printed) return html`<p class="receipt" data-testid="receipt">Please take your receipt</p>`;
  const why = receipt.reason === "paper-out" ? "The printer is out of paper." : "The receipt could not be printed.";
  return html`<figure class="receipt" data-testid="receipt">
    <img data-testid="receipt-qr" src=${receipt.qr} alt="QR code of your receipt" />
    <figcaption>${why} Scan the code for your receipt.</figcaption>
  </figure>`;
}
