import { Duration, RemovalPolicy, type CfnResource } from "aws-cdk-lib";
import { Effect, PolicyStatement, ServicePrincipal } from "aws-cdk-lib/aws-iam";
import { CfnPermission } from "aws-cdk-lib/aws-lambda";
import { SqsDestination } from "aws-cdk-lib/aws-lambda-destinations";
import * as logs from "aws-cdk-lib/aws-logs";
import * as s3 from "aws-cdk-lib/aws-s3";
import { AwsCustomResource, AwsCustomResourcePolicy, PhysicalResourceId } from "aws-cdk-lib/custom-resources";
import { Function as SstFunction, use, type StackContext } from "sst/constructs";
import { INVOCATION_SOURCES } from "../shared/events/invocation";
import { keys } from "../shared/storage/keys";
import { Ingest } from "./Ingest";
import { Storage } from "./Storage";
import { baseEnvironment, baseFunctionProps, dataRemovalPolicy, deadLetterQueue, partitionPrefix, putEventsStatement, tableStatement } from "./support";
import { tenantPrincipalMapSchema } from "../shared/invocation-log/tenant-binding";

export const INVOCATION_LOG_HANDLER = "functions/s3/invocation-log.handler";
/** Seconds for one S3 event: a log object is gzip'd JSON lines, read, parsed and sent in 10-entry PutEvents. */
export const INVOCATION_LOG_TIMEOUT_SECONDS = 120;
/** Async retries Lambda makes of a failed S3 event before it goes to the failure queue. */
export const INVOCATION_LOG_RETRY_ATTEMPTS = 2;
/** Partition prefix of rejected log records (shared/invocation-log/quarantine.ts -> keys.quarantine), taken from the key builder. */
export const QUARANTINE_KEY_PREFIX = partitionPrefix(keys.quarantine("d", "r", "m").pk);
/** Invocation logs hold prompts and completions: keep them no longer than a redrive needs. */
export const INVOCATION_LOG_RETENTION_DAYS = 90;

/**
 * Where Bedrock writes log objects in the bucket: `<s3Config.keyPrefix>AWSLogs/<account>/BedrockModelInvocationLogs/<region>/...`
 * (Bedrock adds the `AWSLogs/...` part itself). This stack leaves `keyPrefix` unset, so this is
 * the whole prefix: the notification filter, the bucket policy and the function all use it.
 */
export function invocationLogKeyPrefix(account: string): string {
  return `AWSLogs/${account}/BedrockModelInvocationLogs/`;
}

/** Stack parameter (environment at synth time, e.g. `.env.<stage>`): who owns Bedrock's logging setting. */
/**
 * `TENANT_PRINCIPALS_JSON` from the deploy environment (e.g. `.env.prod`), checked at synth so a
 * bad map fails the deploy, not every log object. Unset: the function trusts no tenant claim
 * (see shared/invocation-log/README.md).
 */
export function tenantPrincipalsEnvironment(value: string | undefined): Record<string, string> {
  if (value === undefined || value === "") return {};
  let json: unknown;
  try {
    json = JSON.parse(value);
  } catch {
    throw new Error("TENANT_PRINCIPALS_JSON is not valid JSON (expected an object of principal pattern -> tenant patterns)");
  }
  const parsed = tenantPrincipalMapSchema.safeParse(json);
  if (!parsed.success) {
    throw new Error(`TENANT_PRINCIPALS_JSON: ${parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ")}`);
  }
  return { TENANT_PRINCIPALS_JSON: value };
}

export const BEDROCK_INVOCATION_LOGGING_VARIABLE = "BEDROCK_INVOCATION_LOGGING";
/**
 * `manual` (default): the stack never touches Bedrock's logging configuration; the operator
 * points it at the `InvocationLogBucket` output. `managed`: the stack puts the configuration on
 * create/update and deletes it on delete (see stacks/README.md for why this is opt-in).
 */
export const BEDROCK_INVOCATION_LOGGING_MODES = ["manual", "managed"] as const;
export type BedrockInvocationLoggingMode = (typeof BEDROCK_INVOCATION_LOGGING_MODES)[number];

/**
 * What Bedrock delivers (PutModelInvocationLoggingConfiguration `loggingConfig` flags). Bedrock
 * logs invocations of the models whose modalities are selected: text for chat/completion models
 * (token counts, and `output.outputBodyJson.metrics.latencyMs` which shared/invocation-log/parse.ts
 * reads), embedding for embedding models (input token counts). Image, video and audio payloads
 * are nothing the parser reads: off, so they are neither stored nor paid for.
 */
export const BEDROCK_DATA_DELIVERY = {
  textDataDeliveryEnabled: true,
  embeddingDataDeliveryEnabled: true,
  imageDataDeliveryEnabled: false,
  videoDataDeliveryEnabled: false,
  audioDataDeliveryEnabled: false,
} as const;

/** The only calls the configuring custom resource may make. Neither supports resource-level permissions: Resource "*". */
export const BEDROCK_LOGGING_CONFIG_ACTIONS = [
  "bedrock:PutModelInvocationLoggingConfiguration",
  "bedrock:DeleteModelInvocationLoggingConfiguration",
] as const;

export class InvocationLogsConfigError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "InvocationLogsConfigError";
  }
}

