import { awsClients } from "../../runtime/aws";
import { eventBusName, type RuntimeConfig } from "../../runtime/config";
import type { QuotaEvaluator, QuotaServiceDeps } from "../service";
import type { OutboxSweeper } from "../sweep";
import { loadTierCatalog } from "../tiers";
import { createOutboxSweeper, createQuotaEvaluator, eventBridgePublisher } from "./wiring";

let cached: QuotaEvaluator | undefined;

/** A quota service built from the runtime config (`onUsage` lets the ingest see tiers and quota use). */
export function quotaEvaluatorFromConfig(cfg: RuntimeConfig, extra: { onUsage?: QuotaServiceDeps["onUsage"] } = {}): QuotaEvaluator {
  const clients = awsClients(cfg);
  return createQuotaEvaluator({
    dynamo: clients.doc,
    tableName: cfg.USAGE_TABLE_NAME,
    publisher: eventBridgePublisher(clients.eventBridge, eventBusName(cfg)),
    tiers: loadTierCatalog(cfg.TIER_CATALOG_JSON),
    defaultTier: cfg.QUOTA_DEFAULT_TIER,
    store: { logTtlDays: cfg.ENFORCEMENT_LOG_TTL_DAYS },
    onUsage: extra.onUsage,
  });
}

/** The process-wide quota service of a handler, built from the runtime config on first use. */
export function quotaServiceFromConfig(cfg: RuntimeConfig): QuotaEvaluator {
  cached ??= quotaEvaluatorFromConfig(cfg);
  return cached;
}

/** The outbox sweeper built from the runtime config: same table, bus and log TTL as the evaluation. */
export function outboxSweeperFromConfig(cfg: RuntimeConfig): OutboxSweeper {
  const clients = awsClients(cfg);
  return createOutboxSweeper({
    dynamo: clients.doc,
    tableName: cfg.USAGE_TABLE_NAME,
    publisher: eventBridgePublisher(clients.eventBridge, eventBusName(cfg)),
    store: { logTtlDays: cfg.ENFORCEMENT_LOG_TTL_DAYS },
  });
}
