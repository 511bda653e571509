/** The benchmark's gateway: the real aedes `Gateway`, port 0, in its own process. */
import { Gateway } from "@paylane/gateway";
import { Registry, type RegistryFile } from "@paylane/protocol";
import pino from "pino";
import { Registry as MetricsRegistry } from "prom-client";
import { reportFailures } from "./child.ts";

export type GatewayIn = { type: "start"; registry: RegistryFile } | { type: "stop" };
export type GatewayOut = { type: "listening"; port: number } | { type: "error"; message: string } | { type: "exit" };

reportFailures();
let gateway: Gateway | undefined;
process.on("message", async (m: GatewayIn) => {
  if (m.type === "start") {
    gateway = new Gateway({
      registry: new Registry(m.registry),
      port: 0,
      logger: pino({ level: "silent" }),
      metrics: new MetricsRegistry(),
    });
    await gateway.start();
    process.send?.({ type: "listening", port: gateway.port } satisfies GatewayOut);
  } else if (m.type === "stop") {
    await gateway?.stop();
    process.disconnect?.();
  }
});
