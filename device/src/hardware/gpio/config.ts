/**
 * The `gpio` section of the kiosk config. Errors name the field and the form
 * expected, e.g. `gpio.relay.pulseMs: expected an integer 100..30000`.
 * Every role is optional: a kiosk without a door has no relay.
 */
import { validate } from "@paylane/protocol";
import { z } from "zod";
import { GpioConfigError } from "./backend.ts";
import { DEBOUNCE_MS_DEFAULT } from "./button.ts";
import { SYSFS_GPIO_ROOT } from "./pins.ts";
import { DEVICE_TREE_MODEL } from "./probe.ts";
import { RELAY_PULSE_MS } from "./relay.ts";

function int(min: number, max: number) {
  const error = `expected an integer ${min}..${max}`;
  return z.number({ error }).int({ error }).min(min, { error }).max(max, { error });
}

const flag = z.boolean({ error: "expected true or false" });

export const PIN_FORMS =
  'expected { bcm: 0..57 }, { global: <sysfs GPIO number> }, { chip: "<label or gpiochipN>", offset: <n> }, { name: "<line name>" } or { firmata: <board pin 0..127> }';

const text = z.string().min(1).max(64);

/** `{ bcm: 17 }`, `{ global: 529 }`, `{ chip: "pinctrl-bcm2711", offset: 17 }`, `{ name: "GPIO17" }` or `{ firmata: 13 }`. */
export const PinSpecSchema = z.union(
  [
    z.strictObject({ bcm: int(0, 57) }),
    z.strictObject({ global: int(0, 65_535) }),
    z.strictObject({ chip: text, offset: int(0, 999) }),
    z.strictObject({ name: text }),
    z.strictObject({ firmata: int(0, 127) }),
  ],
  { error: PIN_FORMS },
);

export const BACKENDS = ["auto", "chardev", "onoff", "sysfs", "simulated", "johnny-five"] as const;

export const GpioConfigSchema = z
  .strictObject({
    /**
     * "auto": chardev when a /dev/gpiochip* opens and gpiod is installed, else onoff/sysfs when
     * /sys/class/gpio/export is writable; else, on a Raspberry Pi, it refuses to start (a relay that
     * silently does nothing is worse), and anywhere else it simulates and says so.
     */
    backend: z.enum(BACKENDS, { error: `expected one of ${BACKENDS.map((b) => `"${b}"`).join(", ")}` }).default("auto"),
    /** Where chips are read to resolve `{ bcm }`, and the sysfs backend's root. */
    sysfsRoot: z
      .string({ error: "expected a folder path" })
      .min(1, { error: "expected a folder path" })
      .default(SYSFS_GPIO_ROOT),
    /** Where the character devices (gpiochipN) are looked for by "auto". */
    chardevDir: z
      .string({ error: "expected a folder path" })
      .min(1, { error: "expected a folder path" })
      .default("/dev"),
    /** Read by "auto" to tell a Raspberry Pi, which must not fall back to simulated GPIO. */
    deviceTreeModel: z
      .string({ error: "expected a file path" })
      .min(1, { error: "expected a file path" })
      .default(DEVICE_TREE_MODEL),
    /** The Firmata board's serial port; the daemon opens it and hands the backend an `io`. */
    johnnyFive: z
      .strictObject({
        path: z.string({ error: "expected a serial device path" }).min(1, { error: "expected a serial device path" }),
        readyTimeoutMs: int(1000, 60_000).default(10_000),
      })
      .optional(),
    button: z
      .strictObject({
        line: PinSpecSchema,
        activeLow: flag.default(true),
        debounceMs: int(1, 1000).default(DEBOUNCE_MS_DEFAULT),
      })
      .optional(),
    led: z.strictObject({ line: PinSpecSchema, activeLow: flag.default(false) }).optional(),
    buzzer: z.strictObject({ line: PinSpecSchema, activeLow: flag.default(false) }).optional(),
    relay: z
      .strictObject({
        line: PinSpecSchema,
        activeLow: flag.default(false),
        pulseMs: int(RELAY_PULSE_MS.min, RELAY_PULSE_MS.max).default(RELAY_PULSE_MS.default),
      })
      .optional(),
  })
  .superRefine((c, ctx) => {
    const j5 = c.backend === "johnny-five";
    if (j5 && !c.johnnyFive) {
      ctx.addIssue({
        code: "custom",
        path: ["johnnyFive"],
        message: 'expected { path: "/dev/ttyACM0" } for backend "johnny-five"',
      });
    }
    for (const role of ROLE_ORDER) {
      const line = c[role]?.line;
      if (!line || c.backend === "simulated") continue;
      if (j5 && !("firmata" in line)) {
        ctx.addIssue({
          code: "custom",
          path: [role, "line"],
          message: "expected { firmata: <board pin> } on a johnny-five board",
        });
      } else if (!j5 && "firmata" in line) {
        ctx.addIssue({
          code: "custom",
          path: [role, "line"],
          message: `expected { bcm: n } or { global: n }: { firmata } pins need backend "johnny-five"`,
        });
      } else if ((c.backend === "onoff" || c.backend === "sysfs") && "name" in line) {
        ctx.addIssue({
          code: "custom",
          path: [role, "line"],
          message: `expected { bcm: n }, { global: n } or { chip, offset }: { name } lines need backend "chardev" or "auto"`,
        });
      } else if (c.backend === "chardev" && "global" in line) {
        ctx.addIssue({
          code: "custom",
          path: [role, "line"],
          message: `expected { bcm: n }, { chip, offset } or { name }: { global } is a sysfs number`,
        });
      }
    }
  });

/** Start order: the relay first, so it is de-energised before anything else happens. */
export const ROLE_ORDER = ["relay", "led", "buzzer", "button"] as const;

export type GpioConfig = z.infer<typeof GpioConfigSchema>;
export type GpioConfigInput = z.input<typeof GpioConfigSchema>;

/** Validates a `gpio` config section; `at` is where it sits in the config file. */
export function parseGpioConfig(json: unknown, at = "gpio"): GpioConfig {
  const result = validate(GpioConfigSchema, json ?? {}, at);
  if (!result.ok) throw new GpioConfigError(result.error);
  return result.value;
}
