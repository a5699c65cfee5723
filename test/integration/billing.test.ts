import { PutCommand, UpdateCommand, type DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { DynamoAllocationStore } from "../../shared/allocation/adapters/dynamodb";
import { EndpointCatalog, hourCostNanoUsd } from "../../shared/allocation/endpoints";
import { AllocationService } from "../../shared/allocation/service";
import { DynamoBillingSource } from "../../shared/billing/adapters/dynamodb";
import { LocalDirectorySink } from "../../shared/billing/adapters/local-dir";
import { INVOICE_COLUMNS, parseCsv } from "../../shared/billing/invoice";
import { BillingExportService, exportPaths } from "../../shared/billing/service";
import { TIER_PRICES_USD } from "../../shared/billing/tiers";
import { documentClient } from "../../shared/storage/adapters/dynamodb";
import { endpointKeys, keys } from "../../shared/storage/keys";
import { freshUsageTable, localDynamoClient } from "../helpers/dynamo";

let doc: DynamoDBDocumentClient;
beforeAll(() => {
  doc = documentClient(localDynamoClient());
});

/** A tenant month aggregate as the ingest writes it: ADD counters, SET descriptors + GSI1 keys. */
async function addMonthUsage(table: string, tenantId: string, month: string, c: { requests: number; inputTokens: number; outputTokens: number; costNanoUsd: number; unpricedRequests?: number }) {
  await doc.send(
    new UpdateCommand({
      TableName: table,
      Key: keys.aggregate(tenantId, { kind: "tenant", granularity: "month", period: month }),
      UpdateExpression:
        "ADD requests :r, inputTokens :i, outputTokens :o, costNanoUsd :c, unpricedRequests :u SET tenantId = :t, #p = :m, granularity = :g, gsi1pk = :gp, gsi1sk = :gs",
      ExpressionAttributeNames: { "#p": "period" },
      ExpressionAttributeValues: {
        ":r": c.requests,
        ":i": c.inputTokens,
        ":o": c.outputTokens,
        ":c": c.costNanoUsd,
        ":u": c.unpricedRequests ?? 0,
        ":t": tenantId,
        ":m": month,
        ":g": "month",
        ":gp": keys.billing(tenantId, month).gsi1pk,
        ":gs": keys.billing(tenantId, month).gsi1sk,
      },
    }),
  );
}

async function setTier(table: string, tenantId: string, tier: string) {
  await doc.send(new PutCommand({ TableName: table, Item: { ...keys.config(tenantId), tenantId, tier } }));
}

describe("billing export on DynamoDB Local", () => {
  it("exports every tenant's month across all GSI1 shards and pages, with tiers, as JSONL and CSV", async () => {
    const table = await freshUsageTable();
    const N = 23; // spread over the 4 shards; page size 2 forces many pages per shard
    for (let i = 0; i < N; i++) {
      await addMonthUsage(table, `t${i}`, "2026-11", { requests: 100 + i, inputTokens: 30_700, outputTokens: 53_300, costNanoUsd: 891_600_000 + i });
    }
    await addMonthUsage(table, "t0", "2026-10", { requests: 1, inputTokens: 1, outputTokens: 1, costNanoUsd: 1 }); // other month: not exported
    await addMonthUsage(table, "t1", "2026-11", { requests: 0, inputTokens: 0, outputTokens: 0, costNanoUsd: 0, unpricedRequests: 4 });
    await setTier(table, "t0", "Basic");
    await setTier(table, "t1", "advanced");
    await setTier(table, "t2", "Premium");
    await setTier(table, "t3", "gold; \"vip\"");

    // fixed endpoint cost of one hour lands on t0 through the real allocation job
    await doc.send(new PutCommand({ TableName: table, Item: { ...endpointKeys.usage("llama31-70b-lora", "2026-11-25T20", "t0"), tenantId: "t0", inferenceMs: 4400, requests: 1 } }));
    const catalog = new EndpointCatalog();
    await new AllocationService({ store: new DynamoAllocationStore(doc, table), catalog, maxTransactionItems: 100 }).allocate("llama31-70b-lora", "2026-11-25T20");
    const hourCost = hourCostNanoUsd(catalog.get("llama31-70b-lora"));

    const dir = await mkdtemp(join(tmpdir(), "billing-it-"));
    const service = new BillingExportService(new DynamoBillingSource(doc, table, { pageSize: 2 }), new LocalDirectorySink(dir));
    const result = await service.export("2026-11");
    expect(result.lines).toHaveLength(N);

    const jsonl = await readFile(join(dir, exportPaths("2026-11").jsonl), "utf8");
    const csv = await readFile(join(dir, exportPaths("2026-11").csv), "utf8");
    const fromJson = jsonl.trimEnd().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    const [header, ...rows] = parseCsv(csv);
    expect(header).toEqual([...INVOICE_COLUMNS]);
    expect(rows).toHaveLength(N);
    expect(fromJson.map((l) => l.tenantId)).toEqual(rows.map((r) => r[1]));

    const byTenant = new Map(fromJson.map((l) => [l.tenantId, l]));
    expect(byTenant.get("t0")).toMatchObject({
      tier: "basic",
      requests: 100,
      apiCostNanoUsd: 891_600_000,
      allocatedCostNanoUsd: hourCost,
      totalCostNanoUsd: 891_600_000 + hourCost,
      revenueNanoUsd: TIER_PRICES_USD.basic * 1e9,
      marginNanoUsd: TIER_PRICES_USD.basic * 1e9 - 891_600_000 - hourCost,
    });
    expect(byTenant.get("t1")).toMatchObject({ tier: "advanced", unpricedRequests: 4, requests: 101 });
    expect(byTenant.get("t2")).toMatchObject({ tier: "premium" });
    expect(byTenant.get("t3")).toMatchObject({ tier: "unknown", revenueNanoUsd: 0 });
    expect(byTenant.get("t9")).toMatchObject({ tier: "unknown" });

    // idempotent: a rerun writes byte-identical files
    await service.export("2026-11");
    expect(await readFile(join(dir, exportPaths("2026-11").jsonl), "utf8")).toBe(jsonl);
    expect(await readFile(join(dir, exportPaths("2026-11").csv), "utf8")).toBe(csv);
  });

  it("looks up tiers for more tenants than one BatchGet holds", async () => {
    const table = await freshUsageTable();
    const ids = Array.from({ length: 150 }, (_, i) => `bulk-${i}`);
    for (const id of ids.filter((_, i) => i % 3 === 0)) await setTier(table, id, "basic");
    const tiers = await new DynamoBillingSource(doc, table).tiers(ids);
    expect(tiers.size).toBe(50);
    expect(tiers.get("bulk-147")).toBe("basic");
  });
});
