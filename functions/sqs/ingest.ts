import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import { logMetrics } from "@aws-lambda-powertools/metrics/middleware";
import middy from "@middy/core";
import type { SQSBatchResponse, SQSEvent } from "aws-lambda";
import { IngestMetrics } from "../../shared/observability/ingest-metrics";
import { priceCatalogFromEnv } from "../../shared/pricing/catalog";
import { evaluateAfterIngest } from "../../shared/quota/after-ingest";
import { quotaEvaluatorFromConfig } from "../../shared/quota/adapters/runtime";
import { awsClients } from "../../shared/runtime/aws";
import { config } from "../../shared/runtime/config";
import { observability } from "../../shared/runtime/observability";
import { DynamoUsageStore } from "../../shared/usage/adapters/dynamodb";
import { IngestService } from "../../shared/usage/ingest";

const cfg = config();
const { logger, metrics } = observability(cfg, "ingest");
const clients = awsClients(cfg);
const service = new IngestService({
  store: new DynamoUsageStore(clients.doc, cfg.USAGE_TABLE_NAME, { ledgerTtlDays: cfg.LEDGER_TTL_DAYS }),
  prices: priceCatalogFromEnv(cfg),
  region: cfg.AWS_REGION,
  maxEventAgeDays: cfg.MAX_EVENT_AGE_DAYS,
  claimConcurrency: cfg.INGEST_CLAIM_CONCURRENCY,
  claimLeaseMs: cfg.INGEST_CLAIM_LEASE_SECONDS * 1000,
});
const ingestMetrics = new IngestMetrics(metrics, cfg.COST_METRIC_DIMENSIONS);
const quota = quotaEvaluatorFromConfig(cfg, { onUsage: ingestMetrics.noteUsage });

/**
 * EventBridge -> SQS -> here. Counts each distinct valid event once, quarantines invalid
 * records, evaluates the quotas of the tenants it changed, and returns the records that could
 * not be committed (or evaluated) as `batchItemFailures`, so SQS redelivers exactly those.
 */
async function ingest(event: SQSEvent): Promise<SQSBatchResponse> {
  const result = await service.ingest(
    event.Records.map((r) => ({ messageId: r.messageId, body: r.body, receiveCount: Number(r.attributes?.ApproximateReceiveCount) || undefined })),
  );
  const failures = new Set<string>();
  for (const [messageId, outcome] of result.outcomes) {
    if (outcome.kind === "failed") {
      failures.add(messageId);
      logger.warn("record not committed; will be redelivered", { messageId, error: outcome.error });
    } else if (outcome.kind === "quarantined") {
      logger.warn("record quarantined", { messageId, reason: outcome.reason });
    }
  }
  const enforcement = await evaluateAfterIngest(quota, result.touched, new Date());
  for (const f of enforcement.failed) {
    logger.warn("quota evaluation failed; records will be redelivered", { tenantId: f.tenantId, error: f.error as Error });
    for (const m of f.messageIds) failures.add(m);
  }
  ingestMetrics.record(result, enforcement);
  logger.info("batch ingested", { records: event.Records.length, ...result.stats });
  return { batchItemFailures: [...failures].map((itemIdentifier) => ({ itemIdentifier })) };
}

export const handler = middy(ingest).use(injectLambdaContext(logger)).use(logMetrics(metrics));
