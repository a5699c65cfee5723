import { UpdateCommand } from "@aws-sdk/lib-dynamodb";
import type { Context, ScheduledEvent } from "aws-lambda";
import { createServer, type Server } from "node:http";
import { afterAll, beforeAll, describe, expect, inject, it, vi } from "vitest";
import { createQuotaEvaluator } from "../../shared/quota/adapters/wiring";
import { QuotaPublishError } from "../../shared/quota/errors";
import { documentClient } from "../../shared/storage/adapters/dynamodb";
import { keys } from "../../shared/storage/keys";
import { freshUsageTable, localDynamoClient } from "../helpers/dynamo";
import { RecordingPublisher } from "../unit/quota/fakes";

type Summary = { states: number; published: number; failed: number; complete: boolean };
let handler: (e: ScheduledEvent, c: Context) => Promise<Summary>;
let table: string;
let bus: Server;
let busUp = false;
const published: { EventBusName: string; Source: string; DetailType: string; Detail: string }[] = [];
const NOW = new Date("2026-11-25T20:36:30.000Z");
const context = { awsRequestId: "r", getRemainingTimeInMillis: () => 120_000 } as unknown as Context;
const scheduled = { time: NOW.toISOString() } as ScheduledEvent;

beforeAll(async () => {
  // A bus that refuses PutEvents until `busUp`, then accepts like EventBridge.
  bus = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      if (!busUp) {
        res.writeHead(500, { "content-type": "application/x-amz-json-1.1" });
        return res.end(JSON.stringify({ __type: "InternalException", message: "bus down" }));
      }
      const entries = (JSON.parse(body) as { Entries: typeof published }).Entries;
      published.push(...entries);
      res.writeHead(200, { "content-type": "application/x-amz-json-1.1" });
      res.end(JSON.stringify({ FailedEntryCount: 0, Entries: entries.map((_, i) => ({ EventId: `e-${published.length}-${i}` })) }));
    });
  });
  await new Promise<void>((r) => bus.listen(0, "127.0.0.1", r));
  table = await freshUsageTable();
  vi.stubEnv("USAGE_TABLE_NAME", table);
  vi.stubEnv("EVENT_BUS_NAME", "sweep-bus");
  vi.stubEnv("AWS_ENDPOINT_URL_DYNAMODB", inject("dynamoEndpoint"));
  vi.stubEnv("AWS_ENDPOINT_URL_EVENTBRIDGE", `http://127.0.0.1:${(bus.address() as { port: number }).port}`);
  vi.stubEnv("AWS_MAX_ATTEMPTS", "1");
  vi.stubEnv("POWERTOOLS_METRICS_DISABLED", "true");
  vi.stubEnv("POWERTOOLS_LOG_LEVEL", "CRITICAL");
  ({ handler } = (await import("../../functions/scheduled/outbox-sweep")) as never);
});

afterAll(() => new Promise<void>((r) => bus.close(() => r())));

describe("scheduled outbox sweep handler", () => {
  it("fails the run while the bus is down (entries stay pending), then publishes each pending event once", async () => {
    // Given a throttle whose publish failed; the tenant is not evaluated again
    const doc = documentClient(localDynamoClient());
    const evaluator = (publisher: RecordingPublisher) => createQuotaEvaluator({ dynamo: doc, tableName: table, publisher, clock: () => NOW });
    await evaluator(new RecordingPublisher()).putConfig("sleeper", { tier: "basic", monthlyTokens: 1000, warningThresholds: [] });
    await doc.send(
      new UpdateCommand({
        TableName: table,
        Key: keys.aggregate("sleeper", { kind: "tenant", granularity: "month", period: "2026-11" }),
        UpdateExpression: "ADD requests :r, inputTokens :i",
        ExpressionAttributeValues: { ":r": 1, ":i": 1000 },
      }),
    );
    const down = new RecordingPublisher();
    down.failNext = 1;
    await expect(evaluator(down).evaluate({ tenantId: "sleeper", month: "2026-11", minutes: [], now: NOW })).rejects.toBeInstanceOf(QuotaPublishError);

    // When the job runs with the bus still down, it fails (job alarm, async retry)
    await expect(handler(scheduled, context)).rejects.toBeInstanceOf(QuotaPublishError);
    expect(published).toEqual([]);

    // Then, with the bus back, the next run publishes it, and the one after publishes nothing
    busUp = true;
    expect(await handler(scheduled, context)).toMatchObject({ states: 1, published: 1, failed: 0, complete: true });
    expect(await handler(scheduled, context)).toMatchObject({ states: 0, published: 0, failed: 0 });
    expect(published.map((e) => [e.EventBusName, e.Source, e.DetailType, JSON.parse(e.Detail).enforcementId])).toEqual([
      ["sweep-bus", "genai.metering.quota", "Tenant Throttled", "sleeper#2026-11#1:basic:t1000:u-#throttle"],
    ]);
  });
});
