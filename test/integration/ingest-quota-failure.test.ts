import type { Context, SQSEvent } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, inject, it, vi } from "vitest";
import { freshUsageTable } from "../helpers/dynamo";
import { envelope, invocation } from "../helpers/events";
import { startFakeBus, type FakeBus } from "../helpers/fake-bus";

let handler: (e: SQSEvent, c: Context) => Promise<{ batchItemFailures: { itemIdentifier: string }[] }>;
let bus: FakeBus;

beforeAll(async () => {
  // A bus that refuses PutEvents until it is up, then accepts like EventBridge.
  bus = await startFakeBus({ up: false });
  vi.stubEnv("USAGE_TABLE_NAME", await freshUsageTable());
  vi.stubEnv("EVENT_BUS_NAME", "ingest-test-bus");
  vi.stubEnv("AWS_ENDPOINT_URL_DYNAMODB", inject("dynamoEndpoint"));
  vi.stubEnv("AWS_ENDPOINT_URL_EVENTBRIDGE", bus.url);
  vi.stubEnv("AWS_MAX_ATTEMPTS", "1");
  vi.stubEnv("POWERTOOLS_METRICS_DISABLED", "true");
  vi.stubEnv("POWERTOOLS_LOG_LEVEL", "CRITICAL");
  ({ handler } = (await import("../../functions/sqs/ingest")) as never);
});

afterAll(() => bus.close());

describe("ingest when publishing an enforcement event fails", () => {
  it("fails the tenant's records, counts nothing twice on redelivery, and publishes each event once", async () => {
    // basic tier default quota is 2,000,000 tokens: one event of 2.1M tokens crosses 80% and 100% at once
    const crossing = invocation({ tenantId: "qf-basic", inputTokens: 1_500_000, outputTokens: 600_000 });
    const other = invocation({ tenantId: "qf-other" });
    const event = { Records: [envelope(crossing), envelope(other)].map((body, i) => ({ messageId: `m${i}`, body })) } as unknown as SQSEvent;
    const ctx = { awsRequestId: "r" } as Context;

    const first = await handler(event, ctx);
    expect(first.batchItemFailures).toEqual([{ itemIdentifier: "m0" }]); // only the crossing tenant's record
    expect(bus.published).toEqual([]);

    bus.up = true;
    // SQS redelivers m0 (here: the whole batch again, which is also allowed)
    const second = await handler(event, ctx);
    expect(second.batchItemFailures).toEqual([]);
    const third = await handler(event, ctx);
    expect(third.batchItemFailures).toEqual([]);

    const kinds = bus.published.map((p) => `${p.DetailType}:${(JSON.parse(p.Detail) as { threshold: number }).threshold}`).sort();
    // the monthly quota (80% warning, 100% throttle) and, at 2.1M tokens in one minute, the tokens-per-minute limit
    // The minute-window events depend on where the minute boundary falls: the tpm throttle only if the event's minute
    // had not ended when it was evaluated, and its restore (threshold "rate") if a later delivery ran in the next minute.
    expect(kinds.filter((k) => !/:(tpm|rpm|rate)$/.test(k))).toEqual(["Tenant Quota Warning:0.8", "Tenant Throttled:1"]);
    expect(new Set(kinds).size).toBe(kinds.length);
    const ids = bus.published.map((p) => (JSON.parse(p.Detail) as { enforcementId: string }).enforcementId);
    expect(new Set(ids).size).toBe(ids.length);

    const today = new Date().toISOString().slice(0, 10);
    const { handler: usage } = (await import("../../functions/http/usage")) as unknown as {
      handler: (e: unknown, c: Context) => Promise<{ body: string }>;
    };
    const out = await usage({ version: "2.0", routeKey: "GET /usage/{tenantId}", pathParameters: { tenantId: "qf-basic" }, queryStringParameters: { from: today, to: today }, headers: {} }, ctx);
    expect(JSON.parse(out.body).totals).toMatchObject({ requests: 1, inputTokens: 1_500_000 });
  });
});
