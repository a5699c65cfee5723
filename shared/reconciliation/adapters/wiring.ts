import type { Metrics } from "@aws-lambda-powertools/metrics";
import { DynamoAllocationStore } from "../../allocation/adapters/dynamodb";
import { EndpointCatalog } from "../../allocation/endpoints";
import { LocalDirectorySink } from "../../billing/adapters/local-dir";
import { s3ExportSink } from "../../billing/adapters/s3";
import type { AwsClients } from "../../runtime/aws";
import { InferenceProfiles } from "../../pricing/inference-profiles";
import type { RuntimeConfig } from "../../runtime/config";
import { DynamoUsageStore } from "../../usage/adapters/dynamodb";
import { ReconciliationNotConfiguredError } from "../errors";
import type { DriftSignals, ReportSink } from "../ports";
import { ReconciliationService } from "../service";
import { cloudWatchClient, CloudWatchProviderMetrics } from "./cloudwatch";
import { DynamoSignalStore } from "./dynamodb";
import { EmfDriftSignals } from "./emf";
import { AggregateMeteredUsage } from "./usage";

/** The reconciliation service as the scheduled job and the CLI run it. */
export function reconciliationService(
  cfg: RuntimeConfig,
  clients: AwsClients,
  opts: { metrics?: Metrics; signals?: DriftSignals; sink?: ReportSink; clock?: () => Date } = {},
): ReconciliationService {
  const signals = opts.signals ?? (opts.metrics ? new EmfDriftSignals(opts.metrics) : undefined);
  if (!signals) throw new ReconciliationNotConfiguredError("reconciliation needs metrics (EMF) or another DriftSignals");
  return new ReconciliationService({
    provider: new CloudWatchProviderMetrics(cloudWatchClient(cfg.AWS_REGION, cfg.AWS_ENDPOINT_URL_CLOUDWATCH)),
    metered: new AggregateMeteredUsage(new DynamoUsageStore(clients.doc, cfg.USAGE_TABLE_NAME, { ledgerTtlDays: cfg.LEDGER_TTL_DAYS }), new DynamoAllocationStore(clients.doc, cfg.USAGE_TABLE_NAME)),
    sink: opts.sink ?? reportSink(cfg),
    signalStore: new DynamoSignalStore(clients.doc, cfg.USAGE_TABLE_NAME),
    signals,
    thresholdPercent: cfg.RECONCILE_DRIFT_THRESHOLD_PERCENT,
    knownEndpoints: EndpointCatalog.fromJson(cfg.ENDPOINT_CATALOG_JSON).list().map((e) => e.endpointName),
    inferenceProfiles: InferenceProfiles.fromJson(cfg.INFERENCE_PROFILES_JSON),
    clock: opts.clock,
  });
}

/** S3 on Lambda (RECONCILIATION_REPORT_BUCKET, else the billing export bucket); a directory locally. */
export function reportSink(cfg: RuntimeConfig): ReportSink {
  const bucket = cfg.RECONCILIATION_REPORT_BUCKET ?? cfg.BILLING_EXPORT_BUCKET;
  if (bucket) return s3ExportSink(bucket, cfg.AWS_REGION);
  const dir = cfg.RECONCILIATION_REPORT_DIR ?? cfg.BILLING_EXPORT_DIR;
  if (dir) return new LocalDirectorySink(dir);
  throw new ReconciliationNotConfiguredError("set RECONCILIATION_REPORT_BUCKET / BILLING_EXPORT_BUCKET (S3) or RECONCILIATION_REPORT_DIR / BILLING_EXPORT_DIR (directory)");
}
