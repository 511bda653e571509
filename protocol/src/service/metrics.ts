import { Counter, type CounterConfiguration, collectDefaultMetrics, type Registry } from "prom-client";

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

/**
 * prom-client's default metrics that break the exposition conventions:
 * gauges named `_total` (`promtool check metrics`: "non-counter metrics
 * should not have _total suffix"). The same numbers stay on the scrape as the
 * per-type gauges `nodejs_active_handles{type}`, `nodejs_active_requests{type}`
 * and `nodejs_active_resources{type}` (sum them for the total).
 */
export const LINT_FAILING_DEFAULT_METRICS = [
  "nodejs_active_handles_total",
  "nodejs_active_requests_total",
  "nodejs_active_resources_total",
] as const;

/**
 * The process and Node.js runtime metrics every PayLane service exposes:
 * prom-client's defaults (`process_*` CPU, memory, file descriptors, start
 * time; `nodejs_*` event loop lag, heap, GC, versions) without the ones that
 * fail `promtool check metrics`. Call once per registry, after `clear()`.
 */
export function collectServiceMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
  for (const name of LINT_FAILING_DEFAULT_METRICS) registry.removeSingleMetric(name);
}
