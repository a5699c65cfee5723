import { MetricUnit, type Metrics } from "@aws-lambda-powertools/metrics";
import type { DataplaneMetrics } from "../ports";

/**
 * Counts through Powertools EMF. Each count is a single-metric document written at once, so
 * a long-running data-plane process (not only a Lambda with its end-of-invocation publish)
 * gets its `EmitterBufferOverflow` counts to CloudWatch.
 */
export function powertoolsMetrics(metrics: Metrics): DataplaneMetrics {
  return {
    count(name, value) {
      metrics.singleMetric().addMetric(name, MetricUnit.Count, value);
    },
  };
}
