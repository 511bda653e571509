export * from "./checkin-desk.ts";
export * from "./config.ts";
export * from "./daemon.ts";
export * from "./journal.ts";
export * from "./replica.ts";
export * from "./timers.ts";
export * from "./uplink.ts";
