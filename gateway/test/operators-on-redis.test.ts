/**
 * operators.test.ts again, its gateway on Redis (GATEWAY_REDIS_URL, a prefix of
 * its own): everything it checks must hold in both modes.
 */
process.env.GATEWAY_TEST_ON_REDIS = "1";
await import("./operators.test.ts");
