export * from "./listen.ts";
export * from "./metrics.ts";
export * from "./ops-routes.ts";
export * from "./run.ts";
