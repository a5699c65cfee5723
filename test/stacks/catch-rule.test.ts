import { beforeAll, describe, expect, it } from "vitest";
import type { Template } from "aws-cdk-lib/assertions";
import { INGEST_RULE, METERING_CONSUMERS, UNCONSUMED_METERING_RULE, matchesPattern } from "../../shared/events/rules";
import { INVOCATION_DETAIL_TYPE, INVOCATION_SOURCES } from "../../shared/events/invocation";
import { ENFORCEMENT_DETAIL_TYPES as QUOTA_DETAIL_TYPES, ENFORCEMENT_SOURCE as QUOTA_SOURCE } from "../../shared/quota/events";
import { ENFORCEMENT_DETAIL_TYPES, ENFORCEMENT_SOURCE } from "../../stacks/Enforcement";
import { Ingest } from "../../stacks/Ingest";
import { synth } from "./synth";

type Resource = { Type: string; Properties: Record<string, any> };

let ingest: Template;

beforeAll(async () => {
  const s = await synth({ stage: "test", env: { DATA_PLANE_BUS_ARN: undefined, OPS_ALERT_EMAIL: undefined } });
  ingest = s.template(Ingest as never);
});

describe("catch rule for genai.metering.* entries no consumer takes", () => {
  it("is one EventBridge rule per shared pattern, with prefix / anything-but matchers, targeting the ingest queue and its DLQ", () => {
    const rules = Object.values(ingest.findResources("AWS::Events::Rule")) as Resource[];
    const queues = ingest.findResources("AWS::SQS::Queue");
    const idOf = (name: string) => Object.entries(queues).find(([, q]) => q.Properties.QueueName === name)![0];
    const queueId = idOf(`test-genai-metering-${INGEST_RULE.name}`);
    const dlqId = idOf(`test-genai-metering-${INGEST_RULE.name}-dlq`);

    const caught = rules.filter((r) => UNCONSUMED_METERING_RULE.patterns.some((p) => JSON.stringify(r.Properties.EventPattern) === JSON.stringify(p)));
    expect(caught).toHaveLength(UNCONSUMED_METERING_RULE.patterns.length);
    expect(caught.map((r) => r.Properties.EventPattern)).toContainEqual({
      source: [{ prefix: "genai.metering." }],
      "detail-type": [{ "anything-but": expect.arrayContaining([INVOCATION_DETAIL_TYPE, "Tenant Throttled"]) }],
    });
    for (const r of caught) {
      expect(r.Properties.Targets).toHaveLength(1);
      expect(r.Properties.Targets[0].Arn).toEqual({ "Fn::GetAtt": [queueId, "Arn"] });
      expect(r.Properties.Targets[0].DeadLetterConfig.Arn).toEqual({ "Fn::GetAtt": [dlqId, "Arn"] });
    }
    // EventBridge may send to the queue for each catch rule (the queue policy names every rule)
    const policies = Object.values(ingest.findResources("AWS::SQS::QueuePolicy")) as Resource[];
    const sourceArns = policies
      .flatMap((p) => p.Properties.PolicyDocument.Statement as any[])
      .filter((st) => st.Principal?.Service === "events.amazonaws.com")
      .map((st) => JSON.stringify(st.Condition?.ArnEquals?.["aws:SourceArn"]));
    expect(sourceArns.length).toBeGreaterThanOrEqual(1 + UNCONSUMED_METERING_RULE.patterns.length);
  });

  it("the stack's enforcement consumer is the one the catch rule leaves alone", () => {
    expect(ENFORCEMENT_SOURCE).toBe(QUOTA_SOURCE);
    expect([...ENFORCEMENT_DETAIL_TYPES].sort()).toEqual(Object.values(QUOTA_DETAIL_TYPES).sort());
    expect(METERING_CONSUMERS).toContainEqual({ source: [ENFORCEMENT_SOURCE], "detail-type": Object.values(QUOTA_DETAIL_TYPES) });
  });

  const cases: [string, string, "caught" | "consumed" | "ignored"][] = [
    [INVOCATION_SOURCES.bedrock, INVOCATION_DETAIL_TYPE, "consumed"],
    [INVOCATION_SOURCES.invocationLog, INVOCATION_DETAIL_TYPE, "consumed"],
    [QUOTA_SOURCE, "Tenant Throttled", "consumed"],
    [INVOCATION_SOURCES.bedrock, "Model Invocations", "caught"],
    ["genai.metering.openai", INVOCATION_DETAIL_TYPE, "caught"],
    ["genai.metering.openai", "Something Else", "caught"],
    [INVOCATION_SOURCES.sagemaker, "Tenant Throttled", "caught"],
    [QUOTA_SOURCE, INVOCATION_DETAIL_TYPE, "caught"],
    [QUOTA_SOURCE, "Tenant Exploded", "caught"],
    ["my.app", INVOCATION_DETAIL_TYPE, "caught"],
    ["my.app", "Order Placed", "ignored"],
  ];
  for (const [source, detailType, expected] of cases) {
    it(`${source} / ${detailType}: ${expected}`, () => {
      const e = { source, "detail-type": detailType };
      const consumed = METERING_CONSUMERS.filter((c) => matchesPattern(c, e)).length;
      const caught = UNCONSUMED_METERING_RULE.patterns.filter((p) => matchesPattern(p, e)).length;
      // exactly one of: a consumer takes it, one catch pattern takes it, or it is outside the namespace
      expect({ consumed, caught }).toEqual(
        expected === "consumed" ? { consumed: 1, caught: 0 } : expected === "caught" ? { consumed: 0, caught: 1 } : { consumed: 0, caught: 0 },
      );
    });
  }
});
