import type { Context, ScheduledEvent } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, inject, it, vi } from "vitest";
import { QuotaPublishError } from "../../shared/quota/errors";
import { documentClient } from "../../shared/storage/adapters/dynamodb";
import { freshUsageTable, localDynamoClient } from "../helpers/dynamo";
import { startFakeBus, type FakeBus } from "../helpers/fake-bus";
import { leavePendingEnforcement } from "../helpers/quota";

type Summary = { states: number; published: number; failed: number; complete: boolean };
let handler: (e: ScheduledEvent, c: Context) => Promise<Summary>;
let table: string;
let bus: FakeBus;
const NOW = new Date("2026-11-25T20:36:30.000Z");
const context = { awsRequestId: "r", getRemainingTimeInMillis: () => 120_000 } as unknown as Context;
const scheduled = { time: NOW.toISOString() } as ScheduledEvent;

beforeAll(async () => {
  // A bus that refuses PutEvents until it is up, then accepts like EventBridge.
  bus = await startFakeBus({ up: false });
  table = await freshUsageTable();
  vi.stubEnv("USAGE_TABLE_NAME", table);
  vi.stubEnv("EVENT_BUS_NAME", "sweep-bus");
  vi.stubEnv("AWS_ENDPOINT_URL_DYNAMODB", inject("dynamoEndpoint"));
  vi.stubEnv("AWS_ENDPOINT_URL_EVENTBRIDGE", bus.url);
  vi.stubEnv("AWS_MAX_ATTEMPTS", "1");
  vi.stubEnv("POWERTOOLS_METRICS_DISABLED", "true");
  vi.stubEnv("POWERTOOLS_LOG_LEVEL", "CRITICAL");
  ({ handler } = (await import("../../functions/scheduled/outbox-sweep")) as never);
});

afterAll(() => bus.close());

describe("scheduled outbox sweep handler", () => {
  it("fails the run while the bus is down (entries stay pending), then publishes each pending event once", async () => {
    // Given a throttle whose publish failed; the tenant is not evaluated again
    const doc = documentClient(localDynamoClient());
    await leavePendingEnforcement(doc, table, { tenantId: "sleeper", tier: "basic", usage: { requests: 1, inputTokens: 1000 }, now: NOW });

    // When the job runs with the bus still down, it fails (job alarm, async retry)
    await expect(handler(scheduled, context)).rejects.toBeInstanceOf(QuotaPublishError);
    expect(bus.published).toEqual([]);

    // Then, with the bus back, the next run publishes it, and the one after publishes nothing
    bus.up = true;
    expect(await handler(scheduled, context)).toMatchObject({ states: 1, published: 1, failed: 0, complete: true });
    expect(await handler(scheduled, context)).toMatchObject({ states: 0, published: 0, failed: 0 });
    expect(bus.published.map((e) => [e.EventBusName, e.Source, e.DetailType, JSON.parse(e.Detail).enforcementId])).toEqual([
      ["sweep-bus", "genai.metering.quota", "Tenant Throttled", "sleeper#2026-11#1:basic:t1000:u-#throttle"],
    ]);
  });
});
