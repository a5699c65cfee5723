import { Match, Template } from "aws-cdk-lib/assertions";
import { AwsCustomResource } from "aws-cdk-lib/custom-resources";
import type { Stack as CdkStack } from "aws-cdk-lib";
import { App, getStack } from "sst/constructs";
import { useProject } from "sst/project.js";
import { beforeAll, describe, expect, it } from "vitest";
import {
  BEDROCK_DATA_DELIVERY,
  BEDROCK_INVOCATION_LOGGING_VARIABLE,
  BEDROCK_LOGGING_CONFIG_ACTIONS,
  INVOCATION_LOG_HANDLER,
  INVOCATION_LOG_RETENTION_DAYS,
  INVOCATION_LOG_RETRY_ATTEMPTS,
  InvocationLogs,
  InvocationLogsConfigError,
  QUARANTINE_KEY_PREFIX,
  bedrockInvocationLoggingMode,
  invocationLogKeyPrefix,
} from "../../stacks/InvocationLogs";
import { skipReason } from "../../shared/invocation-log/source";
import { keys } from "../../shared/storage/keys";
import { Ingest } from "../../stacks/Ingest";
import { Storage } from "../../stacks/Storage";
import { allowedActions, asArray, functionRoleId, refId, roleStatements, statements, synth, type Synth } from "./synth";

type Resource = { Type: string; Properties: Record<string, any>; [k: string]: any };

let s: Synth;
let t: Template;

function resources(type: string): [string, Resource][] {
  return Object.entries(t.findResources(type)) as [string, Resource][];
}

function only<T>(xs: T[], what: string): T {
  expect(xs, what).toHaveLength(1);
  return xs[0];
}

/** The app's function (SST marks its own functions with SST_APP), not CDK helpers. */
function processor(): [string, Resource] {
  return only(
    resources("AWS::Lambda::Function").filter(([, r]) => r.Properties.Environment?.Variables?.SST_APP),
    "invocation-log function",
  );
}

/** A string, a `{ Ref }` or a `{ "Fn::Join": ["", parts] }` as one string (`${Ref}` for references). */
function flat(value: any): string {
  if (typeof value === "string") return value;
  if (value?.Ref) return `\${${value.Ref}}`;
  if (value?.["Fn::Join"]) return (value["Fn::Join"][1] as any[]).map(flat).join(value["Fn::Join"][0]);
  return JSON.stringify(value);
}

let stackAccount: string;
let stackRegion: string;
const account = () => stackAccount;
const region = () => stackRegion;

beforeAll(async () => {
  // The default: the parameter unset, whatever the shell running the tests has.
  s = await synth({ env: { [BEDROCK_INVOCATION_LOGGING_VARIABLE]: undefined } });
  t = s.template(InvocationLogs);
  // read now: getStack() answers for the most recent synth, and later tests synthesize again
  stackAccount = s.stack(InvocationLogs).account;
  stackRegion = s.stack(InvocationLogs).region;
}, 120_000);

/**
 * The bucket policy's one Allow: only this account's Bedrock (this region) may put objects, and
 * only under the prefix Bedrock writes to when the configuration leaves `keyPrefix` unset.
 */
function expectBedrockWriteStatement(template: Template, bucketId: string): void {
  const [, policy] = only(Object.entries(template.findResources("AWS::S3::BucketPolicy")) as [string, Resource][], "bucket policy");
  expect(refId(policy.Properties.Bucket)).toBe(bucketId);
  const allows = (policy.Properties.PolicyDocument.Statement as Record<string, any>[]).filter((st) => st.Effect === "Allow");
  const st = only(allows, "allow statement");
  expect(st.Principal).toEqual({ Service: "bedrock.amazonaws.com" });
  expect(st.Action).toBe("s3:PutObject");
  expect(Object.keys(st.Condition).sort()).toEqual(["ArnLike", "StringEquals"]);
  expect(st.Condition.StringEquals).toEqual({ "aws:SourceAccount": account() });
  expect(Object.keys(st.Condition.ArnLike)).toEqual(["aws:SourceArn"]);
  expect(flat(st.Condition.ArnLike["aws:SourceArn"])).toBe(`arn:\${AWS::Partition}:bedrock:${region()}:${account()}:*`);
  expect(st.Resource["Fn::Join"][1][0]).toEqual({ "Fn::GetAtt": [bucketId, "Arn"] });
  expect(st.Resource["Fn::Join"][1].slice(1).join("")).toBe(`/${invocationLogKeyPrefix(account())}*`);
}

