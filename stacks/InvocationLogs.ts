import { Duration, type CfnResource } from "aws-cdk-lib";
import { Effect, PolicyStatement, ServicePrincipal } from "aws-cdk-lib/aws-iam";
import { CfnPermission } from "aws-cdk-lib/aws-lambda";
import { SqsDestination } from "aws-cdk-lib/aws-lambda-destinations";
import * as s3 from "aws-cdk-lib/aws-s3";
import { Function as SstFunction, use, type StackContext } from "sst/constructs";
import { Ingest } from "./Ingest";
import { Storage } from "./Storage";
import { baseEnvironment, baseFunctionProps, dataRemovalPolicy, deadLetterQueue, tableStatement } from "./support";

export const INVOCATION_LOG_HANDLER = "functions/s3/invocation-log.handler";
/** Seconds for one S3 event: a log object is gzip'd JSON lines, read, parsed and sent in 10-entry PutEvents. */
export const INVOCATION_LOG_TIMEOUT_SECONDS = 120;
/** Async retries Lambda makes of a failed S3 event before it goes to the failure queue. */
export const INVOCATION_LOG_RETRY_ATTEMPTS = 2;
/** Where rejected log records go (shared/invocation-log/quarantine.ts -> keys.quarantine). */
export const QUARANTINE_KEY_PREFIX = "QUARANTINE#";
/** Invocation logs hold prompts and completions: keep them no longer than a redrive needs. */
export const INVOCATION_LOG_RETENTION_DAYS = 90;

/**
 * Bedrock model-invocation logs as a second usage source (shared/invocation-log): the bucket
 * Bedrock delivers the logs to, and the function that turns each new log object into
 * invocation events on the pipeline bus (counted once with the wrappers' events: same ids).
 *
 * Bedrock's logging configuration itself (PutModelInvocationLoggingConfiguration) is an
 * account/region setting, not a CloudFormation resource: point it at the `InvocationLogBucket`
 * output with key prefix unset.
 *
 * The S3 -> Lambda notification is declared on the bucket itself (CloudFormation
 * `NotificationConfiguration`), not with `addEventNotification`: that one installs CDK's
 * notifications custom resource, whose role needs `s3:PutBucketNotification` on `*`. Declaring
 * it directly needs the bucket name before the bucket exists (the invoke permission must
 * exist first, and S3 checks it when the bucket is created), so the name is fixed:
 * `<stage>-<app>-invocation-logs-<account>-<region>`.
 */
export function InvocationLogs({ stack, app }: StackContext) {
  const { table } = use(Storage);
  const { bus } = use(Ingest);

  const bucketName = `${app.stage.toLowerCase()}-${app.name}-invocation-logs-${stack.account}-${stack.region}`;
  const bucketArn = `arn:${stack.partition}:s3:::${bucketName}`;
  const logPrefix = `AWSLogs/${stack.account}/BedrockModelInvocationLogs/`;

  const failures = deadLetterQueue(stack, "InvocationLogFailures", app, "invocation-log");

  const fn = new SstFunction(stack, "InvocationLogProcessor", {
    ...baseFunctionProps(),
    handler: INVOCATION_LOG_HANDLER,
    timeout: INVOCATION_LOG_TIMEOUT_SECONDS,
    environment: { ...baseEnvironment(table), EVENT_BUS_NAME: bus.eventBusName },
    permissions: [
      // Built from the fixed name, not bucket.bucketArn: a reference to the bucket would make
      // the function depend on the bucket that depends on the function's invoke permission.
      new PolicyStatement({ effect: Effect.ALLOW, actions: ["s3:GetObject"], resources: [`${bucketArn}/*`] }),
      new PolicyStatement({ effect: Effect.ALLOW, actions: ["events:PutEvents"], resources: [bus.eventBusArn] }),
      // Rejected records only: the quarantine partitions, nothing else of the table.
      tableStatement(table.cdk.table, ["dynamodb:PutItem"], { leadingKeyPrefixes: [QUARANTINE_KEY_PREFIX] }),
    ],
  });
  // S3 invokes asynchronously: after the retries the event goes to this queue, and a redrive
  // re-reads the object; its records have the same ids, counted once. Ops alarms when a
  // message is in this queue, and on the function's errors.
  fn.configureAsyncInvoke({
    retryAttempts: INVOCATION_LOG_RETRY_ATTEMPTS,
    maxEventAge: Duration.hours(6),
    onFailure: new SqsDestination(failures),
  });

  const invoke = new CfnPermission(stack, "InvocationLogBucketInvoke", {
    action: "lambda:InvokeFunction",
    functionName: fn.functionArn,
    principal: "s3.amazonaws.com",
    // Only this bucket, in this account (a deleted bucket's name could be taken by another account).
    sourceArn: bucketArn,
    sourceAccount: stack.account,
  });

  const bucket = new s3.Bucket(stack, "InvocationLogBucket", {
    bucketName,
    encryption: s3.BucketEncryption.S3_MANAGED,
    blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
    objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
    enforceSSL: true,
    removalPolicy: dataRemovalPolicy(app),
    autoDeleteObjects: false,
    lifecycleRules: [{ expiration: Duration.days(INVOCATION_LOG_RETENTION_DAYS) }],
  });
  // Bedrock writes the logs as its service principal; only for this account's Bedrock, and
  // only under the key layout Bedrock uses, so the bucket cannot be used as a confused deputy.
  bucket.addToResourcePolicy(
    new PolicyStatement({
      effect: Effect.ALLOW,
      principals: [new ServicePrincipal("bedrock.amazonaws.com")],
      actions: ["s3:PutObject"],
      resources: [bucket.arnForObjects(`${logPrefix}*`)],
      conditions: {
        StringEquals: { "aws:SourceAccount": stack.account },
        ArnLike: { "aws:SourceArn": `arn:${stack.partition}:bedrock:${stack.region}:${stack.account}:*` },
      },
    }),
  );

  const cfnBucket = bucket.node.defaultChild as s3.CfnBucket;
  cfnBucket.notificationConfiguration = {
    lambdaConfigurations: [
      {
        event: "s3:ObjectCreated:*",
        function: fn.functionArn,
        filter: { s3Key: { rules: [{ name: "prefix", value: logPrefix }] } },
      },
    ],
  };
  // S3 validates the destination when it stores the configuration: the permission must exist first.
  cfnBucket.addDependency(invoke);
  cfnBucket.addDependency(fn.node.defaultChild as CfnResource);

  stack.addOutputs({ InvocationLogBucket: bucket.bucketName });
  return { bucket, fn, failures };
}
