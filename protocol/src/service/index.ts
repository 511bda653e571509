export * from "./cli.ts";
export * from "./env.ts";
export * from "./listen.ts";
export * from "./logger.ts";
export * from "./metrics.ts";
export * from "./ops-routes.ts";
export * from "./run.ts";
