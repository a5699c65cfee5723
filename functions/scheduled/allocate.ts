import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import { MetricUnit } from "@aws-lambda-powertools/metrics";
import { logMetrics } from "@aws-lambda-powertools/metrics/middleware";
import middy from "@middy/core";
import type { Context, ScheduledEvent } from "aws-lambda";
import { DynamoAllocationStore } from "../../shared/allocation/adapters/dynamodb";
import { EndpointCatalog } from "../../shared/allocation/endpoints";
import { hoursEndingAt, previousHour } from "../../shared/allocation/hours";
import { AllocationService } from "../../shared/allocation/service";
import { JOB_METRICS } from "../../shared/observability/metric-names";
import { awsClients } from "../../shared/runtime/aws";
import { config } from "../../shared/runtime/config";
import { observability } from "../../shared/runtime/observability";

const cfg = config();
const { logger, metrics } = observability(cfg, "allocate");
const service = new AllocationService({
  store: new DynamoAllocationStore(awsClients(cfg).doc, cfg.USAGE_TABLE_NAME),
  catalog: EndpointCatalog.fromJson(cfg.ENDPOINT_CATALOG_JSON),
  maxTransactionItems: cfg.TRANSACTION_MAX_ITEMS,
});
/** Hours re-checked for late usage, the previous hour included (to come from config: ALLOCATION_LOOKBACK_HOURS). */
const lookbackHours = cfg.ALLOCATION_LOOKBACK_HOURS;

/**
 * EventBridge schedule, hourly (a few minutes past the hour, so the ingest has drained the
 * hour's events): shares the previous hour of every catalogued endpoint among its tenants,
 * and re-splits any of the hours before it whose usage changed since (late events), applying
 * only the differences. A failure is thrown so the scheduler's retry runs it again; reruns
 * are harmless.
 */
async function allocate(event: ScheduledEvent, _context: Context) {
  const hour = previousHour(new Date(event.time));
  const all = await service.reconcileAll(hoursEndingAt(hour, lookbackHours));
  for (const o of all) {
    if (o.hour !== hour && o.status === "already-allocated") continue;
    logger.info(o.hour === hour ? "endpoint-hour allocated" : "endpoint-hour reallocated", {
      endpointName: o.endpointName,
      hour: o.hour,
      status: o.status,
      version: o.version,
      tenants: o.plan.shares.length,
      changedTenants: o.deltas.length,
      hourCostNanoUsd: o.plan.hourCostNanoUsd,
      idleCostNanoUsd: o.plan.idleCostNanoUsd,
      basis: o.plan.basis,
    });
  }
  metrics.addMetric(JOB_METRICS.endpointHoursAllocated, MetricUnit.Count, all.filter((o) => o.status !== "already-allocated").length);
  const summary = (o: (typeof all)[number]) => ({ endpointName: o.endpointName, status: o.status, version: o.version, tenants: o.plan.shares.length });
  return {
    hour,
    outcomes: all.filter((o) => o.hour === hour).map(summary),
    /** Earlier hours of the window this run changed (re-allocated, or finished after a crash). */
    revisited: all.filter((o) => o.hour !== hour && o.status !== "already-allocated").map((o) => ({ hour: o.hour, ...summary(o) })),
  };
}

export const handler = middy(allocate).use(injectLambdaContext(logger)).use(logMetrics(metrics));
