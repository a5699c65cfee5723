import type { Template } from "aws-cdk-lib/assertions";
import { beforeAll, describe, expect, it } from "vitest";
import { USAGE_TABLE } from "../../shared/storage/table";
import { Jobs, OUTBOX_SWEEP_SCHEDULE, OUTBOX_SWEEP_WRITE_ACTIONS } from "../../stacks/Jobs";
import { Ops } from "../../stacks/Ops";
import { allowedActions, asArray, functionRoleId, refId, roleStatements, synth } from "./synth";

type Resource = { Type: string; Properties: Record<string, any> };

let jobs: Template;
let ops: Template;
let fnId: string;
let fn: Resource;

const TABLE_ARN = /-Storage:ExportsOutputFnGetAttUsageTable.*Arn/;
const BUS_ARN = /-Ingest:ExportsOutputFnGetAttBusEventBus.*Arn/;

beforeAll(async () => {
  // Given the whole app synthesized for a non-dev stage
  const s = await synth({ stage: "test", env: { DATA_PLANE_BUS_ARN: undefined, OPS_ALERT_EMAIL: undefined } });
  jobs = s.template(Jobs as never);
  ops = s.template(Ops as never);
  const rules = Object.values(jobs.findResources("AWS::Events::Rule", { Properties: { ScheduleExpression: OUTBOX_SWEEP_SCHEDULE } })) as Resource[];
  expect(rules).toHaveLength(1);
  const targets = rules[0].Properties.Targets as any[];
  expect(targets).toHaveLength(1);
  fnId = refId(targets[0].Arn);
  fn = jobs.toJSON().Resources[fnId] as Resource;
});

describe("outbox sweep job", () => {
  it("runs every 5 minutes, with the table and the pipeline bus in its environment", () => {
    expect(OUTBOX_SWEEP_SCHEDULE).toBe("rate(5 minutes)");
    expect(fn.Type).toBe("AWS::Lambda::Function");
    expect(fn.Properties.Environment.Variables).toMatchObject({
      USAGE_TABLE_NAME: { "Fn::ImportValue": expect.stringMatching(/-Storage:ExportsOutputRefUsageTable/) },
      EVENT_BUS_NAME: { "Fn::ImportValue": expect.stringMatching(/-Ingest:ExportsOutputRefBus/) },
    });
    // the handler keeps 15 s of the timeout back to stop between pages
    expect(fn.Properties.Timeout).toBeGreaterThan(15);
  });

  it("may only Query gsi1, update/put TENANT# and ENFORCEMENT# items, and PutEvents on the pipeline bus", () => {
    const stmts = roleStatements(jobs, functionRoleId(jobs, fnId)).filter((st) => st.Effect === "Allow");
    const dynamo = stmts.filter((st) => asArray<string>(st.Action).some((a) => a.startsWith("dynamodb:")));
    expect(dynamo).toHaveLength(2);

    // reads: the sparse outbox partitions of the index, nothing on the table itself (no Scan, no GetItem)
    const [query] = dynamo.filter((st) => asArray<string>(st.Action).includes("dynamodb:Query"));
    expect(query.Action).toBe("dynamodb:Query");
    const queryResources = asArray<any>(query.Resource);
    expect(queryResources).toHaveLength(1);
    const joined = JSON.stringify(queryResources[0]);
    expect(joined).toMatch(TABLE_ARN);
    expect(joined).toContain(`/index/${USAGE_TABLE.gsi1.name}`);

    // writes: lease compare-and-sets, outbox removal, log entries; partition-limited, no deletes
    const [write] = dynamo.filter((st) => !asArray<string>(st.Action).includes("dynamodb:Query"));
    expect(asArray<string>(write.Action).sort()).toEqual([...OUTBOX_SWEEP_WRITE_ACTIONS].sort());
    expect(JSON.stringify(write.Resource)).toMatch(TABLE_ARN);
    expect(asArray(write.Resource)).toHaveLength(1);
    expect(write.Condition).toEqual({ "ForAllValues:StringLike": { "dynamodb:LeadingKeys": ["TENANT#*", "ENFORCEMENT#*"] } });

    const events = stmts.filter((st) => asArray<string>(st.Action).some((a) => a.startsWith("events:")));
    expect(events).toHaveLength(1);
    expect(events[0].Action).toBe("events:PutEvents");
    expect(JSON.stringify(events[0].Resource)).toMatch(BUS_ARN);
    // enforcement events only
    expect(events[0].Condition).toEqual({ StringEquals: { "events:source": "genai.metering.quota" } });

    // and nothing else besides X-Ray tracing and sending a failed run to the jobs DLQ
    const others = allowedActions(stmts).filter((a) => !a.startsWith("dynamodb:") && !a.startsWith("events:"));
    expect(others.sort()).toEqual(["sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:SendMessage", "xray:PutTelemetryRecords", "xray:PutTraceSegments"]);
    const sqsStmt = stmts.find((st) => asArray<string>(st.Action).includes("sqs:SendMessage"))!;
    expect(JSON.stringify(sqsStmt.Resource)).toMatch(/JobFailures/);
  });

  it("has an errors alarm to the ops topic", () => {
    const alarms = Object.values(ops.findResources("AWS::CloudWatch::Alarm")) as Resource[];
    const watching = alarms.filter((a) => JSON.stringify(a.Properties.Dimensions ?? []).includes(`-Jobs:ExportsOutputRef${fnId}`));
    expect(watching).toHaveLength(1);
    expect(watching[0].Properties).toMatchObject({ Namespace: "AWS/Lambda", MetricName: "Errors", Threshold: 0, ComparisonOperator: "GreaterThanThreshold" });
    expect(JSON.stringify(watching[0].Properties.AlarmActions)).toMatch(/-Alerts:ExportsOutputRefOpsTopic/);
  });
});
