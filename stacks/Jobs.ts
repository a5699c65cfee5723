import { Duration } from "aws-cdk-lib";
import { Effect, PolicyStatement } from "aws-cdk-lib/aws-iam";
import * as s3 from "aws-cdk-lib/aws-s3";
import { Cron, use, type StackContext } from "sst/constructs";
import { Storage } from "./Storage";
import { DYNAMO_READ_ACTIONS, baseEnvironment, baseFunctionProps, dataRemovalPolicy, isDisposableStage, tableStatement } from "./support";

/** Five minutes past each hour, so the previous hour's endpoint usage is complete when it is split. */
export const ALLOCATE_SCHEDULE = "cron(5 * * * ? *)";
/** 03:00 UTC on day 1 of every month: export the month that just ended. */
export const BILLING_EXPORT_SCHEDULE = "cron(0 3 1 * ? *)";

export const ALLOCATE_WRITE_ACTIONS = [
  "dynamodb:PutItem",
  "dynamodb:UpdateItem",
  "dynamodb:TransactWriteItems",
  "dynamodb:ConditionCheckItem",
] as const;

export const ALLOCATE_HANDLER = "functions/scheduled/allocate.handler";
export const BILLING_EXPORT_HANDLER = "functions/scheduled/billing-export.handler";

/**
 * Scheduled jobs (issue 5): hourly allocation of fixed endpoint cost to the tenants that used the
 * endpoint, and the monthly billing export to an S3 bucket.
 */
export function Jobs({ stack, app }: StackContext) {
  const { table } = use(Storage);

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

  // BILLING_EXPORT_BUCKET is for the S3 export writer; until it exists (it needs
  // @aws-sdk/client-s3) the handler fails loudly on Lambda instead of pretending to export.
  const environment = { ...baseEnvironment(table), BILLING_EXPORT_BUCKET: bucket.bucketName };

  const allocate = new Cron(stack, "Allocate", {
    schedule: ALLOCATE_SCHEDULE,
    job: {
      function: {
        ...baseFunctionProps(),
        handler: ALLOCATE_HANDLER,
        timeout: 300,
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
      function: {
        ...baseFunctionProps(),
        handler: BILLING_EXPORT_HANDLER,
        timeout: 900,
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

  stack.addOutputs({ BillingExportBucket: bucket.bucketName });
  return {
    bucket,
    jobs: [
      { name: "allocate", fn: allocate.jobFunction },
      { name: "billing-export", fn: billingExport.jobFunction },
    ],
  };
}
