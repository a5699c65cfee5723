import { UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { describe, expect, it } from "vitest";
import { DynamoQuotaStore } from "../../shared/quota/adapters/dynamodb";
import { documentClient } from "../../shared/storage/adapters/dynamodb";
import { keys } from "../../shared/storage/keys";
import { minuteAttributeNames } from "../../shared/usage/minute-window";
import { freshUsageTable, localDynamoClient } from "../helpers/dynamo";

describe("quota evaluation reads on DynamoDB Local", () => {
  it("reads 60 tenants' evaluation keys in shared BatchGetItems of at most 100 keys, each tenant's items where they belong, one hour item for minutes of one hour", async () => {
    const client = localDynamoClient();
    const requests: { command: string; keys: number }[] = [];
    client.middlewareStack.add(
      (next, context) => async (args) => {
        const input = args.input as { RequestItems?: Record<string, { Keys: unknown[] }> };
        requests.push({ command: String(context.commandName), keys: Object.values(input.RequestItems ?? {}).reduce((s, r) => s + (r.Keys?.length ?? 0), 0) });
        return next(args);
      },
      { step: "initialize", name: "countReads" },
    );
    const doc = documentClient(client);
    const table = await freshUsageTable(client);
    const tenants = Array.from({ length: 60 }, (_, i) => `qr-${i}`);
    const m36 = minuteAttributeNames("2026-11-25T20:36");
    for (const [i, t] of tenants.entries()) {
      const month = keys.aggregate(t, { kind: "tenant", granularity: "month", period: "2026-11" });
      await doc.send(new UpdateCommand({ TableName: table, Key: month, UpdateExpression: "ADD requests :r", ExpressionAttributeValues: { ":r": i + 1 } }));
      // the minute window on the tenant-hour item, as the ingest writes it (20:37: no usage)
      const hour = keys.aggregate(t, { kind: "tenant", granularity: "hour", period: "2026-11-25T20" });
      await doc.send(
        new UpdateCommand({
          TableName: table,
          Key: hour,
          UpdateExpression: "ADD requests :r, #mr :r, #mt :t",
          ExpressionAttributeNames: { "#mr": m36.requests, "#mt": m36.tokens },
          ExpressionAttributeValues: { ":r": i + 1, ":t": 100 * (i + 1) },
        }),
      );
    }
    requests.length = 0;

    const store = new DynamoQuotaStore(doc, table);
    // 4 keys per tenant (config, month, this and last month's state) + 1 tenant-hour item for both minutes: 300 keys
    const minutes = ["2026-11-25T20:36", "2026-11-25T20:37"];
    const snaps = await store.loadManyForEvaluation(tenants.map((tenantId) => ({ tenantId, month: "2026-11", prevMonth: "2026-10", minutes })));

    expect(requests.map((r) => r.command)).toEqual(["BatchGetItemCommand", "BatchGetItemCommand", "BatchGetItemCommand"]);
    expect(requests.every((r) => r.keys <= 100)).toBe(true);
    for (const [i, t] of tenants.entries()) {
      expect(snaps.get(t)?.monthTotals?.requests, t).toBe(i + 1);
      expect(snaps.get(t)?.minuteTotals, t).toEqual({ "2026-11-25T20:36": { requests: i + 1, tokens: 100 * (i + 1) } });
      expect(snaps.get(t)?.config).toBeUndefined();
    }
  });

  it("does not read again the month and tenant-hour items the ingest just wrote: it uses them as its write returned them", async () => {
    const client = localDynamoClient();
    const asked: number[] = [];
    client.middlewareStack.add(
      (next, context) => async (args) => {
        const input = args.input as { RequestItems?: Record<string, { Keys: unknown[] }> };
        if (context.commandName === "BatchGetItemCommand") asked.push(Object.values(input.RequestItems ?? {}).reduce((s, r) => s + (r.Keys?.length ?? 0), 0));
        return next(args);
      },
      { step: "initialize", name: "countKeys" },
    );
    const doc = documentClient(client);
    const table = await freshUsageTable(client);
    const m36 = minuteAttributeNames("2026-11-25T20:36");
    const store = new DynamoQuotaStore(doc, table);
    // the table holds nothing for this tenant: every figure below comes from `known`
    const snaps = await store.loadManyForEvaluation([
      {
        tenantId: "kn",
        month: "2026-11",
        prevMonth: "2026-10",
        minutes: ["2026-11-25T20:36"],
        known: { month: { requests: 7, inputTokens: 70 }, hours: { "2026-11-25T20": { [m36.requests]: 3, [m36.tokens]: 30 } } },
      },
    ]);
    // config and this and last month's state only
    expect(asked).toEqual([3]);
    expect(snaps.get("kn")?.monthTotals).toMatchObject({ requests: 7, inputTokens: 70 });
    expect(snaps.get("kn")?.minuteTotals).toEqual({ "2026-11-25T20:36": { requests: 3, tokens: 30 } });
  });
});
