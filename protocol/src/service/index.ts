export * from "./listen.ts";
export * from "./ops-routes.ts";
export * from "./run.ts";
