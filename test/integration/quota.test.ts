import { GetCommand, QueryCommand, UpdateCommand, type DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { beforeAll, describe, expect, it } from "vitest";
import { createQuotaEvaluator } from "../../shared/quota/adapters/wiring";
import { QuotaPublishError } from "../../shared/quota/errors";
import { documentClient } from "../../shared/storage/adapters/dynamodb";
import { keys } from "../../shared/storage/keys";
import { minuteAttributeNames } from "../../shared/usage/minute-window";
import { RecordingPublisher } from "../unit/quota/fakes";
import { freshUsageTable, localDynamoClient, localIngest } from "../helpers/dynamo";
import { invocation, recordOf } from "../helpers/events";

const NOW = new Date("2026-11-25T20:36:30.000Z");
let doc: DynamoDBDocumentClient;

beforeAll(() => {
  doc = documentClient(localDynamoClient());
});

/** Month usage for the monthly-quota tests: an ADD into the tenant's month aggregate (as the ingest does). */
async function addUsage(table: string, tenantId: string, at: string, c: { requests?: number; inputTokens?: number; outputTokens?: number }) {
  await doc.send(
    new UpdateCommand({
      TableName: table,
      Key: keys.aggregate(tenantId, { kind: "tenant", granularity: "month", period: at.slice(0, 7) }),
      UpdateExpression: "ADD requests :r, inputTokens :i, outputTokens :o",
      ExpressionAttributeValues: { ":r": c.requests ?? 0, ":i": c.inputTokens ?? 0, ":o": c.outputTokens ?? 0 },
    }),
  );
}

/** The real write path: the ingest counts `events` (month, day, hour aggregates and the minute windows) at `now`. */
async function ingest(table: string, now: Date, events: ReturnType<typeof invocation>[]) {
  const { service } = localIngest(doc, table, { clock: () => now });
  const r = await service.ingest(events.map(recordOf));
  expect(r.stats).toMatchObject({ counted: events.length, failed: 0 });
}

async function tenantHour(table: string, tenantId: string, hour: string) {
  const key = keys.aggregate(tenantId, { kind: "tenant", granularity: "hour", period: hour });
  return (await doc.send(new GetCommand({ TableName: table, Key: key, ConsistentRead: true }))).Item ?? {};
}

async function setTier(table: string, tenantId: string, tier: string, extra: Record<string, unknown> = {}) {
  const e = createQuotaEvaluator({ dynamo: doc, tableName: table, publisher: new RecordingPublisher(), clock: () => NOW });
  await e.putConfig(tenantId, { tier, ...extra });
}

async function logOf(table: string, day: string) {
  const res = await doc.send(
    new QueryCommand({ TableName: table, KeyConditionExpression: "pk = :pk", ExpressionAttributeValues: { ":pk": keys.enforcementLog(day, "", "", "").pk } }),
  );
  return res.Items ?? [];
}

async function outboxOf(table: string, tenantId: string, period: string) {
  const res = await doc.send(new GetCommand({ TableName: table, Key: keys.enforcement(tenantId, period), ConsistentRead: true }));
  return Object.keys((res.Item?.outbox as object | undefined) ?? {});
}

describe("quota enforcement on DynamoDB Local", () => {
  it("10 concurrent evaluations of the same crossing publish each event exactly once", async () => {
    const table = await freshUsageTable();
    await setTier(table, "acme", "basic");
    await addUsage(table, "acme", "2026-11-03T10:00:00Z", { requests: 2400, inputTokens: 800_000, outputTokens: 1_300_000 });
    const publisher = new RecordingPublisher();
    const evaluator = createQuotaEvaluator({ dynamo: doc, tableName: table, publisher, clock: () => NOW });

    const results = await Promise.all(
      Array.from({ length: 10 }, () => evaluator.evaluate({ tenantId: "acme", month: "2026-11", minutes: ["2026-11-25T20:36"], now: NOW })),
    );

    // each once; which of the racing evaluations publishes first is not fixed
    expect(publisher.actions().sort()).toEqual(["throttle@1", "warning@0.8"]);
    expect(results.flat().filter((o) => o.status === "published")).toHaveLength(2);
    expect(await logOf(table, "2026-11-25")).toHaveLength(2);
    expect(await outboxOf(table, "acme", "2026-11")).toEqual([]);
    const decision = await evaluator.decision("acme", NOW);
    expect(decision).toMatchObject({ decision: "throttle", tier: "basic" });
  });

  it("a failed publish is retried by the next evaluation with the same enforcementId, and published once", async () => {
    const table = await freshUsageTable();
    await setTier(table, "beta", "advanced");
    await addUsage(table, "beta", "2026-11-03T10:00:00Z", { requests: 100, inputTokens: 4_000_000, outputTokens: 6_000_000 });
    const publisher = new RecordingPublisher();
    publisher.failNext = 1;
    const evaluator = createQuotaEvaluator({ dynamo: doc, tableName: table, publisher, clock: () => NOW });
    const input = { tenantId: "beta", month: "2026-11", minutes: [], now: NOW };

    await expect(evaluator.evaluate(input)).rejects.toBeInstanceOf(QuotaPublishError);
    expect(publisher.published).toEqual([]);
    expect((await outboxOf(table, "beta", "2026-11")).sort()).toEqual([
      "beta#2026-11#0.8:advanced:t10000000:u-#warning",
      "beta#2026-11#1:advanced:t10000000:u-#downgrade",
    ]);

    const retried = await evaluator.evaluate(input);
    expect(retried.map((o) => o.status)).toEqual(["republished", "republished"]);
    await evaluator.evaluate(input);
    expect(publisher.published.map((d) => d.enforcementId).sort()).toEqual([
      "beta#2026-11#0.8:advanced:t10000000:u-#warning",
      "beta#2026-11#1:advanced:t10000000:u-#downgrade",
    ]);
    expect(publisher.published.find((d) => d.action === "downgrade")?.targetModelId).toBe("anthropic.claude-3-haiku-20240307-v1:0");
    expect(await outboxOf(table, "beta", "2026-11")).toEqual([]);
    expect(await logOf(table, "2026-11-25")).toHaveLength(2);
  });

  it("a pending entry whose publisher crashed (lease not given back) is retried after the lease runs out", async () => {
    const table = await freshUsageTable();
    await setTier(table, "gamma", "basic", { monthlyTokens: 1000, warningThresholds: [] });
    await addUsage(table, "gamma", "2026-11-03T10:00:00Z", { requests: 1, inputTokens: 1000 });
    const publisher = new RecordingPublisher();
    const crashing = { publish: () => new Promise<never>(() => undefined) }; // never settles: a Lambda timeout
    const first = createQuotaEvaluator({ dynamo: doc, tableName: table, publisher: crashing, clock: () => NOW });
    void first.evaluate({ tenantId: "gamma", month: "2026-11", minutes: [], now: NOW });
    // Wait (bounded) until the transition is recorded, i.e. the crashed publisher holds the lease.
    for (let i = 0; i < 100 && (await outboxOf(table, "gamma", "2026-11")).length === 0; i++) await new Promise((r) => setTimeout(r, 20));

    const second = createQuotaEvaluator({ dynamo: doc, tableName: table, publisher, clock: () => NOW });
    expect(await second.evaluate({ tenantId: "gamma", month: "2026-11", minutes: [], now: NOW })).toEqual([]);
    const afterLease = new Date(NOW.getTime() + 31_000);
    const out = await second.evaluate({ tenantId: "gamma", month: "2026-11", minutes: [], now: afterLease });
    expect(out.map((o) => [o.action, o.status])).toEqual([["throttle", "republished"]]);
    expect(publisher.published[0].enforcementId).toBe("gamma#2026-11#1:basic:t1000:u-#throttle");
  });

  it("per-minute limits: RPM then TPM in one minute, restore in the next minute, through the ingest's writes and the real conditions", async () => {
    const table = await freshUsageTable();
    await setTier(table, "delta", "basic");
    const publisher = new RecordingPublisher();
    const evaluator = createQuotaEvaluator({ dynamo: doc, tableName: table, publisher, clock: () => NOW });
    const event = (at: string, inputTokens: number, outputTokens: number) => invocation({ tenantId: "delta", occurredAt: at, inputTokens, outputTokens });
    // 59 requests: one under basic's 60 a minute
    await ingest(table, NOW, Array.from({ length: 59 }, (_, i) => event(`2026-11-25T20:36:${String(i % 30).padStart(2, "0")}Z`, 1, 1)));
    await evaluator.evaluate({ tenantId: "delta", month: "2026-11", minutes: ["2026-11-25T20:36"], now: NOW });
    expect(publisher.actions()).toEqual([]);
    // the 60th request of the minute
    await ingest(table, NOW, [event("2026-11-25T20:36:20Z", 1, 1)]);
    await evaluator.evaluate({ tenantId: "delta", month: "2026-11", minutes: ["2026-11-25T20:36"], now: NOW });
    // 40,000 tokens (basic's TPM) in the same minute: 120 so far + 39,880
    await ingest(table, NOW, [event("2026-11-25T20:36:25Z", 19_880, 20_000)]);
    const names = minuteAttributeNames("2026-11-25T20:36");
    expect(await tenantHour(table, "delta", "2026-11-25T20")).toMatchObject({ requests: 61, [names.requests]: 61, [names.tokens]: 40_000 });
    await Promise.all([1, 2, 3].map(() => evaluator.evaluate({ tenantId: "delta", month: "2026-11", minutes: ["2026-11-25T20:36"], now: NOW })));
    const next = new Date("2026-11-25T20:37:05Z");
    await ingest(table, next, [event("2026-11-25T20:37:01Z", 10, 0)]);
    await Promise.all([1, 2, 3].map(() => evaluator.evaluate({ tenantId: "delta", month: "2026-11", minutes: ["2026-11-25T20:37"], now: next })));
    expect(publisher.actions()).toEqual(["throttle@rpm", "throttle@tpm", "restore@rate"]);
    expect(publisher.published[0].retryAfterSeconds).toBe(30);
    expect(publisher.published[1].usage).toMatchObject({ tokens: 40_000, requests: 61 });
    expect((await evaluator.decision("delta", next)).decision).toBe("allow");
  });

  it("period rollover: the first decision of the new month restores once", async () => {
    const table = await freshUsageTable();
    await setTier(table, "eps", "basic", { monthlyTokens: 500 });
    await addUsage(table, "eps", "2026-11-20T10:00:00Z", { requests: 1, inputTokens: 600 });
    const publisher = new RecordingPublisher();
    const evaluator = createQuotaEvaluator({ dynamo: doc, tableName: table, publisher, clock: () => NOW });
    await evaluator.evaluate({ tenantId: "eps", month: "2026-11", minutes: [], now: NOW });
    const december = new Date("2026-12-01T00:00:30Z");
    const decisions = await Promise.all([1, 2, 3, 4].map(() => evaluator.decision("eps", december)));
    expect(decisions.map((d) => d.decision)).toEqual(["allow", "allow", "allow", "allow"]);
    expect(publisher.actions()).toEqual(["warning@0.8", "throttle@1", "restore@1"]);
    expect(publisher.published[2].period).toBe("2026-11");
  });
});
