import { MetricUnit, type Metrics } from "@aws-lambda-powertools/metrics";
import type { AdmissionMetrics } from "../ports";

/**
 * Admission counters through Powertools EMF: each count is its own single-metric document
 * (with its dimensions, e.g. tier and reason), written at once, so a long-running data-plane
 * process gets them to CloudWatch without an end-of-invocation publish.
 */
export function powertoolsAdmissionMetrics(metrics: Metrics): AdmissionMetrics {
  return {
    count(name, value, dimensions) {
      const single = metrics.singleMetric();
      for (const [k, v] of Object.entries(dimensions ?? {})) single.addDimension(k, v);
      single.addMetric(name, MetricUnit.Count, value);
    },
  };
}
