export {
  checkPublish,
  checkSubscribe,
  checkWill,
  type Decision,
  type SharedFilter,
  splitSharedFilter,
} from "./acl.ts";
export { type GatewayConfig, GatewayEnvSchema, mqttPortHint, parseGatewayEnv } from "./config.ts";
export { Gateway, type GatewayOptions } from "./gateway.ts";
export { type GatewayHealth, type GatewayOpsOptions, gatewayOpsApp } from "./ops.ts";
export { GatewayService, type GatewayServiceOptions } from "./service.ts";
