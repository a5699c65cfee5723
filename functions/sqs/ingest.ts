import { MetricUnit } from "@aws-lambda-powertools/metrics";
import middy from "@middy/core";
import type { Context, SQSBatchResponse, SQSEvent } from "aws-lambda";
import { COST_METRICS, DIMENSIONS, PIPELINE_METRICS } from "../../shared/observability/metric-names";
import { PriceCatalog, nanoToUsd } from "../../shared/pricing/catalog";
import { awsClients } from "../../shared/runtime/aws";
import { config } from "../../shared/runtime/config";
import { observability } from "../../shared/runtime/observability";
import { DynamoUsageStore } from "../../shared/usage/adapters/dynamodb";
import { IngestService, type IngestResult } from "../../shared/usage/ingest";

const cfg = config();
const { logger, metrics } = observability(cfg, "ingest");
const clients = awsClients(cfg);
const store = new DynamoUsageStore(clients.doc, cfg.USAGE_TABLE_NAME, { ledgerTtlDays: cfg.LEDGER_TTL_DAYS });
const service = new IngestService({
  store,
  prices: PriceCatalog.fromJson(cfg.PRICE_CATALOG_JSON),
  region: cfg.AWS_REGION,
  maxEventAgeDays: cfg.MAX_EVENT_AGE_DAYS,
  maxTransactionItems: cfg.TRANSACTION_MAX_ITEMS,
});

/**
 * EventBridge -> SQS -> here. Counts each distinct valid event once; quarantines invalid
 * records; returns the records that could not be committed as `batchItemFailures`, so SQS
 * redelivers exactly those (and after maxReceiveCount moves them to the DLQ).
 */
async function ingest(event: SQSEvent, _context: Context): Promise<SQSBatchResponse> {
  const result = await service.ingest(event.Records.map((r) => ({ messageId: r.messageId, body: r.body })));
  const failures = new Set<string>();
  for (const [messageId, outcome] of result.outcomes) {
    if (outcome.kind === "failed") {
      failures.add(messageId);
      logger.warn("record not committed; will be redelivered", { messageId, error: outcome.error });
    } else if (outcome.kind === "quarantined") {
      logger.warn("record quarantined", { messageId, reason: outcome.reason });
    }
  }
  record(result);
  logger.info("batch ingested", { records: event.Records.length, ...result.stats });
  return { batchItemFailures: [...failures].map((itemIdentifier) => ({ itemIdentifier })) };
}

function record(result: IngestResult): void {
  const { stats } = result;
  metrics.addMetric(PIPELINE_METRICS.eventsIngested, MetricUnit.Count, stats.counted);
  metrics.addMetric(PIPELINE_METRICS.duplicates, MetricUnit.Count, stats.duplicates);
  metrics.addMetric(PIPELINE_METRICS.quarantined, MetricUnit.Count, stats.quarantined);
  metrics.addMetric(PIPELINE_METRICS.unpriced, MetricUnit.Count, stats.unpriced);
  if (stats.counted > 0) metrics.addMetric(PIPELINE_METRICS.ingestLag, MetricUnit.Milliseconds, stats.maxLagMs);

  // Cost allocation per tenant x tier x model: one EMF line per combination in the batch.
  // Each distinct combination is a custom metric in CloudWatch (see README: cardinality).
  const groups = new Map<string, { tenantId: string; tier: string; modelId: string; cost: number; inTok: number; outTok: number; n: number }>();
  for (const p of result.counted) {
    const tier = p.event.tier ?? "unknown";
    const k = `${p.event.tenantId}|${tier}|${p.baseModelId}`;
    const g = groups.get(k) ?? { tenantId: p.event.tenantId, tier, modelId: p.baseModelId, cost: 0, inTok: 0, outTok: 0, n: 0 };
    g.cost += p.counters.costNanoUsd;
    g.inTok += p.counters.inputTokens;
    g.outTok += p.counters.outputTokens;
    g.n += 1;
    groups.set(k, g);
  }
  for (const g of groups.values()) {
    const m = metrics.singleMetric();
    m.addDimensions({ [DIMENSIONS.tenant]: g.tenantId, [DIMENSIONS.tier]: g.tier, [DIMENSIONS.model]: g.modelId });
    m.addMetric(COST_METRICS.costUsd, MetricUnit.NoUnit, nanoToUsd(g.cost));
    m.addMetric(COST_METRICS.inputTokens, MetricUnit.Count, g.inTok);
    m.addMetric(COST_METRICS.outputTokens, MetricUnit.Count, g.outTok);
    m.addMetric(COST_METRICS.requests, MetricUnit.Count, g.n);
  }
  metrics.publishStoredMetrics();
}

export const handler = middy(ingest);
