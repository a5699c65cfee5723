import { Match, Template } from "aws-cdk-lib/assertions";
import type { Stack as CdkStack } from "aws-cdk-lib";
import { App, getStack } from "sst/constructs";
import { useProject } from "sst/project.js";
import { beforeAll, describe, expect, it } from "vitest";
import {
  INVOCATION_LOG_HANDLER,
  INVOCATION_LOG_RETENTION_DAYS,
  INVOCATION_LOG_RETRY_ATTEMPTS,
  InvocationLogs,
  QUARANTINE_KEY_PREFIX,
} from "../../stacks/InvocationLogs";
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

const account = () => s.stack(InvocationLogs).account;

beforeAll(async () => {
  s = await synth();
  t = s.template(InvocationLogs);
}, 120_000);

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
    const [, policy] = only(resources("AWS::S3::BucketPolicy"), "bucket policy");
    const allows = (policy.Properties.PolicyDocument.Statement as Record<string, any>[]).filter((st) => st.Effect === "Allow");
    const st = only(allows, "allow statement");
    expect(st.Principal).toEqual({ Service: "bedrock.amazonaws.com" });
    expect(st.Action).toBe("s3:PutObject");
    expect(st.Condition.StringEquals).toEqual({ "aws:SourceAccount": account() });
    expect(JSON.stringify(st.Condition.ArnLike["aws:SourceArn"])).toContain(":bedrock:");
    expect(flat(st.Resource)).toMatch(new RegExp(`/AWSLogs/${account()}/BedrockModelInvocationLogs/\\*$`));
  });

  it("notifies the invocation-log function of every object Bedrock creates, after the invoke permission exists", () => {
    const [bucketId, bucket] = only(resources("AWS::S3::Bucket"), "bucket");
    const [fnId] = processor();
    const config = only(bucket.Properties.NotificationConfiguration.LambdaConfigurations as Record<string, any>[], "lambda notification");
    expect(config.Event).toBe("s3:ObjectCreated:*");
    expect(refId(config.Function)).toBe(fnId);
    expect(JSON.stringify(config.Filter.S3Key.Rules)).toContain("BedrockModelInvocationLogs/");

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

    const dynamo = own.find((st) => st.Action === "dynamodb:PutItem")!;
    expect(asArray(dynamo.Resource)).toHaveLength(1);
    expect(dynamo.Condition).toEqual({ "ForAllValues:StringLike": { "dynamodb:LeadingKeys": [`${QUARANTINE_KEY_PREFIX}*`] } });
    // the prefix is the one the quarantine keys really use
    expect(keys.quarantine("2026-11-25", "x", "y").pk.startsWith(QUARANTINE_KEY_PREFIX)).toBe(true);

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
