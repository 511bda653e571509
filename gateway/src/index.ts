export {
  checkPublish,
  checkSubscribe,
  checkWill,
  type Decision,
  type SharedFilter,
  splitSharedFilter,
} from "./acl.ts";
export { ConfigError, type GatewayConfig, listenErrorMessage, parseEnv } from "./config.ts";
export { Gateway, type GatewayOptions } from "./gateway.ts";
export { createGatewayHttp, type GatewayHealth, type GatewayHttpOptions } from "./http.ts";
