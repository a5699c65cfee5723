import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import { MetricUnit } from "@aws-lambda-powertools/metrics";
import { logMetrics } from "@aws-lambda-powertools/metrics/middleware";
import middy from "@middy/core";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { EventBridgeClient } from "@aws-sdk/client-eventbridge";
import { S3Client } from "@aws-sdk/client-s3";
import type { Context, S3Event } from "aws-lambda";
import { createUsageEmitter } from "../../shared/dataplane/adapters/eventbridge";
import { S3ObjectReader } from "../../shared/invocation-log/adapters/s3";
import { quarantineRejected } from "../../shared/invocation-log/quarantine";
import { InvocationLogSource, type ObjectResult } from "../../shared/invocation-log/source";
import { NO_BINDING_CONFIGURED, tenantBinding } from "../../shared/invocation-log/tenant-binding";
import { JOB_METRICS } from "../../shared/observability/metric-names";
import { config, eventBusName, observabilityConfig } from "../../shared/runtime/config";
import { observability, type Observability } from "../../shared/runtime/observability";
import { documentClient } from "../../shared/storage/adapters/dynamodb";
import { DynamoUsageStore } from "../../shared/usage/adapters/dynamodb";

export interface InvocationLogHandlerResult {
  objects: Array<Omit<ObjectResult, "rejected"> & { rejected: number; rejectReasons: Record<string, number> }>;
}

/**
 * S3 ObjectCreated (Bedrock invocation-log bucket) -> one InvocationLogSource pass per object.
 * Objects are processed one by one; a failure throws, so Lambda's async retry (and then the
 * on-failure destination) gets the whole event again: records already delivered are the same
 * events with the same ids, counted once by the ingest ledger.
 */
export function createInvocationLogHandler(wire: () => InvocationLogSource, { logger, metrics }: Observability = observability(observabilityConfig(), "invocation-log")) {
  let source: InvocationLogSource | undefined;
  const read = async (event: S3Event, _context: Context): Promise<InvocationLogHandlerResult> => {
    source ??= wire();
    const objects: InvocationLogHandlerResult["objects"] = [];
    for (const record of event.Records ?? []) {
      const bucket = record.s3.bucket.name;
      // S3 event keys are URL-encoded with '+' for spaces.
      const key = decodeURIComponent(record.s3.object.key.replace(/\+/g, " "));
      const { rejected, ...rest } = await source.processObject(bucket, key);
      const rejectReasons: Record<string, number> = {};
      for (const r of rejected) rejectReasons[r.reason] = (rejectReasons[r.reason] ?? 0) + 1;
      objects.push({ ...rest, rejected: rejected.length, rejectReasons });
      metrics.addMetric(JOB_METRICS.invocationLogRecords, MetricUnit.Count, rest.records);
      metrics.addMetric(JOB_METRICS.invocationLogEmitted, MetricUnit.Count, rest.emitted);
      metrics.addMetric(JOB_METRICS.invocationLogRejected, MetricUnit.Count, rejected.length);
      if (rejected.length > 0) logger.warn("invocation-log records quarantined", { bucket, key, rejectReasons });
    }
    return { objects };
  };
  return middy(read).use(injectLambdaContext(logger)).use(logMetrics(metrics));
}

/** Production wiring: S3 reader, EventBridge emitter (flushed per object), quarantine in the usage table. */
export function wireInvocationLogSource(): InvocationLogSource {
  const cfg = config();
  const emitter = createUsageEmitter({
    clientConfig: { region: cfg.AWS_REGION, endpoint: cfg.AWS_ENDPOINT_URL_EVENTBRIDGE },
    eventBusName: eventBusName(cfg),
    // Lambda: the source flushes before returning; no background timer across freezes.
    flushIntervalMs: 0,
  });
  const store = new DynamoUsageStore(
    documentClient(new DynamoDBClient({ region: cfg.AWS_REGION, endpoint: cfg.AWS_ENDPOINT_URL_DYNAMODB })),
    cfg.USAGE_TABLE_NAME,
    { ledgerTtlDays: cfg.LEDGER_TTL_DAYS },
  );
  if (!cfg.TENANT_PRINCIPALS_JSON) {
    // Deny by default, loudly: unbound claims are quarantined, never counted.
    console.warn(JSON.stringify({ level: "WARN", message: `TENANT_PRINCIPALS_JSON is not set: ${NO_BINDING_CONFIGURED}; every claimed tenant is quarantined as untrusted-tenant` }));
  }
  return new InvocationLogSource({
    reader: new S3ObjectReader(new S3Client({ region: cfg.AWS_REGION })),
    sink: emitter,
    rejected: quarantineRejected(store),
    parse: { binding: tenantBinding(cfg.TENANT_PRINCIPALS_JSON) },
  });
}

export const handler = createInvocationLogHandler(wireInvocationLogSource);
