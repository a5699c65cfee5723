import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import { MetricUnit } from "@aws-lambda-powertools/metrics";
import { logMetrics } from "@aws-lambda-powertools/metrics/middleware";
import middy from "@middy/core";
import type { Context, ScheduledEvent } from "aws-lambda";
import { DynamoBillingSource } from "../../shared/billing/adapters/dynamodb";
import { LocalDirectorySink } from "../../shared/billing/adapters/local-dir";
import { s3ExportSink } from "../../shared/billing/adapters/s3";
import { BillingExportNotConfiguredError } from "../../shared/billing/errors";
import type { ExportSink } from "../../shared/billing/ports";
import { JOB_METRICS } from "../../shared/observability/metric-names";
import { BillingExportService, previousMonth } from "../../shared/billing/service";
import { awsClients } from "../../shared/runtime/aws";
import { config } from "../../shared/runtime/config";
import { observability } from "../../shared/runtime/observability";

const cfg = config();
const { logger, metrics } = observability(cfg, "billing-export");

/**
 * EventBridge schedule, monthly (the 1st, after the last hour's allocation ran): writes the
 * previous month's invoice lines. Reruns rewrite the same files with the same content.
 */
async function billingExport(event: ScheduledEvent, _context: Context) {
  const service = new BillingExportService(new DynamoBillingSource(awsClients(cfg).doc, cfg.USAGE_TABLE_NAME), sink());
  const month = previousMonth(new Date(event.time));
  const result = await service.export(month);
  metrics.addMetric(JOB_METRICS.invoiceLinesExported, MetricUnit.Count, result.lines.length);
  logger.info("billing export written", { month, lines: result.lines.length, files: result.files, ...result.totals });
  return { month, lines: result.lines.length, files: result.files };
}

/** S3 on Lambda (BILLING_EXPORT_BUCKET, set by stacks/Jobs.ts); a directory in the local stack. */
function sink(): ExportSink {
  if (cfg.BILLING_EXPORT_BUCKET) return s3ExportSink(cfg.BILLING_EXPORT_BUCKET, cfg.AWS_REGION);
  if (cfg.BILLING_EXPORT_DIR) return new LocalDirectorySink(cfg.BILLING_EXPORT_DIR);
  throw new BillingExportNotConfiguredError("set BILLING_EXPORT_BUCKET (S3) or BILLING_EXPORT_DIR (local directory)");
}

export const handler = middy(billingExport).use(injectLambdaContext(logger)).use(logMetrics(metrics));
