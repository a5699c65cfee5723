import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import { logMetrics } from "@aws-lambda-powertools/metrics/middleware";
import middy from "@middy/core";
import type { Context, ScheduledEvent } from "aws-lambda";
import { reconciliationService } from "../../shared/reconciliation/adapters/wiring";
import { hourToReconcile } from "../../shared/reconciliation/service";
import { awsClients } from "../../shared/runtime/aws";
import { config } from "../../shared/runtime/config";
import { observability } from "../../shared/runtime/observability";

const cfg = config();
const { logger, metrics } = observability(cfg, "reconcile");
const service = reconciliationService(cfg, awsClients(cfg), { metrics });

/**
 * EventBridge schedule, hourly: reconciles the hour that ended RECONCILE_LAG_HOURS full hours
 * ago (AWS's metrics and the invocation logs arrive late) against AWS's CloudWatch figures and
 * writes its drift report. A re-run of the same hour writes the same report and signals nothing.
 */
async function reconcile(event: ScheduledEvent, _context: Context) {
  const range = hourToReconcile(new Date(event.time), cfg.RECONCILE_LAG_HOURS);
  const [r] = await service.reconcile(range);
  const t = r.report.totals;
  const fields = { hour: r.hour, files: r.files, signal: r.signal, ...t };
  if (r.report.alarm) logger.error("reconciliation drift above threshold", { ...fields, thresholdPercent: r.report.thresholdPercent });
  else logger.info("reconciliation report written", fields);
  return {
    hour: r.hour,
    alarm: r.report.alarm,
    driftPercent: t.driftPercent,
    unmeteredTokens: t.unmeteredTokens,
    unmeteredPercent: t.unmeteredPercent,
    sageMakerDriftPercent: t.sageMakerDriftPercent,
    signal: r.signal,
    files: r.files,
  };
}

export const handler = middy(reconcile).use(injectLambdaContext(logger)).use(logMetrics(metrics));
