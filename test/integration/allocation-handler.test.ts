import { GetCommand, PutCommand, UpdateCommand } from "@aws-sdk/lib-dynamodb";
import type { Context, ScheduledEvent } from "aws-lambda";
import { describe, expect, it } from "vitest";
import { inject } from "vitest";
import { hourCostNanoUsd, DEFAULT_ENDPOINTS } from "../../shared/allocation/endpoints";
import { resetConfig } from "../../shared/runtime/config";
import { documentClient } from "../../shared/storage/adapters/dynamodb";
import { endpointKeys, keys } from "../../shared/storage/keys";
import { freshUsageTable, localDynamoClient } from "../helpers/dynamo";

const scheduled = (time: string) => ({ time, "detail-type": "Scheduled Event", source: "aws.events", detail: {} }) as unknown as ScheduledEvent;

describe("scheduled allocate handler (DynamoDB Local)", () => {
  it("allocates the previous hour of every catalogued endpoint, a retry changes nothing, and a late event is re-split by the next run", async () => {
    const table = await freshUsageTable();
    const doc = documentClient(localDynamoClient());
    await doc.send(new PutCommand({ TableName: table, Item: { ...endpointKeys.usage("llama31-70b-int4", "2026-11-25T20", "acme"), tenantId: "acme", inferenceMs: 1000, requests: 1 } }));
    process.env.USAGE_TABLE_NAME = table;
    process.env.AWS_ENDPOINT_URL_DYNAMODB = inject("dynamoEndpoint");
    resetConfig();
    const { handler } = await import("../../functions/scheduled/allocate");

    const out = await handler(scheduled("2026-11-25T21:10:00Z"), {} as Context);
    expect(out).toMatchObject({ hour: "2026-11-25T20" });
    expect(out.outcomes.map((o: { status: string }) => o.status)).toEqual(["allocated", "allocated"]);
    const retry = await handler(scheduled("2026-11-25T21:10:00Z"), {} as Context);
    expect(retry.outcomes.map((o: { status: string }) => o.status)).toEqual(["already-allocated", "already-allocated"]);

    const month = await doc.send(new GetCommand({ TableName: table, Key: keys.aggregate("acme", { kind: "tenant", granularity: "month", period: "2026-11" }) }));
    const int4 = DEFAULT_ENDPOINTS.find((e) => e.endpointName === "llama31-70b-int4")!;
    expect(month.Item?.allocatedCostNanoUsd).toBe(hourCostNanoUsd(int4));
    // the other endpoint had no usage: its marker carries the whole hour as idle
    const idle = await doc.send(new GetCommand({ TableName: table, Key: endpointKeys.allocation("llama31-70b-lora", "2026-11-25T20") }));
    expect(idle.Item).toMatchObject({ status: "complete", basis: "none", shares: [] });
    expect(idle.Item?.idleCostNanoUsd).toBe(idle.Item?.hourCostNanoUsd);

    // a late event of hour 20 (ADDed as the ingest does) shows up in the next hourly run's window
    await doc.send(
      new UpdateCommand({
        TableName: table,
        Key: endpointKeys.usage("llama31-70b-int4", "2026-11-25T20", "globex"),
        UpdateExpression: "ADD inferenceMs :ms, requests :one SET updatedAt = :at",
        ExpressionAttributeValues: { ":ms": 3000, ":one": 1, ":at": "2026-11-25T21:30:00.000Z" },
      }),
    );
    const next = await handler(scheduled("2026-11-25T22:10:00Z"), {} as Context);
    expect(next.hour).toBe("2026-11-25T21");
    expect(next.revisited).toEqual([{ hour: "2026-11-25T20", endpointName: "llama31-70b-int4", status: "reallocated", version: 2, tenants: 2 }]);
    const monthOf = async (t: string) =>
      (await doc.send(new GetCommand({ TableName: table, Key: keys.aggregate(t, { kind: "tenant", granularity: "month", period: "2026-11" }), ConsistentRead: true }))).Item
        ?.allocatedCostNanoUsd;
    // 1,000 ms vs 3,000 ms: acme keeps a quarter, globex takes three quarters, nothing else moves
    expect(await monthOf("acme")).toBe(hourCostNanoUsd(int4) / 4);
    expect(await monthOf("globex")).toBe((hourCostNanoUsd(int4) * 3) / 4);
    const settled = await handler(scheduled("2026-11-25T22:10:00Z"), {} as Context);
    expect(settled.revisited).toEqual([]);
  });
});
