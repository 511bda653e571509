import { Counter, type CounterConfiguration, type Registry } from "prom-client";

/**
 * The counter of this name on the registry, created on first use. A part
 * built twice on one registry (an API app made again, a service restarted in
 * one process) keeps counting on the same series instead of throwing
 * "already registered".
 */
export function registeredCounter<L extends string>(
  config: Omit<CounterConfiguration<L>, "registers"> & { registers: [Registry] },
): Counter<L> {
  const [registry] = config.registers;
  return (registry.getSingleMetric(config.name) as Counter<L> | undefined) ?? new Counter(config);
}
