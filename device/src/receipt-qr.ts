/** A receipt the printer could not print, as a QR code the kiosk shows instead. */

/** The transaction id as an SVG data URL (an <img> source: no markup reaches the page). */
export async function receiptQrDataUrl(transactionId: string): Promise<string> {
  // Loaded on the first receipt that needs it, not at boot: most kiosks print (bench/footprint.bench.ts).
  const { default: QRCode } = await import("qrcode");
  const svg = await QRCode.toString(transactionId, { type: "svg", margin: 1, errorCorrectionLevel: "M" });
  return `data:image/svg+xml;base64,${Buffer.from(svg).toString("base64")}`;
}
