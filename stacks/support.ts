import { Duration, RemovalPolicy } from "aws-cdk-lib";
import { Effect, PolicyStatement } from "aws-cdk-lib/aws-iam";
import * as sqs from "aws-cdk-lib/aws-sqs";
import type { ITable } from "aws-cdk-lib/aws-dynamodb";
import type { Construct } from "constructs";
import type { App, FunctionProps } from "sst/constructs";
import { METRICS_NAMESPACE_DEFAULT } from "../shared/observability/metric-names";
import { priceCatalogFromEnv } from "../shared/pricing/catalog";
import { keys } from "../shared/storage/keys";
import { USAGE_TABLE } from "../shared/storage/table";

/**
 * Helpers shared by the stack functions: stage policy, function defaults, queue shapes and
 * least-privilege DynamoDB statements. No resources are created here except through the
 * helpers' explicit calls from a stack.
 */

/** Value of the `service` metric dimension; handlers read it from SERVICE_NAME, alarms filter on it. */
export const SERVICE_NAME = "genai-metering";
export const METRICS_NAMESPACE = METRICS_NAMESPACE_DEFAULT;

/** Stages whose data may be thrown away on `sst remove`. Every other stage keeps tables and buckets. */
const DISPOSABLE_STAGES = new Set(["dev", "local"]);

export function isDisposableStage(app: App): boolean {
  return app.mode === "dev" || DISPOSABLE_STAGES.has(app.stage);
}

/** RETAIN for every stage that may hold real usage or billing data. */
export function dataRemovalPolicy(app: App): RemovalPolicy {
  return isDisposableStage(app) ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN;
}

/** Props every Lambda of the pipeline shares; stacks add handler, timeout, environment and permissions. */
export function baseFunctionProps(): FunctionProps {
  return {
    runtime: "nodejs22.x",
    architecture: "arm_64",
    memorySize: 512,
    tracing: "active",
    logRetention: "one_month",
    nodejs: { format: "esm", sourcemap: true },
  };
}

/** Environment every handler needs to build its config (see shared/runtime/config.ts). */
export function baseEnvironment(table: { tableName: string }): Record<string, string> {
  return {
    USAGE_TABLE_NAME: table.tableName,
    SERVICE_NAME,
    METRICS_NAMESPACE,
    ...pricingEnvironment(process.env),
  };
}

/** Lambda's limit on a function's environment (keys and values), less room for the variables the stacks set. */
const PRICING_ENV_MAX_BYTES = 3_000;

/**
 * The stage's price overrides and application inference profiles (`PRICE_CATALOG_JSON`,
 * `INFERENCE_PROFILES_JSON`, from the deploy environment such as `.env.<stage>`), for every
 * handler: the ingest prices with them, reconciliation resolves profiles with them, and every
 * handler's config checks them at cold start. Checked at synth with the same parser
 * (`priceCatalogFromEnv`), so a malformed value fails the deploy instead of every cold start.
 * Lambda caps a function's environment at 4 KB: a catalog larger than that belongs in the code's
 * snapshot (`npm run prices:update`), and synth says so.
 */
