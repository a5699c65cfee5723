import type { Context, SQSEvent } from "aws-lambda";
import { beforeAll, describe, expect, inject, it, vi } from "vitest";
import { freshUsageTable } from "../helpers/dynamo";
import { envelope, invocation } from "../helpers/events";

let handler: (e: SQSEvent, c: Context) => Promise<{ batchItemFailures: unknown[] }>;

beforeAll(async () => {
  vi.stubEnv("USAGE_TABLE_NAME", await freshUsageTable());
  vi.stubEnv("EVENT_BUS_NAME", "ingest-test-bus");
  vi.stubEnv("AWS_ENDPOINT_URL_DYNAMODB", inject("dynamoEndpoint"));
  vi.stubEnv("AWS_ENDPOINT_URL_EVENTBRIDGE", "http://127.0.0.1:9"); // nothing crosses a quota here
  vi.stubEnv("POWERTOOLS_METRICS_DISABLED", "false");
  vi.stubEnv("POWERTOOLS_LOG_LEVEL", "ERROR");
  ({ handler } = (await import("../../functions/sqs/ingest")) as never);
});

type Emf = { _aws: { CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string }[] }[] } } & Record<string, unknown>;

describe("CloudWatch EMF from the ingest handler", () => {
  it("emits pipeline health and cost-allocation metrics per tenant, tier and model", async () => {
    const lines: string[] = [];
    const spy = vi.spyOn(process.stdout, "write").mockImplementation((c: string | Uint8Array) => (lines.push(String(c)), true));
    const logSpy = vi.spyOn(console, "log").mockImplementation((...a: unknown[]) => void lines.push(a.map(String).join(" ")));
    try {
      const e = invocation({ tenantId: "emf-a", modelId: "anthropic.claude-3-5-sonnet-20240620-v1:0" });
      const records = [envelope(e), envelope(e), "not json"].map((body, i) => ({ messageId: `m${i}`, body }));
      const res = await handler({ Records: records } as unknown as SQSEvent, { awsRequestId: "r" } as Context);
      expect(res.batchItemFailures).toEqual([]);
    } finally {
      spy.mockRestore();
      logSpy.mockRestore();
    }
    const emf: Emf[] = lines.flatMap((l) => l.split("\n")).filter((l) => l.includes('"_aws"')).map((l) => JSON.parse(l));
    const find = (name: string) => emf.find((m) => m._aws.CloudWatchMetrics[0].Metrics.some((x) => x.Name === name));

    expect(find("EventsIngested")?.EventsIngested).toBe(1);
    expect(find("DuplicateEvents")?.DuplicateEvents).toBe(1);
    expect(find("EventsQuarantined")?.EventsQuarantined).toBe(1);
    // zero counters are left out of the document (fewer bytes; a Sum is the same)
    expect(find("RecordsRetried")).toBeUndefined();
    expect(find("EstimatesCorrected")).toBeUndefined();
    const cost = find("CostUsd")!;
    expect(cost._aws.CloudWatchMetrics[0].Namespace).toBe("GenAIMetering");
    expect(cost._aws.CloudWatchMetrics[0].Dimensions[0]).toEqual(expect.arrayContaining(["tenantId", "tier", "modelId"]));
    expect(cost).toMatchObject({ tenantId: "emf-a", tier: "basic", modelId: "anthropic.claude-3-5-sonnet-20240620-v1:0" });
    expect(cost.CostUsd).toBeCloseTo(0.008916, 9);
    // every cost metric carries the same dimensions, not only the first of its group
    for (const name of ["InputTokens", "OutputTokens", "Requests"]) {
      expect(find(name), name).toMatchObject({ tenantId: "emf-a", tier: "basic", modelId: "anthropic.claude-3-5-sonnet-20240620-v1:0" });
    }
    expect(find("Requests")?.Requests).toBe(1);
    const quota = find("QuotaUsedPercent")!;
    expect(quota).toMatchObject({ tenantId: "emf-a", tier: "basic" });
    expect(quota.QuotaUsedPercent).toBeCloseTo((840 / 2_000_000) * 100, 2);
  });

  it("counts an estimate replaced by exact counts in EstimatesCorrected", async () => {
    const estimate = invocation({ tenantId: "emf-b", outputTokens: 10, estimated: true });
    const exact = { ...estimate, outputTokens: 533, estimated: undefined };
    const lines: string[] = [];
    const spy = vi.spyOn(process.stdout, "write").mockImplementation((c: string | Uint8Array) => (lines.push(String(c)), true));
    const logSpy = vi.spyOn(console, "log").mockImplementation((...a: unknown[]) => void lines.push(a.map(String).join(" ")));
    try {
      for (const [i, e] of [estimate, exact].entries()) {
        const res = await handler({ Records: [{ messageId: `c${i}`, body: envelope(e) }] } as unknown as SQSEvent, { awsRequestId: `r${i}` } as Context);
        expect(res.batchItemFailures).toEqual([]);
      }
    } finally {
      spy.mockRestore();
      logSpy.mockRestore();
    }
    const emf: Emf[] = lines.flatMap((l) => l.split("\n")).filter((l) => l.includes('"_aws"')).map((l) => JSON.parse(l));
    const corrected = emf.filter((m) => m._aws.CloudWatchMetrics[0].Metrics.some((x) => x.Name === "EstimatesCorrected")).map((m) => m.EstimatesCorrected);
    expect(corrected).toEqual([1]);
    // the cost metrics of the correcting call are the difference: Haiku 307 in, 533 - 10 out = $0.00065375, 0 requests
    const of = (name: string) => emf.filter((m) => m.tenantId === "emf-b" && m._aws.CloudWatchMetrics[0].Metrics.some((x) => x.Name === name)).map((m) => m[name]);
    expect(of("CostUsd")).toHaveLength(2);
    expect(of("CostUsd")[0]).toBeCloseTo(0.00008925, 9);
    expect(of("CostUsd")[1]).toBeCloseTo(0.00065375, 9);
    expect(of("OutputTokens")).toEqual([10, 523]);
    expect(of("Requests")).toEqual([1, 0]);
  });
});
