/**
 * limits.test.ts again, its gateways on Redis (GATEWAY_REDIS_URL, a prefix of
 * its own): the client limits hold in both modes.
 */
process.env.GATEWAY_TEST_ON_REDIS = "1";
await import("./limits.test.ts");