export function pricingEnvironment(env: Record<string, string | undefined>): Record<string, string> {
  priceCatalogFromEnv(env);
  const out: Record<string, string> = {};
  for (const name of ["INFERENCE_PROFILES_JSON", "PRICE_CATALOG_JSON"] as const) if (env[name]?.trim()) out[name] = env[name]!;
  const bytes = Object.entries(out).reduce((n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(v), 0);
  if (bytes > PRICING_ENV_MAX_BYTES) {
    throw new Error(
      `PRICE_CATALOG_JSON and INFERENCE_PROFILES_JSON take ${bytes} bytes; Lambda allows 4 KB for a function's whole environment ` +
        `(these may use ${PRICING_ENV_MAX_BYTES}). Put lasting prices in the catalog snapshot (npm run prices:update) instead.`,
    );
  }
  return out;
}

/**
 * A dead-letter queue. SQS-managed SSE (not the AWS-managed KMS key `alias/aws/sqs`) because
 * EventBridge cannot send to a queue encrypted with an AWS-managed KMS key.
 */
export function deadLetterQueue(scope: Construct, id: string, app: App, name: string): sqs.Queue {
  return new sqs.Queue(scope, id, {
    queueName: app.logicalPrefixedName(`${name}-dlq`),
    encryption: sqs.QueueEncryption.SQS_MANAGED,
    enforceSSL: true,
    retentionPeriod: Duration.days(14),
  });
}

/** Queue props shared by every work queue: SSE, TLS only, redrive to `dlq` after `maxReceiveCount` receives. */
export function workQueueProps(dlq: sqs.IQueue, maxReceiveCount: number, visibilityTimeout: Duration): sqs.QueueProps {
  return {
    encryption: sqs.QueueEncryption.SQS_MANAGED,
    enforceSSL: true,
    visibilityTimeout,
    retentionPeriod: Duration.days(4),
    deadLetterQueue: { queue: dlq, maxReceiveCount },
  };
}

/**
 * AWS guidance for SQS event sources: the queue's visibility timeout is at least six times the
 * function timeout plus the batching window, so a message still being retried by Lambda's
 * poller is not handed to a second invocation (which would process it concurrently).
 */
export function consumerVisibilityTimeout(functionTimeoutSeconds: number, batchingWindowSeconds: number, floorSeconds: number): Duration {
  return Duration.seconds(Math.max(floorSeconds, 6 * functionTimeoutSeconds + batchingWindowSeconds));
}

/**
 * `events:PutEvents` on the pipeline bus for the given sources only. EventBridge authorises each
 * entry of a PutEvents call on its own `events:source` (a wrong one fails that entry with
 * `NotAuthorizedForSourceException`), so a role can publish nothing but what it is meant to: the
 * ingest cannot forge usage events, a data-plane role cannot forge enforcement events.
 */
export function putEventsStatement(bus: { eventBusArn: string }, sources: readonly string[]): PolicyStatement {
  if (sources.length === 0) throw new Error("putEventsStatement: name the sources the function may publish");
  return new PolicyStatement({
    effect: Effect.ALLOW,
    actions: ["events:PutEvents"],
    resources: [bus.eventBusArn],
    conditions: { StringEquals: { "events:source": sources.length === 1 ? sources[0] : [...sources] } },
  });
}

/** Reads: single items, tenant-partition batches (quota decision), key-condition queries. Never Scan. */
export const DYNAMO_READ_ACTIONS = ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"] as const;

/**
 * An Allow statement for `actions` on the usage table (and, when asked, its indexes) only.
 * `leadingKeyPrefixes` narrows writes to partitions whose key starts with one of the prefixes:
 * IAM cannot match a sort key, so the partition prefix is the narrowest scope it offers.
 */
export function tableStatement(
  table: ITable,
  actions: readonly string[],
  options: { indexes?: boolean; leadingKeyPrefixes?: readonly string[] } = {},
): PolicyStatement {
  return new PolicyStatement({
    effect: Effect.ALLOW,
    actions: [...actions],
    // The table's one index by name, not index/*: an index added later is not readable by default.
    resources: options.indexes ? [table.tableArn, `${table.tableArn}/index/${USAGE_TABLE.gsi1.name}`] : [table.tableArn],
    conditions: options.leadingKeyPrefixes
      ? { "ForAllValues:StringLike": { "dynamodb:LeadingKeys": options.leadingKeyPrefixes.map((p) => `${p}*`) } }
      : undefined,
  });
}

/** The partition-key prefix (`TENANT#`, `ENFORCEMENT#`, ...) of a key built by shared/storage/keys.ts. */
export function partitionPrefix(pk: string): string {
  return pk.slice(0, pk.indexOf("#") + 1);
}

/**
 * Partitions a quota re-evaluation writes to, as `leadingKeyPrefixes` for {@link tableStatement}:
 * the tenant's own (CONFIG, the ENFORCE# state with its outbox) and the ENFORCEMENT#<day>
 * enforcement log. Used by the tenant-config PUT (Api) and the outbox sweeper (Jobs). Built from
 * the key builders, so a key-prefix change there moves the IAM condition with it.
 */
export const ENFORCEMENT_WRITE_PARTITIONS = [keys.tenant(""), partitionPrefix(keys.enforcementLog("d", "t", "x", "k").pk)] as const;
