import { MetricUnit, type Metrics } from "@aws-lambda-powertools/metrics";
import type { DriftSignals } from "../ports";

/** Metric names of the reconciliation job (namespace METRICS_NAMESPACE, dimension `service`). */
export const RECONCILIATION_METRICS = { unmeteredTokens: "UnmeteredTokens", driftPercent: "DriftPercent" } as const;

/**
 * `UnmeteredTokens` and `DriftPercent` as EMF, stamped with the reconciled hour (a back-fill
 * lands on the hour it describes; CloudWatch skips timestamps older than two weeks). The ops
 * alarm of stacks/Jobs.ts watches `DriftPercent` (Maximum). The handler's `logMetrics`
 * middleware flushes the last hour; an earlier hour of the same run is flushed when the next
 * one starts, so each line keeps its own timestamp.
 */
export class EmfDriftSignals implements DriftSignals {
  constructor(private readonly metrics: Metrics) {}

  async emit(hour: string, signal: { unmeteredTokensDelta: number; driftPercent: number; alarm: boolean }): Promise<void> {
    if (this.metrics.hasStoredMetrics()) this.metrics.publishStoredMetrics();
    this.metrics.setTimestamp(new Date(`${hour}:00:00Z`));
    this.metrics.addMetric(RECONCILIATION_METRICS.unmeteredTokens, MetricUnit.Count, signal.unmeteredTokensDelta);
    this.metrics.addMetric(RECONCILIATION_METRICS.driftPercent, MetricUnit.Percent, signal.driftPercent);
  }
}
