import type { DeviceConfigInput } from "@paylane/device";

/**
 * The hardware a demo kiosk carries, simulated: the real PN532 and ESC/POS
 * drivers talk to simulated peers (the PN532 over a pty pair), the GPIO
 * roles drive simulated lines, and a simulated ZVT card terminal (on TCP, in
 * the kiosk's process) takes wallet top-ups. `npm start` runs its kiosks
 * with it, and the footprint bench measures that same kiosk.
 */
export const DEMO_HARDWARE = {
  reader: { type: "pn532-simulator" },
  printer: { type: "simulator" },
  terminal: { type: "zvt-simulator" },
  gpio: {
    backend: "simulated",
    button: { line: { bcm: 27 } },
    led: { line: { bcm: 18 } },
    buzzer: { line: { bcm: 22 } },
    relay: { line: { bcm: 17 }, pulseMs: 3000 },
  },
} satisfies Partial<DeviceConfigInput>;
