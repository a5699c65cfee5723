import { MetricUnit } from "@aws-lambda-powertools/metrics";
import middy from "@middy/core";
import type { Context, SQSBatchResponse, SQSEvent } from "aws-lambda";
import { COST_METRICS, DIMENSIONS, PIPELINE_METRICS } from "../../shared/observability/metric-names";
import { PriceCatalog, nanoToUsd } from "../../shared/pricing/catalog";
import { awsClients } from "../../shared/runtime/aws";
import { config } from "../../shared/runtime/config";
import { observability } from "../../shared/runtime/observability";
import { DynamoUsageStore } from "../../shared/usage/adapters/dynamodb";
import { IngestService, type IngestResult, type TouchedTenant } from "../../shared/usage/ingest";
import { quotaEvaluatorFromConfig } from "../../shared/quota/adapters/runtime";

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
  chunkConcurrency: cfg.INGEST_CHUNK_CONCURRENCY,
  claimConcurrency: cfg.INGEST_CLAIM_CONCURRENCY,
  claimLeaseMs: cfg.INGEST_CLAIM_LEASE_SECONDS * 1000,
});
/**
 * Latest tier and month quota use per tenant, as the quota evaluation saw them (metric
 * dimensions only; bounded so a container's memory does not grow with the tenant count).
 */
const tiersSeen = new Map<string, { tier: string; usedRatio: number }>();
const TIERS_SEEN_MAX = 10_000;
/** Quota evaluations in flight per batch. */
const QUOTA_CONCURRENCY = 16;
const quota = quotaEvaluatorFromConfig(cfg, {
  onUsage: (u) => {
    if (tiersSeen.size >= TIERS_SEEN_MAX && !tiersSeen.has(u.tenantId)) tiersSeen.clear();
    tiersSeen.set(u.tenantId, { tier: u.tier, usedRatio: u.usedRatio });
  },
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
  await enforce(result.touched, failures);
  record(result);
  logger.info("batch ingested", { records: event.Records.length, ...result.stats });
  return { batchItemFailures: [...failures].map((itemIdentifier) => ({ itemIdentifier })) };
}

/**
 * Quota evaluation of every tenant the batch touched (duplicates included: a redelivery after
 * a failed publish must evaluate again). If it fails, that tenant's records are reported
 * failed: the redelivery counts nothing twice and retries the pending publish with the
 * same enforcementId.
 */
async function enforce(touched: TouchedTenant[], failures: Set<string>): Promise<void> {
  const now = new Date();
  let published = 0;
  let breaches = 0;
  // A bounded number of tenants at a time: a batch of 2,000 events may touch hundreds.
  let next = 0;
  const evaluateNext = async (): Promise<void> => {
    while (next < touched.length) await evaluateOne(touched[next++]);
  };
  const evaluateOne = async (t: TouchedTenant) => {
    try {
      const month = [...t.months].sort().at(-1) ?? now.toISOString().slice(0, 7);
      const outcomes = await quota.evaluate({ tenantId: t.tenantId, month, minutes: t.minutes, now });
      for (const o of outcomes) {
        if (o.status !== "pending") published++;
        if (o.breach) breaches++;
      }
    } catch (error) {
      logger.warn("quota evaluation failed; records will be redelivered", { tenantId: t.tenantId, error: error as Error });
      for (const m of t.messageIds) failures.add(m);
    }
  };
  await Promise.all(Array.from({ length: Math.min(QUOTA_CONCURRENCY, touched.length) }, evaluateNext));
  metrics.addMetric(PIPELINE_METRICS.enforcementEvents, MetricUnit.Count, published);
  metrics.addMetric(PIPELINE_METRICS.quotaBreaches, MetricUnit.Count, breaches);
}

function record(result: IngestResult): void {
  const { stats } = result;
  metrics.addMetric(PIPELINE_METRICS.eventsIngested, MetricUnit.Count, stats.counted);
  metrics.addMetric(PIPELINE_METRICS.duplicates, MetricUnit.Count, stats.duplicates);
  metrics.addMetric(PIPELINE_METRICS.quarantined, MetricUnit.Count, stats.quarantined);
  metrics.addMetric(PIPELINE_METRICS.estimatesCorrected, MetricUnit.Count, stats.corrected);
  metrics.addMetric(PIPELINE_METRICS.recordsRetried, MetricUnit.Count, stats.failed);
  metrics.addMetric(PIPELINE_METRICS.unpriced, MetricUnit.Count, stats.unpriced);
  if (stats.counted > 0) metrics.addMetric(PIPELINE_METRICS.ingestLag, MetricUnit.Milliseconds, stats.maxLagMs);

  // Cost allocation per tenant x tier x model (or coarser, COST_METRIC_DIMENSIONS): one EMF
  // document per combination in the batch. Each distinct combination is a custom metric.
  const dims = cfg.COST_METRIC_DIMENSIONS;
  if (dims === "off") return void metrics.publishStoredMetrics();
  const groups = new Map<string, { dimensions: Record<string, string>; cost: number; inTok: number; outTok: number; n: number }>();
  // A corrected estimate adds its difference (exact - estimate, possibly negative) to the sums.
  for (const p of [...result.counted, ...result.corrections]) {
    const tier = tiersSeen.get(p.event.tenantId)?.tier ?? p.event.tier ?? "unknown";
    const dimensions: Record<string, string> = { [DIMENSIONS.tier]: tier };
    if (dims !== "tier-model") dimensions[DIMENSIONS.tenant] = p.event.tenantId;
    if (dims !== "tenant-tier") dimensions[DIMENSIONS.model] = p.baseModelId;
    const k = JSON.stringify(dimensions);
    const g = groups.get(k) ?? { dimensions, cost: 0, inTok: 0, outTok: 0, n: 0 };
    g.cost += p.counters.costNanoUsd;
    g.inTok += p.counters.inputTokens;
    g.outTok += p.counters.outputTokens;
    g.n += p.counters.requests;
    groups.set(k, g);
  }
  // The pipeline metrics go out first, without the per-group dimensions below.
  metrics.publishStoredMetrics();
  for (const g of groups.values()) {
    publishWith(g.dimensions, () => {
      metrics.addMetric(COST_METRICS.costUsd, MetricUnit.NoUnit, nanoToUsd(g.cost));
      metrics.addMetric(COST_METRICS.inputTokens, MetricUnit.Count, g.inTok);
      metrics.addMetric(COST_METRICS.outputTokens, MetricUnit.Count, g.outTok);
      metrics.addMetric(COST_METRICS.requests, MetricUnit.Count, g.n);
    });
  }
  // Quota use is a per-tenant figure: without the tenant dimension it would mean nothing.
  for (const { tenantId } of dims === "tier-model" ? [] : result.touched) {
    const u = tiersSeen.get(tenantId);
    if (!u) continue;
    publishWith({ [DIMENSIONS.tenant]: tenantId, [DIMENSIONS.tier]: u.tier }, () =>
      metrics.addMetric(COST_METRICS.quotaUsedPercent, MetricUnit.Percent, Math.round(u.usedRatio * 10_000) / 100),
    );
  }
}

export const handler = middy(ingest);

/**
 * One EMF document: the metrics `add` adds, with these dimensions (publishing clears them, so
 * the next document starts from the default dimensions again).
 */
function publishWith(dimensions: Record<string, string>, add: () => void): void {
  metrics.addDimensions(dimensions);
  add();
  metrics.publishStoredMetrics();
}