/** Reads the mode; a value that is set but not a known mode fails the synth instead of silently meaning `manual`. */
export function bedrockInvocationLoggingMode(value: string | undefined): BedrockInvocationLoggingMode {
  const v = value?.trim();
  if (!v) return "manual";
  if ((BEDROCK_INVOCATION_LOGGING_MODES as readonly string[]).includes(v)) return v as BedrockInvocationLoggingMode;
  throw new InvocationLogsConfigError(
    `${BEDROCK_INVOCATION_LOGGING_VARIABLE}=${JSON.stringify(value)}: expected one of ${BEDROCK_INVOCATION_LOGGING_MODES.join(", ")}`,
  );
}

/**
 * Bedrock model-invocation logs as a second usage source (shared/invocation-log): the bucket
 * Bedrock delivers the logs to, and the function that turns each new log object into
 * invocation events on the pipeline bus (counted once with the wrappers' events: same ids).
 *
 * Bedrock's logging configuration (PutModelInvocationLoggingConfiguration) is one setting per
 * account and region, not a CloudFormation resource. With `BEDROCK_INVOCATION_LOGGING=managed`
 * an AwsCustomResource puts it (S3 to this bucket, key prefix unset) and deletes it with the
 * stack; by default (`manual`) the stack leaves it alone and the operator points it at the
 * `InvocationLogBucket` output.
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
  const logPrefix = invocationLogKeyPrefix(stack.account);
  const loggingMode = bedrockInvocationLoggingMode(process.env[BEDROCK_INVOCATION_LOGGING_VARIABLE]);

  const failures = deadLetterQueue(stack, "InvocationLogFailures", app, "invocation-log");

  const fn = new SstFunction(stack, "InvocationLogProcessor", {
    ...baseFunctionProps(),
    handler: INVOCATION_LOG_HANDLER,
    timeout: INVOCATION_LOG_TIMEOUT_SECONDS,
    environment: { ...baseEnvironment(table), EVENT_BUS_NAME: bus.eventBusName, ...tenantPrincipalsEnvironment(process.env.TENANT_PRINCIPALS_JSON) },
    permissions: [
      // Built from the fixed name, not bucket.bucketArn: a reference to the bucket would make
      // the function depend on the bucket that depends on the function's invoke permission.
      new PolicyStatement({ effect: Effect.ALLOW, actions: ["s3:GetObject"], resources: [`${bucketArn}/*`] }),
      // usage events of this source only (the same ids as the wrappers', counted once)
      putEventsStatement(bus, [INVOCATION_SOURCES.invocationLog]),
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

  const loggingConfiguration = loggingMode === "managed" ? bedrockLoggingConfiguration(stack, bucket) : undefined;

  stack.addOutputs({ InvocationLogBucket: bucket.bucketName, BedrockInvocationLogging: loggingMode });
  return { bucket, fn, failures, loggingConfiguration };
}

/**
 * Points this account's Bedrock model-invocation logging (in the stack's region) at `bucket`.
 * Create and update put the whole configuration (Put replaces whatever was set before); delete
 * removes it, which turns invocation logging off in the region. A Put that fails on create is
 * rolled back with a Delete too (CDK's handler runs the delete call for any physical id), so a
 * configuration the region had before is lost either way: the reason this is opt-in.
 */
function bedrockLoggingConfiguration(stack: StackContext["stack"], bucket: s3.Bucket): AwsCustomResource {
  const put = {
    service: "Bedrock",
    action: "PutModelInvocationLoggingConfiguration",
    parameters: {
      // keyPrefix unset: Bedrock writes under AWSLogs/<account>/BedrockModelInvocationLogs/, the
      // prefix the notification and the bucket policy name.
      loggingConfig: { s3Config: { bucketName: bucket.bucketName }, ...BEDROCK_DATA_DELIVERY },
    },
    // One fixed id: a changed id would make CloudFormation delete the "old" resource after the
    // update, i.e. call Delete right after the new Put and leave logging off.
    physicalResourceId: PhysicalResourceId.of(`bedrock-model-invocation-logging-${stack.account}-${stack.region}`),
  };
  const config = new AwsCustomResource(stack, "BedrockInvocationLoggingConfig", {
    resourceType: "Custom::BedrockInvocationLogging",
    onCreate: put,
    onUpdate: put,
    onDelete: { service: "Bedrock", action: "DeleteModelInvocationLoggingConfiguration" },
    // Only the two calls. No s3:PutBucketPolicy/GetBucketPolicy: given those, Bedrock attaches a
    // bucket policy of its own, and the policy belongs to this stack. Bedrock checks its write
    // access itself, by putting a permission-check object through the stack's bucket policy.
    policy: AwsCustomResourcePolicy.fromStatements([
      new PolicyStatement({ effect: Effect.ALLOW, actions: [...BEDROCK_LOGGING_CONFIG_ACTIONS], resources: ["*"] }),
    ]),
    // The Lambda runtime's SDK has the Bedrock client; no npm install at deploy time.
    installLatestAwsSdk: false,
    logGroup: new logs.LogGroup(stack, "BedrockInvocationLoggingConfigLogs", {
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    }),
  });
  // Bedrock validates the destination when the configuration is put, by writing to it: the
  // bucket policy must exist first. On delete the order reverses: logging stops before the
  // policy goes.
  config.node.addDependency(bucket.policy!);
  return config;
}
