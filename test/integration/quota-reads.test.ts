import { UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { describe, expect, it } from "vitest";
import { DynamoQuotaStore } from "../../shared/quota/adapters/dynamodb";
import { documentClient } from "../../shared/storage/adapters/dynamodb";
import { keys } from "../../shared/storage/keys";
import { freshUsageTable, localDynamoClient } from "../helpers/dynamo";

describe("quota evaluation reads on DynamoDB Local", () => {
  it("reads 60 tenants' evaluation keys in shared BatchGetItems of at most 100 keys, each tenant's items where they belong", async () => {
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
    for (const [i, t] of tenants.entries()) {
      for (const key of [keys.aggregate(t, { kind: "tenant", granularity: "month", period: "2026-11" }), keys.minute(t, "2026-11-25T20:36")]) {
        await doc.send(new UpdateCommand({ TableName: table, Key: key, UpdateExpression: "ADD requests :r", ExpressionAttributeValues: { ":r": i + 1 } }));
      }
    }
    requests.length = 0;

    const store = new DynamoQuotaStore(doc, table);
    // 4 keys per tenant (config, month, this and last month's state) + 1 minute window: 300 keys
    const snaps = await store.loadManyForEvaluation(tenants.map((tenantId) => ({ tenantId, month: "2026-11", prevMonth: "2026-10", minutes: ["2026-11-25T20:36"] })));

    expect(requests.map((r) => r.command)).toEqual(["BatchGetItemCommand", "BatchGetItemCommand", "BatchGetItemCommand"]);
    expect(requests.every((r) => r.keys <= 100)).toBe(true);
    for (const [i, t] of tenants.entries()) {
      expect(snaps.get(t)?.monthTotals?.requests, t).toBe(i + 1);
      expect(snaps.get(t)?.minuteTotals["2026-11-25T20:36"]?.requests, t).toBe(i + 1);
      expect(snaps.get(t)?.config).toBeUndefined();
    }
  });
});