describe("InvocationLogs stack: the Bedrock invocation-log bucket", () => {
  it("is encrypted, private, bucket-owner only, TLS only, retained outside dev stages, and expires logs", () => {
    const [, bucket] = only(resources("AWS::S3::Bucket"), "bucket");
    expect(bucket.DeletionPolicy).toBe("Retain");
    expect(bucket.Properties.BucketEncryption).toEqual({
      ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: "AES256" } }],
    });
    expect(bucket.Properties.PublicAccessBlockConfiguration).toEqual({
      BlockPublicAcls: true,
      BlockPublicPolicy: true,
      IgnorePublicAcls: true,
      RestrictPublicBuckets: true,
    });
    expect(bucket.Properties.OwnershipControls).toEqual({ Rules: [{ ObjectOwnership: "BucketOwnerEnforced" }] });
    expect(bucket.Properties.LifecycleConfiguration.Rules).toEqual([
      expect.objectContaining({ ExpirationInDays: INVOCATION_LOG_RETENTION_DAYS, Status: "Enabled" }),
    ]);

    t.hasResourceProperties("AWS::S3::BucketPolicy", {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: "Deny", Action: "s3:*", Principal: { AWS: "*" }, Condition: { Bool: { "aws:SecureTransport": "false" } } }),
        ]),
      },
    });
  });

  it("lets only this account's Bedrock put log objects, under Bedrock's key layout", () => {
    const [bucketId] = only(resources("AWS::S3::Bucket"), "bucket");
    expectBedrockWriteStatement(t, bucketId);
    expect(invocationLogKeyPrefix("123456789012")).toBe("AWSLogs/123456789012/BedrockModelInvocationLogs/");
  });

  it("notifies the invocation-log function of every object Bedrock creates, after the invoke permission exists", () => {
    const [bucketId, bucket] = only(resources("AWS::S3::Bucket"), "bucket");
    const [fnId] = processor();
    const config = only(bucket.Properties.NotificationConfiguration.LambdaConfigurations as Record<string, any>[], "lambda notification");
    expect(config.Event).toBe("s3:ObjectCreated:*");
    expect(refId(config.Function)).toBe(fnId);
    expect(config.Filter.S3Key.Rules).toEqual([{ Name: "prefix", Value: invocationLogKeyPrefix(account()) }]);

    const [permId, perm] = only(resources("AWS::Lambda::Permission"), "invoke permission");
    expect(perm.Properties).toMatchObject({ Action: "lambda:InvokeFunction", Principal: "s3.amazonaws.com", SourceAccount: account() });
    expect(refId(perm.Properties.FunctionName)).toBe(fnId);
    // the source ARN is exactly this bucket's (its fixed name), not any bucket
    expect(flat(perm.Properties.SourceArn)).toBe(`arn:\${AWS::Partition}:s3:::${flat(bucket.Properties.BucketName)}`);
    expect(asArray(t.toJSON().Resources[bucketId].DependsOn)).toEqual(expect.arrayContaining([permId, fnId]));
    // no CDK notifications custom resource (its role needs s3:PutBucketNotification on "*")
    expect(resources("Custom::S3BucketNotifications")).toEqual([]);
  });

  it("runs the handler on nodejs22.x with the table and bus in its environment, retrying then parking failed events", () => {
    const [fnId, fn] = processor();
    expect(fn.Properties.Runtime).toBe("nodejs22.x");
    expect(fn.Properties.Environment.Variables).toMatchObject({
      USAGE_TABLE_NAME: expect.anything(),
      EVENT_BUS_NAME: expect.anything(),
      SERVICE_NAME: "genai-metering",
    });
    const [, invokeConfig] = only(resources("AWS::Lambda::EventInvokeConfig"), "async invoke config");
    expect(refId(invokeConfig.Properties.FunctionName)).toBe(fnId);
    expect(invokeConfig.Properties.MaximumRetryAttempts).toBe(INVOCATION_LOG_RETRY_ATTEMPTS);
    const failureQueue = invokeConfig.Properties.DestinationConfig.OnFailure.Destination;
    const [queueId, queue] = only(resources("AWS::SQS::Queue"), "failure queue");
    expect(refId(failureQueue)).toBe(queueId);
    expect(queue.Properties.SqsManagedSseEnabled).toBe(true);
  });

  it("bundles the handler it points at (app.finish, as sst deploy does; esbuild runs locally)", async () => {
    const { config: project } = useProject();
    const app = new App({ mode: "deploy", stage: "test", name: project.name, region: project.region ?? "us-west-2" });
    app.stack(Storage).stack(Ingest).stack(InvocationLogs);
    await app.finish();
    const fns = Object.values(Template.fromStack(getStack(InvocationLogs) as CdkStack).findResources("AWS::Lambda::Function")).filter(
      (r) => r.Properties.Environment?.Variables?.SST_APP,
    );
    expect(fns.map((f) => f.Properties.Handler)).toEqual([INVOCATION_LOG_HANDLER]);
    expect(fns[0].Properties.Runtime).toBe("nodejs22.x");
    expect(fns[0].Properties.Code.S3Key).toMatch(/\.zip$/);
  }, 180_000);

  it("may only read log objects of its bucket, put events on the bus, and write quarantine items", () => {
    const [fnId, fn] = processor();
    const stmts = roleStatements(t, functionRoleId(t, fnId)).filter((st) => st.Effect === "Allow");
    const own = stmts.filter((st) => !asArray<string>(st.Action).some((a) => a.startsWith("xray:") || a.startsWith("sqs:")));
    expect(allowedActions(own).sort()).toEqual(["dynamodb:PutItem", "events:PutEvents", "s3:GetObject"]);

    const get = own.find((st) => st.Action === "s3:GetObject")!;
    const bucketName = flat(only(resources("AWS::S3::Bucket"), "bucket")[1].Properties.BucketName);
    expect(flat(get.Resource)).toBe(`arn:\${AWS::Partition}:s3:::${bucketName}/*`);

    const put = own.find((st) => st.Action === "events:PutEvents")!;
    expect(JSON.stringify(put.Resource)).toMatch(/EventBusArn|Bus/);
    // usage events of its own source only
    expect(put.Condition).toEqual({ StringEquals: { "events:source": "genai.metering.invocation-log" } });

    const dynamo = own.find((st) => st.Action === "dynamodb:PutItem")!;
    expect(asArray(dynamo.Resource)).toHaveLength(1);
    expect(dynamo.Condition).toEqual({ "ForAllValues:StringLike": { "dynamodb:LeadingKeys": [`${QUARANTINE_KEY_PREFIX}*`] } });
    // the prefix is derived from the quarantine keys: only QUARANTINE# partitions, nothing wider
    expect(QUARANTINE_KEY_PREFIX).toBe("QUARANTINE#");

    // the failure destination may only send to its queue
    const sqs = stmts.filter((st) => asArray<string>(st.Action).some((a) => a.startsWith("sqs:")));
    expect(allowedActions(sqs).every((a) => a.startsWith("sqs:Send") || a === "sqs:GetQueueAttributes" || a === "sqs:GetQueueUrl")).toBe(true);
    expect(fn.Properties.Role).toBeDefined();
  });

  it("grants no wildcard action and no Resource '*' except for X-Ray", () => {
    const all = statements(t).map(({ statement }) => statement).filter((st) => st.Effect === "Allow");
    expect(allowedActions(all).filter((a) => a === "*" || a.endsWith(":*"))).toEqual([]);
    const star = all.filter((st) => asArray(st.Resource).includes("*")).flatMap((st) => asArray<string>(st.Action));
    expect(star.filter((a) => !["xray:PutTraceSegments", "xray:PutTelemetryRecords", "logs:PutRetentionPolicy", "logs:DeleteRetentionPolicy"].includes(a))).toEqual([]);
  });
});

