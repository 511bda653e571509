export * from "./codec.ts";
export * from "./messages.ts";
export * from "./problem.ts";
export * from "./registry.ts";
export * from "./replica.ts";
export * from "./timers.ts";
export * from "./topics.ts";
