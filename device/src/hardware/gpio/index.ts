/** GPIO for the kiosk: backends (chardev, onoff, sysfs, simulated, johnny-five) and the roles built on them. */
export * from "./backend.ts";
export * from "./button.ts";
export * from "./buzzer.ts";
export * from "./chardev.ts";
export * from "./config.ts";
export * from "./factory.ts";
export * from "./gpio-roles.ts";
export * from "./gpiod-tools.ts";
export * from "./johnny-five.ts";
export * from "./onoff.ts";
export * from "./pins.ts";
export * from "./probe.ts";
export * from "./relay.ts";
export type { RoleHealth, RoleName, RoleState, Step } from "./role.ts";
export * from "./simulated.ts";
export * from "./status-led.ts";
export * from "./sysfs.ts";
