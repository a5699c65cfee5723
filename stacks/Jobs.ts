import { Duration } from "aws-cdk-lib";
import { Effect, PolicyStatement } from "aws-cdk-lib/aws-iam";
import { SqsDestination } from "aws-cdk-lib/aws-lambda-destinations";
import * as s3 from "aws-cdk-lib/aws-s3";
import { Cron, use, type Function as SstFunction, type StackContext } from "sst/constructs";
import { ALLOCATE_SCHEDULE, BILLING_EXPORT_SCHEDULE, OUTBOX_SWEEP_SCHEDULE, SCHEDULED_JOBS } from "../shared/runtime/schedules";
import { ENFORCEMENT_SOURCE } from "../shared/quota/events";
import { USAGE_TABLE } from "../shared/storage/table";
import { keys } from "../shared/storage/keys";
import { RECONCILE_SCHEDULE } from "../shared/runtime/schedules";
import { Ingest } from "./Ingest";
import { Storage } from "./Storage";
import {
  DYNAMO_READ_ACTIONS,
  ENFORCEMENT_WRITE_PARTITIONS,
  baseEnvironment,
  baseFunctionProps,
  dataRemovalPolicy,
  deadLetterQueue,
  isDisposableStage,
  putEventsStatement,
  tableStatement,
  partitionPrefix,
} from "./support";

export { ALLOCATE_SCHEDULE, BILLING_EXPORT_SCHEDULE, OUTBOX_SWEEP_SCHEDULE };

/** The allocation's writes: its transaction's item actions (Put marker, Update tenants, ConditionCheck). */
export const ALLOCATE_WRITE_ACTIONS = ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem"] as const;

/**
 * What the outbox sweeper writes: lease compare-and-sets, outbox-entry and index-key removals on
 * ENFORCE# items (UpdateItem) and enforcement-log entries (PutItem), limited to the TENANT# and
 * ENFORCEMENT# partitions (IAM matches partition keys only).
 */
export const OUTBOX_SWEEP_WRITE_ACTIONS = ["dynamodb:UpdateItem", "dynamodb:PutItem"] as const;

/** EventBridge retries of a cron's Lambda invoke before the event goes to the jobs DLQ. */
export const JOB_TARGET_RETRY_ATTEMPTS = 4;

export const ALLOCATE_HANDLER = SCHEDULED_JOBS.allocate.handler;
export const BILLING_EXPORT_HANDLER = SCHEDULED_JOBS["billing-export"].handler;
export const OUTBOX_SWEEP_HANDLER = SCHEDULED_JOBS["outbox-sweep"].handler;
export const RECONCILE_HANDLER = SCHEDULED_JOBS.reconcile.handler;
export { RECONCILE_SCHEDULE };

/**
 * CloudWatch reads of the reconciliation job. Neither action supports resource-level
 * permissions or condition keys (Service Authorization Reference, Amazon CloudWatch), so the
 * statement must name resource `*`: it can read any metric of the account, and nothing else.
 */
export const RECONCILE_CLOUDWATCH_ACTIONS = ["cloudwatch:ListMetrics", "cloudwatch:GetMetricData"] as const;
/** The reconciliation job's own record per hour (RECON#<hour>): create it, or move it to a new report digest. */
export const RECONCILE_WRITE_ACTIONS = ["dynamodb:PutItem", "dynamodb:UpdateItem"] as const;
/** Default drift (percent) above which the ops alarm fires; a stage sets RECONCILE_DRIFT_THRESHOLD_PERCENT at synth. */
export const DEFAULT_DRIFT_THRESHOLD_PERCENT = 0.5;

/**
 * Scheduled jobs (issue 5): hourly allocation of fixed endpoint cost to the tenants that used the
 * endpoint, the monthly billing export to an S3 bucket, and every 5 minutes the enforcement
 * outbox sweep (publishes pending enforcement events of tenants no evaluation retries).
 */