describe("InvocationLogs stack: Bedrock's model-invocation-logging configuration", () => {
  const CONFIG_TYPE = "Custom::BedrockInvocationLogging";
  /** Logical ids of AwsCustomResource's singleton provider (function and role) start with its fixed UUID. */
  const PROVIDER_ID_PREFIX = `AWS${AwsCustomResource.PROVIDER_FUNCTION_UUID.replace(/-/g, "")}`;
  let m: Template;
  let acct: string;
  let rgn: string;

  beforeAll(async () => {
    const managed = await synth({ env: { [BEDROCK_INVOCATION_LOGGING_VARIABLE]: "managed" } });
    m = managed.template(InvocationLogs);
    // read now: getStack() answers for the most recent synth, and later tests synthesize again
    acct = managed.stack(InvocationLogs).account;
    rgn = managed.stack(InvocationLogs).region;
  }, 120_000);

  function managedResources(type: string): [string, Resource][] {
    return Object.entries(m.findResources(type)) as [string, Resource][];
  }

  /** A custom resource's Create/Update/Delete property: JSON, with references as `${LogicalId}`. */
  function sdkCall(property: unknown): Record<string, any> {
    return JSON.parse(flat(property));
  }

  function configuration(): [string, Resource] {
    return only(managedResources(CONFIG_TYPE), "logging configuration resource");
  }

  function bucketId(template: Template): string {
    return only(Object.keys(template.findResources("AWS::S3::Bucket")), "bucket");
  }

  it("is left alone by default: no custom resource, no provider function, no bedrock:* permission", () => {
    // Given the parameter unset (beforeAll of this file)
    // Then nothing in the stack can call Bedrock's control plane
    expect(resources(CONFIG_TYPE)).toEqual([]);
    expect(resources("Custom::AWS")).toEqual([]);
    expect(resources("AWS::Lambda::Function").filter(([id]) => id.startsWith(PROVIDER_ID_PREFIX))).toEqual([]);
    const actions = allowedActions(statements(t).map(({ statement }) => statement));
    expect(actions.filter((a) => a.startsWith("bedrock:"))).toEqual([]);
    expect(t.toJSON().Outputs.BedrockInvocationLogging).toEqual({ Value: "manual" });
  });

  it("is left alone with an explicit manual, and a misspelt value fails the synth instead of meaning manual", async () => {
    const manual = await synth({ env: { [BEDROCK_INVOCATION_LOGGING_VARIABLE]: "manual" } });
    const tm = manual.template(InvocationLogs);
    expect(Object.keys(tm.findResources(CONFIG_TYPE))).toEqual([]);
    expect(tm.toJSON().Outputs.BedrockInvocationLogging).toEqual({ Value: "manual" });

    expect(bedrockInvocationLoggingMode(undefined)).toBe("manual");
    expect(bedrockInvocationLoggingMode("  ")).toBe("manual");
    expect(bedrockInvocationLoggingMode("managed")).toBe("managed");
    for (const wrong of ["true", "on", "Managed", "manage"]) {
      expect(() => bedrockInvocationLoggingMode(wrong)).toThrow(InvocationLogsConfigError);
    }
    await expect(synth({ env: { [BEDROCK_INVOCATION_LOGGING_VARIABLE]: "yes" } })).rejects.toThrow(
      /BEDROCK_INVOCATION_LOGGING="yes": expected one of manual, managed/,
    );
  }, 120_000);

  it("puts the configuration on create and update: S3 to the stack's bucket, key prefix unset, text and embeddings only", () => {
    const [, config] = configuration();
    const bucket = bucketId(m);
    const create = sdkCall(config.Properties.Create);
    expect(create).toEqual({
      service: "Bedrock",
      action: "PutModelInvocationLoggingConfiguration",
      parameters: {
        loggingConfig: {
          s3Config: { bucketName: `\${${bucket}}` },
          textDataDeliveryEnabled: true,
          embeddingDataDeliveryEnabled: true,
          imageDataDeliveryEnabled: false,
          videoDataDeliveryEnabled: false,
          audioDataDeliveryEnabled: false,
        },
      },
      // fixed: a changed id would make CloudFormation call Delete after the update's Put
      physicalResourceId: { id: `bedrock-model-invocation-logging-${acct}-${rgn}` },
    });
    expect(create.parameters.loggingConfig).toMatchObject(BEDROCK_DATA_DELIVERY);
    expect(create.parameters.loggingConfig.s3Config).not.toHaveProperty("keyPrefix");
    expect(sdkCall(config.Properties.Update)).toEqual(create);
    // the Lambda runtime's SDK, no npm install during the deployment
    expect(config.Properties.InstallLatestAwsSdk).toBe(false);
  });

  it("writes where the function is notified: with keyPrefix unset Bedrock's objects land under the notification prefix", () => {
    const [, bucket] = only(managedResources("AWS::S3::Bucket"), "bucket");
    const [rule] = bucket.Properties.NotificationConfiguration.LambdaConfigurations[0].Filter.S3Key.Rules;
    // Bedrock writes <keyPrefix>AWSLogs/<account>/BedrockModelInvocationLogs/<region>/...
    const keyPrefix = sdkCall(configuration()[1].Properties.Create).parameters.loggingConfig.s3Config.keyPrefix ?? "";
    const bedrockObject = `${keyPrefix}AWSLogs/${acct}/BedrockModelInvocationLogs/${rgn}/2026/11/26/01/20261126T010203Z_ab12.json.gz`;
    expect(rule).toEqual({ Name: "prefix", Value: invocationLogKeyPrefix(acct) });
    expect(bedrockObject.startsWith(rule.Value)).toBe(true);
    expect(skipReason(bedrockObject)).toBeUndefined();
    // Bedrock's write check on Put lands there too; the function skips it
    expect(skipReason(`${keyPrefix}AWSLogs/${acct}/BedrockModelInvocationLogs/amazon-bedrock-logs-permission-check`)).toBe("permission-check object");
  });

  it("deletes the configuration on delete, with no parameters", () => {
    const [, config] = configuration();
    expect(sdkCall(config.Properties.Delete)).toEqual({ service: "Bedrock", action: "DeleteModelInvocationLoggingConfiguration" });
  });

  it("is put only after the bucket policy Bedrock's write check needs exists", () => {
    const [, config] = configuration();
    const [policyId] = only(managedResources("AWS::S3::BucketPolicy"), "bucket policy");
    expect(asArray(config.DependsOn)).toContain(policyId);
    expectBedrockWriteStatement(m, bucketId(m));
  });

  it("runs as a role that may only put and delete the logging configuration", () => {
    const [, config] = configuration();
    const providerId = refId(config.Properties.ServiceToken);
    expect(providerId.startsWith(PROVIDER_ID_PREFIX)).toBe(true);
    const provider = m.toJSON().Resources[providerId] as Resource;
    expect(provider.Type).toBe("AWS::Lambda::Function");
    expect(provider.Properties.Runtime).toBe("nodejs22.x");
    const roleId = functionRoleId(m, providerId);

    // exactly one inline statement on the provider's role
    const stmts = roleStatements(m, roleId);
    expect(stmts).toEqual([{ Effect: "Allow", Action: [...BEDROCK_LOGGING_CONFIG_ACTIONS], Resource: "*" }]);
    expect([...BEDROCK_LOGGING_CONFIG_ACTIONS].sort()).toEqual([
      "bedrock:DeleteModelInvocationLoggingConfiguration",
      "bedrock:PutModelInvocationLoggingConfiguration",
    ]);
    // no s3:* on it: Bedrock would otherwise attach a bucket policy of its own, outside the stack
    expect(allowedActions(stmts).filter((a) => !a.startsWith("bedrock:"))).toEqual([]);
    // managed policies: Lambda's basic execution role (its own logs) only
    const role = m.toJSON().Resources[roleId] as Resource;
    expect(role.Properties.ManagedPolicyArns.map(flat)).toEqual(["arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"]);
    // the CustomResource waits for its permissions
    const policyIds = Object.entries(m.findResources("AWS::IAM::Policy"))
      .filter(([, p]) => (p.Properties.Roles ?? []).some((r: any) => r?.Ref === roleId))
      .map(([id]) => id);
    expect(asArray(config.DependsOn)).toEqual(expect.arrayContaining(policyIds));
    // its logs expire
    const logGroupId = refId(provider.Properties.LoggingConfig.LogGroup);
    expect((m.toJSON().Resources[logGroupId] as Resource).Properties.RetentionInDays).toBe(30);
  });

  it("still grants no wildcard action, and Resource '*' only to X-Ray, log retention and the two Bedrock calls", () => {
    const all = statements(m).map(({ statement }) => statement).filter((st) => st.Effect === "Allow");
    expect(allowedActions(all).filter((a) => a === "*" || a.endsWith(":*"))).toEqual([]);
    const star = all.filter((st) => asArray(st.Resource).includes("*")).flatMap((st) => asArray<string>(st.Action));
    const allowed = ["xray:PutTraceSegments", "xray:PutTelemetryRecords", "logs:PutRetentionPolicy", "logs:DeleteRetentionPolicy", ...BEDROCK_LOGGING_CONFIG_ACTIONS];
    expect(star.filter((a) => !allowed.includes(a))).toEqual([]);
    expect(star.filter((a) => a.startsWith("bedrock:")).sort()).toEqual([...BEDROCK_LOGGING_CONFIG_ACTIONS].sort());
    expect(m.toJSON().Outputs.BedrockInvocationLogging).toEqual({ Value: "managed" });
  });

  it("adds the custom resource, its provider, role, policy and log group, and changes nothing else", () => {
    const before = t.toJSON().Resources as Record<string, Resource>;
    const after = m.toJSON().Resources as Record<string, Resource>;
    const added = Object.keys(after).filter((id) => !(id in before));
    expect(Object.keys(before).filter((id) => !(id in after))).toEqual([]);
    for (const id of Object.keys(before)) expect(after[id], id).toEqual(before[id]);
    expect(added.map((id) => after[id].Type).sort()).toEqual(
      [CONFIG_TYPE, "AWS::IAM::Policy", "AWS::IAM::Role", "AWS::Lambda::Function", "AWS::Logs::LogGroup"].sort(),
    );
  });
});
