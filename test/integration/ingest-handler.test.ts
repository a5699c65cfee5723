import type { Context, SQSEvent, SQSRecord } from "aws-lambda";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { inject } from "vitest";
import { freshUsageTable } from "../helpers/dynamo";
import { envelope, invocation } from "../helpers/events";

let handler: (e: SQSEvent, c: Context) => Promise<{ batchItemFailures: { itemIdentifier: string }[] }>;
let usage: (e: unknown, c: Context) => Promise<{ statusCode: number; body: string }>;
const ctx = { awsRequestId: "req-1", functionName: "ingest" } as Context;

function sqs(bodies: string[], ids?: string[]): SQSEvent {
  return {
    Records: bodies.map(
      (body, i) =>
        ({
          messageId: ids?.[i] ?? `m-${i}-${Math.random().toString(36).slice(2)}`,
          receiptHandle: "rh",
          body,
          attributes: { ApproximateReceiveCount: "1" },
          messageAttributes: {},
          md5OfBody: "",
          eventSource: "aws:sqs",
          eventSourceARN: "arn:aws:sqs:us-west-2:000000000000:ingest",
          awsRegion: "us-west-2",
        }) as unknown as SQSRecord,
    ),
  };
}

function get(routeKey: string, path: Record<string, string>, qs: Record<string, string>) {
  return usage({ version: "2.0", routeKey, pathParameters: path, queryStringParameters: qs, headers: {} }, ctx);
}

beforeAll(async () => {
  const table = await freshUsageTable();
  vi.stubEnv("USAGE_TABLE_NAME", table);
  vi.stubEnv("EVENT_BUS_NAME", "ingest-test-bus");
  vi.stubEnv("AWS_ENDPOINT_URL_DYNAMODB", inject("dynamoEndpoint"));
  vi.stubEnv("POWERTOOLS_METRICS_DISABLED", "true");
  vi.stubEnv("POWERTOOLS_LOG_LEVEL", "ERROR");
  ({ handler } = (await import("../../functions/sqs/ingest")) as never);
  ({ handler: usage } = (await import("../../functions/http/usage")) as never);
});

/** yyyy-mm-dd of `daysAgo` days before now: the handler runs on the real clock. */
const isoDaysAgo = (daysAgo: number, hour = 9) => {
  const d = new Date(Date.now() - daysAgo * 86_400_000);
  d.setUTCHours(hour, 0, 0, 0);
  return d.toISOString();
};

describe("ingest handler + usage API (same code as Lambda)", () => {
  it("reports no failures for valid, duplicate and invalid records, and the API shows exact totals", async () => {
    const a = invocation({ tenantId: "h-a", occurredAt: isoDaysAgo(3), modelId: "anthropic.claude-3-5-sonnet-20240620-v1:0" });
    const b = invocation({ tenantId: "h-a", occurredAt: isoDaysAgo(2) });
    const res = await handler(sqs([envelope(a), envelope(b), envelope(a), "garbage"]), ctx);
    const again = await handler(sqs([envelope(b)]), ctx);

    expect(res.batchItemFailures).toEqual([]);
    expect(again.batchItemFailures).toEqual([]);
    const out = await get("GET /usage/{tenantId}", { tenantId: "h-a" }, { from: a.occurredAt.slice(0, 10), to: b.occurredAt.slice(0, 10), granularity: "day" });
    expect(out.statusCode).toBe(200);
    const body = JSON.parse(out.body);
    expect(body.totals).toMatchObject({ requests: 2, inputTokens: 614, outputTokens: 1066 });
    // Sonnet 307/533 = $0.008916, Haiku = $0.000743 (seed prices)
    expect(body.totals.costUsd).toBeCloseTo(0.008916 + 0.000743, 9);
    expect(body.periods.map((p: { period: string }) => p.period)).toEqual([a.occurredAt.slice(0, 10), b.occurredAt.slice(0, 10)]);
    expect(body.models.map((m: { modelId: string }) => m.modelId).sort()).toEqual([a.modelId, b.modelId].sort());
  });

  it("answers hourly rows for a day range", async () => {
    const a = invocation({ tenantId: "h-hour", occurredAt: isoDaysAgo(1, 3) });
    const b = invocation({ tenantId: "h-hour", occurredAt: isoDaysAgo(1, 23) });
    expect((await handler(sqs([envelope(a), envelope(b)]), ctx)).batchItemFailures).toEqual([]);
    const day = a.occurredAt.slice(0, 10);
    const out = await get("GET /usage/{tenantId}", { tenantId: "h-hour" }, { from: day, to: day, granularity: "hour" });
    const body = JSON.parse(out.body);
    expect(body.periods.map((p: { period: string }) => p.period)).toEqual([`${day}T03`, `${day}T23`]);
    expect(body.totals.requests).toBe(2);
  });

  it("answers 400 with the reason for a bad query", async () => {
    const out = await get("GET /usage/{tenantId}", { tenantId: "x#y" }, { from: "2026-11-01", to: "2026-11-30" });
    expect(out.statusCode).toBe(400);
    expect(JSON.parse(out.body).message).toMatch(/tenantId/);
  });

  it("lists all tenants of a month for billing, page by page", async () => {
    const tenants = Array.from({ length: 7 }, (_, i) => `bill-${i}`);
    const at = isoDaysAgo(1);
    const month = at.slice(0, 7);
    const res = await handler(sqs(tenants.map((t) => envelope(invocation({ tenantId: t, occurredAt: at })))), ctx);
    expect(res.batchItemFailures).toEqual([]);
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const out = await get("GET /billing/{month}", { month }, { limit: "3", ...(cursor ? { cursor } : {}) });
      expect(out.statusCode).toBe(200);
      const body = JSON.parse(out.body);
      seen.push(...body.tenants.map((t: { tenantId: string }) => t.tenantId));
      cursor = body.cursor;
      pages++;
    } while (cursor && pages < 20);
    expect(seen.filter((t) => t.startsWith("bill-")).sort()).toEqual(tenants.sort());
  });
});