export function Jobs({ stack, app }: StackContext) {
  const { table } = use(Storage);
  const { bus } = use(Ingest);

  const bucket = new s3.Bucket(stack, "BillingExports", {
    encryption: s3.BucketEncryption.S3_MANAGED,
    blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
    objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
    enforceSSL: true,
    // An export is an invoice input: keep overwritten versions.
    versioned: true,
    removalPolicy: dataRemovalPolicy(app),
    autoDeleteObjects: false,
    lifecycleRules: isDisposableStage(app) ? [{ expiration: Duration.days(30) }] : [],
  });

  // One DLQ for the three crons: the scheduler event of a run EventBridge could not invoke
  // (after its retries), and the event of a run that failed all of Lambda's async retries, so a
  // missed run is kept (with its time) and alarmed on (Ops), not lost. Rerun it by hand from it.
  const failures = deadLetterQueue(stack, "JobFailures", app, "jobs");
  const target = { deadLetterQueue: failures, retryAttempts: JOB_TARGET_RETRY_ATTEMPTS, maxEventAge: Duration.hours(2) };

  // BILLING_EXPORT_BUCKET is for the S3 export writer; until it exists (it needs
  // @aws-sdk/client-s3) the handler fails loudly on Lambda instead of pretending to export.
  const environment = { ...baseEnvironment(table), BILLING_EXPORT_BUCKET: bucket.bucketName };

  const allocate = new Cron(stack, "Allocate", {
    schedule: ALLOCATE_SCHEDULE,
    job: {
      cdk: { target },
      function: {
        ...baseFunctionProps(),
        handler: ALLOCATE_HANDLER,
        timeout: SCHEDULED_JOBS.allocate.timeoutSeconds,
        environment,
        permissions: [
          // Reads endpoint-hour usage; writes the allocation marker (Put/Update) and the tenants'
          // allocatedCostNanoUsd in one transaction (shared/allocation/adapters/dynamodb.ts).
          tableStatement(table.cdk.table, [...DYNAMO_READ_ACTIONS, ...ALLOCATE_WRITE_ACTIONS]),
        ],
      },
    },
  });

  const billingExport = new Cron(stack, "BillingExport", {
    schedule: BILLING_EXPORT_SCHEDULE,
    job: {
      cdk: { target },
      function: {
        ...baseFunctionProps(),
        handler: BILLING_EXPORT_HANDLER,
        timeout: SCHEDULED_JOBS["billing-export"].timeoutSeconds,
        memorySize: 1024,
        environment,
        permissions: [
          // Lists month aggregates through gsi1, then batch-reads their model items.
          tableStatement(table.cdk.table, DYNAMO_READ_ACTIONS, { indexes: true }),
          new PolicyStatement({ effect: Effect.ALLOW, actions: ["s3:PutObject"], resources: [bucket.arnForObjects("*")] }),
        ],
      },
    },
  });

  const outboxSweep = new Cron(stack, "OutboxSweep", {
    schedule: OUTBOX_SWEEP_SCHEDULE,
    job: {
      cdk: { target },
      function: {
        ...baseFunctionProps(),
        handler: OUTBOX_SWEEP_HANDLER,
        timeout: SCHEDULED_JOBS["outbox-sweep"].timeoutSeconds,
        environment: { ...baseEnvironment(table), EVENT_BUS_NAME: bus.eventBusName },
        permissions: [
          // Lists pending ENFORCE# items on the sparse OUTBOX#<shard> partitions of gsi1: Query on
          // that index only (no table reads, no Scan).
          new PolicyStatement({
            effect: Effect.ALLOW,
            actions: ["dynamodb:Query"],
            resources: [`${table.cdk.table.tableArn}/index/${USAGE_TABLE.gsi1.name}`],
          }),
          tableStatement(table.cdk.table, OUTBOX_SWEEP_WRITE_ACTIONS, { leadingKeyPrefixes: ENFORCEMENT_WRITE_PARTITIONS }),
          putEventsStatement(bus, [ENFORCEMENT_SOURCE]),
        ],
      },
    },
  });

  // Reconciliation (shared/reconciliation): hourly, our aggregates against AWS/Bedrock and AWS/SageMaker.
  const driftThreshold = Number(process.env.RECONCILE_DRIFT_THRESHOLD_PERCENT ?? DEFAULT_DRIFT_THRESHOLD_PERCENT);
  if (!Number.isFinite(driftThreshold) || driftThreshold < 0 || driftThreshold > 100) {
    throw new Error(`RECONCILE_DRIFT_THRESHOLD_PERCENT must be a percentage 0-100, got ${process.env.RECONCILE_DRIFT_THRESHOLD_PERCENT}`);
  }
  const reconcile = new Cron(stack, "Reconcile", {
    schedule: RECONCILE_SCHEDULE,
    job: {
      cdk: { target },
      function: {
        ...baseFunctionProps(),
        handler: RECONCILE_HANDLER,
        timeout: SCHEDULED_JOBS.reconcile.timeoutSeconds,
        environment: { ...environment, RECONCILE_DRIFT_THRESHOLD_PERCENT: String(driftThreshold) },
        permissions: [
          // Tenants of the month through gsi1, their model-hour items, endpoint-hour items.
          tableStatement(table.cdk.table, ["dynamodb:GetItem", "dynamodb:Query"], { indexes: true }),
          tableStatement(table.cdk.table, RECONCILE_WRITE_ACTIONS, { leadingKeyPrefixes: [partitionPrefix(keys.reconciliationSignal("h").pk)] }),
          new PolicyStatement({ effect: Effect.ALLOW, actions: [...RECONCILE_CLOUDWATCH_ACTIONS], resources: ["*"] }),
          new PolicyStatement({ effect: Effect.ALLOW, actions: ["s3:PutObject"], resources: [bucket.arnForObjects("reconciliation/*")] }),
        ],
      },
    },
  });

  for (const cron of [allocate, billingExport, outboxSweep, reconcile]) {
    cron.jobFunction.configureAsyncInvoke({ retryAttempts: 2, onFailure: new SqsDestination(failures) });
  }

  stack.addOutputs({ BillingExportBucket: bucket.bucketName });
  const jobs: ScheduledJob[] = [
    {
      name: "allocate",
      fn: allocate.jobFunction,
      failureImpact:
        "fixed endpoint cost of the previous hour (or a re-split for late usage) is not allocated to tenants yet. Reruns are harmless; the next hourly runs retry every hour within ALLOCATION_LOOKBACK_HOURS, older hours need a manual rerun.",
    },
    {
      name: "billing-export",
      fn: billingExport.jobFunction,
      failureImpact:
        "the month that just ended has no invoice lines in the billing-exports bucket. Reruns rewrite the same files: invoke the job again for that month.",
    },
    {
      name: "outbox-sweep",
      fn: outboxSweep.jobFunction,
      failureImpact:
        "enforcement events (throttle, downgrade, restore, warning) whose publish failed, of tenants not evaluated since, stay unpublished, so data planes and ops are not told. They stay in the outbox; the next run (every 5 minutes) retries them.",
    },
    {
      name: "reconcile",
      fn: reconcile.jobFunction,
      failureImpact:
        "an hour of metered usage was not compared with AWS's own CloudWatch figures: no drift report, no UnmeteredTokens/DriftPercent, so usage that bypassed the wrappers goes unseen. Rerun it with npm run cli -- reconcile --from --to (same report, metrics signalled once).",
    },
  ];
  return { bucket, jobs, failures, driftThreshold };
}

/** A scheduled job, for the Ops alarm on its errors. */
export interface ScheduledJob {
  name: string;
  fn: SstFunction;
  /** What is left undone while the job fails (the text of its error alarm). */
  failureImpact: string;
}
