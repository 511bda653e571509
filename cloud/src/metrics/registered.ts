/**
 * A metric made once per registry: an API app built again on the same
 * registry (tests, a restarted part) keeps its series instead of throwing
 * "already registered".
 */
import {
  Gauge,
  type GaugeConfiguration,
  Histogram,
  type HistogramConfiguration,
  type Registry as MetricsRegistry,
} from "prom-client";

export function registeredHistogram<L extends string>(
  registry: MetricsRegistry,
  config: Omit<HistogramConfiguration<L>, "registers">,
): Histogram<L> {
  return (
    (registry.getSingleMetric(config.name) as Histogram<L> | undefined) ??
    new Histogram({ ...config, registers: [registry] })
  );
}

export function registeredGauge<L extends string>(
  registry: MetricsRegistry,
  config: Omit<GaugeConfiguration<L>, "registers">,
): Gauge<L> {
  return (
    (registry.getSingleMetric(config.name) as Gauge<L> | undefined) ?? new Gauge({ ...config, registers: [registry] })
  );
}
