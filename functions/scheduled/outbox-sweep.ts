import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import { MetricUnit } from "@aws-lambda-powertools/metrics";
import { logMetrics } from "@aws-lambda-powertools/metrics/middleware";
import middy from "@middy/core";
import type { Context, ScheduledEvent } from "aws-lambda";
import { PIPELINE_METRICS } from "../../shared/observability/metric-names";
import { outboxSweeperFromConfig } from "../../shared/quota/adapters/runtime";
import { QuotaPublishError } from "../../shared/quota/errors";
import { config } from "../../shared/runtime/config";
import { observability } from "../../shared/runtime/observability";

const cfg = config();
const { logger, metrics } = observability(cfg, "outbox-sweep");
const sweeper = outboxSweeperFromConfig(cfg);

/** Time kept back from the Lambda timeout: no new index page is started after it. */
const DEADLINE_MARGIN_MS = 15_000;

/**
 * EventBridge schedule, every 5 minutes: publishes enforcement outbox entries whose publisher
 * failed or died and whose tenant has not been evaluated since. Throws when the bus refused an
 * entry (after the whole pass, so one bad entry does not hold up the others): the job alarm
 * fires, the entries stay pending, and the retry or the next run publishes them.
 */
async function sweep(_event: ScheduledEvent, context: Context) {
  const deadline = new Date(Date.now() + Math.max(0, context.getRemainingTimeInMillis() - DEADLINE_MARGIN_MS));
  const report = await sweeper.sweep({ deadline });
  for (const p of report.published) logger.info("pending enforcement event published", p);
  metrics.addMetric(PIPELINE_METRICS.enforcementEvents, MetricUnit.Count, report.published.length);
  const summary = {
    states: report.states,
    published: report.published.length,
    failed: report.failed.length,
    leaseHeld: report.leaseHeld,
    claimLost: report.claimLost,
    unindexed: report.unindexed,
    complete: report.complete,
  };
  if (report.complete) logger.info("outbox swept", summary);
  else logger.warn("outbox sweep stopped at its deadline; the rest waits for the next run", summary);
  if (report.failed.length > 0) {
    for (const f of report.failed) logger.warn("enforcement event not published; stays pending", f);
    throw new QuotaPublishError(
      `${report.failed.length} pending enforcement event(s) not published`,
      report.failed.map((f) => f.enforcementId),
    );
  }
  return summary;
}

export const handler = middy(sweep).use(injectLambdaContext(logger)).use(logMetrics(metrics));
