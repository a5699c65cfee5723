import type { Template } from "aws-cdk-lib/assertions";
import { beforeAll, describe, expect, it } from "vitest";
import { USAGE_TABLE } from "../../shared/storage/table";
import { Ops } from "../../stacks/Ops";
import { Jobs, RECONCILE_CLOUDWATCH_ACTIONS, RECONCILE_SCHEDULE, RECONCILE_WRITE_ACTIONS } from "../../stacks/Jobs";
import { allowedActions, asArray, functionRoleId, refId, roleStatements, synth } from "./synth";

type Resource = { Type: string; Properties: Record<string, any> };

let jobs: Template;
let ops: Template;
let fnId: string;
let fn: Resource;

const TABLE_ARN = /-Storage:ExportsOutputFnGetAttUsageTable.*Arn/;

beforeAll(async () => {
  // Given the whole app synthesized for a non-dev stage with a stage drift threshold
  const s = await synth({ stage: "test", env: { DATA_PLANE_BUS_ARN: undefined, OPS_ALERT_EMAIL: undefined, RECONCILE_DRIFT_THRESHOLD_PERCENT: "0.8" } });
  jobs = s.template(Jobs as never);
  ops = s.template(Ops as never);
  const rules = Object.values(jobs.findResources("AWS::Events::Rule", { Properties: { ScheduleExpression: RECONCILE_SCHEDULE } })) as Resource[];
  expect(rules).toHaveLength(1);
  fnId = refId((rules[0].Properties.Targets as any[])[0].Arn);
  fn = jobs.toJSON().Resources[fnId] as Resource;
});

describe("reconciliation job", () => {
  it("runs hourly at :25 with the threshold, table and report bucket in its environment", () => {
    expect(RECONCILE_SCHEDULE).toBe("cron(25 * * * ? *)");
    expect(fn.Properties.Environment.Variables).toMatchObject({
      RECONCILE_DRIFT_THRESHOLD_PERCENT: "0.8",
      USAGE_TABLE_NAME: { "Fn::ImportValue": expect.stringMatching(/-Storage:ExportsOutputRefUsageTable/) },
      BILLING_EXPORT_BUCKET: { Ref: expect.stringMatching(/^BillingExports/) },
    });
  });

  it("least privilege: table reads, writes only to RECON# items, CloudWatch reads on * (no resource-level permissions), S3 puts under reconciliation/", () => {
    const stmts = roleStatements(jobs, functionRoleId(jobs, fnId)).filter((st) => st.Effect === "Allow");
    const dynamo = stmts.filter((st) => asArray<string>(st.Action).some((a) => a.startsWith("dynamodb:")));
    expect(dynamo).toHaveLength(2);
    const reads = dynamo.find((st) => asArray<string>(st.Action).includes("dynamodb:Query"))!;
    expect(asArray<string>(reads.Action).sort()).toEqual(["dynamodb:GetItem", "dynamodb:Query"]);
    expect(JSON.stringify(reads.Resource)).toMatch(TABLE_ARN);
    const writes = dynamo.find((st) => st !== reads)!;
    expect(asArray<string>(writes.Action).sort()).toEqual([...RECONCILE_WRITE_ACTIONS].sort());
    expect(writes.Condition).toEqual({ "ForAllValues:StringLike": { "dynamodb:LeadingKeys": ["RECON#*"] } });

    const cw = stmts.filter((st) => asArray<string>(st.Action).some((a) => a.startsWith("cloudwatch:")));
    expect(cw).toHaveLength(1);
    expect(asArray<string>(cw[0].Action).sort()).toEqual([...RECONCILE_CLOUDWATCH_ACTIONS].sort());
    expect(cw[0].Resource).toBe("*");

    const s3 = stmts.filter((st) => asArray<string>(st.Action).some((a) => a.startsWith("s3:")));
    expect(s3).toHaveLength(1);
    expect(s3[0].Action).toBe("s3:PutObject");
    expect(JSON.stringify(s3[0].Resource)).toContain("/reconciliation/*");

    const others = allowedActions(stmts).filter((a) => !/^(dynamodb|cloudwatch|s3):/.test(a));
    // besides tracing: sending a run that failed its retries to the jobs DLQ (its on-failure destination)
    expect(others.sort()).toEqual(["sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:SendMessage", "xray:PutTelemetryRecords", "xray:PutTraceSegments"]);
    expect(USAGE_TABLE.gsi1.name).toBeTruthy();
  });

  it("raises the ops alarm when DriftPercent (Maximum over the hour) passes the stage threshold", () => {
    const alarms = Object.values(ops.findResources("AWS::CloudWatch::Alarm")) as Resource[];
    const drift = alarms.filter((a) => a.Properties.MetricName === "DriftPercent");
    expect(drift).toHaveLength(1);
    expect(drift[0].Properties).toMatchObject({
      Namespace: "GenAIMetering",
      Statistic: "Maximum",
      Period: 3600,
      Threshold: 0.8,
      ComparisonOperator: "GreaterThanThreshold",
      TreatMissingData: "notBreaching",
      Dimensions: [{ Name: "service", Value: "genai-metering" }],
    });
    expect(JSON.stringify(drift[0].Properties.AlarmActions)).toMatch(/-Alerts:ExportsOutputRefOpsTopic/);
  });
});
