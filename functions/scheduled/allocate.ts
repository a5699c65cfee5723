import middy from "@middy/core";
import type { Context, ScheduledEvent } from "aws-lambda";
import { DynamoAllocationStore } from "../../shared/allocation/adapters/dynamodb";
import { EndpointCatalog } from "../../shared/allocation/endpoints";
import { previousHour } from "../../shared/allocation/hours";
import { AllocationService } from "../../shared/allocation/service";
import { awsClients } from "../../shared/runtime/aws";
import { config } from "../../shared/runtime/config";
import { observability } from "../../shared/runtime/observability";

const cfg = config();
const { logger } = observability(cfg, "allocate");
const service = new AllocationService({
  store: new DynamoAllocationStore(awsClients(cfg).doc, cfg.USAGE_TABLE_NAME),
  catalog: EndpointCatalog.fromJson(cfg.ENDPOINT_CATALOG_JSON),
  maxTransactionItems: cfg.TRANSACTION_MAX_ITEMS,
});

/**
 * EventBridge schedule, hourly (a few minutes past the hour, so the ingest has drained the
 * hour's events): shares the previous hour of every catalogued endpoint among its tenants.
 * A failure is thrown so the scheduler's retry runs it again; reruns are harmless.
 */
async function allocate(event: ScheduledEvent, _context: Context) {
  const hour = previousHour(new Date(event.time));
  const outcomes = await service.allocateAll(hour);
  for (const o of outcomes) {
    logger.info("endpoint-hour allocated", {
      endpointName: o.endpointName,
      hour: o.hour,
      status: o.status,
      tenants: o.plan.shares.length,
      hourCostNanoUsd: o.plan.hourCostNanoUsd,
      idleCostNanoUsd: o.plan.idleCostNanoUsd,
      basis: o.plan.basis,
    });
  }
  return { hour, outcomes: outcomes.map((o) => ({ endpointName: o.endpointName, status: o.status, tenants: o.plan.shares.length })) };
}

export const handler = middy(allocate);
