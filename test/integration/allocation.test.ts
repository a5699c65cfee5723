import { GetCommand, PutCommand, QueryCommand, type DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { beforeAll, describe, expect, it } from "vitest";
import { DynamoAllocationStore } from "../../shared/allocation/adapters/dynamodb";
import { AllocationService } from "../../shared/allocation/service";
import { documentClient } from "../../shared/storage/adapters/dynamodb";
import { endpointKeys, keys } from "../../shared/storage/keys";
import { USAGE_TABLE } from "../../shared/storage/table";
import { freshUsageTable, localDynamoClient } from "../helpers/dynamo";
import { allocationTargets, catalog, COST, EP, HOUR } from "./allocation-fixtures";

let doc: DynamoDBDocumentClient;
beforeAll(() => {
  doc = documentClient(localDynamoClient());
});

/** Endpoint-hour usage items shaped as the ingest writes them. */
async function seedUsage(table: string, n: number, hour = HOUR) {
  for (let i = 0; i < n; i++) {
    const tenantId = `tenant-${String(i).padStart(3, "0")}`;
    await doc.send(
      new PutCommand({
        TableName: table,
        Item: {
          ...endpointKeys.usage(EP, hour, tenantId),
          type: "endpoint-usage",
          tenantId,
          endpointName: EP,
          granularity: "hour",
          period: hour,
          requests: 1 + i,
          inputTokens: 300 * (1 + i),
          outputTokens: 500 * (1 + i),
          costNanoUsd: 0,
          inferenceMs: 4400 * (1 + i),
        },
      }),
    );
  }
}

async function allocatedOf(table: string, tenantId: string) {
  const items: (Record<string, unknown> | undefined)[] = [];
  for (const Key of allocationTargets(tenantId)) items.push((await doc.send(new GetCommand({ TableName: table, Key }))).Item);
  const [month, day, hour, model, modelDay] = items;
  return { month, day, hour, model, modelDay };
}

async function snapshot(table: string, n: number) {
  const out: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) {
    const t = `tenant-${String(i).padStart(3, "0")}`;
    const a = await allocatedOf(table, t);
    out[t] = [a.month?.allocatedCostNanoUsd, a.day?.allocatedCostNanoUsd, a.hour?.allocatedCostNanoUsd, a.model?.allocatedCostNanoUsd, a.modelDay?.allocatedCostNanoUsd];
  }
  return out;
}

const svc = (table: string, maxTransactionItems = 100, store = new DynamoAllocationStore(doc, table)) =>
  new AllocationService({ store, catalog, maxTransactionItems, sleep: async () => {} });

describe("allocation on DynamoDB Local", () => {
  it("adds each tenant's share to its month/day/hour and model aggregates once, however often it runs", async () => {
    const table = await freshUsageTable();
    await seedUsage(table, 5);
    // the tenant already has pay-per-token usage this month: the share adds beside it
    await doc.send(
      new PutCommand({
        TableName: table,
        Item: { ...keys.aggregate("tenant-000", { kind: "tenant", granularity: "month", period: "2026-11" }), tenantId: "tenant-000", costNanoUsd: 123, requests: 1 },
      }),
    );

    const first = await svc(table).allocate(EP, HOUR);
    expect(first.status).toBe("allocated");
    const after1 = await snapshot(table, 5);
    const second = await svc(table).allocate(EP, HOUR);
    expect(second.status).toBe("already-allocated");
    expect(await snapshot(table, 5)).toEqual(after1);

    const shares = Object.values(after1).map((v) => (v as number[])[0]);
    expect(shares.reduce((s, x) => s + x, 0)).toBe(COST);
    // weights 1..5: tenant-004 carries 5/15 of the hour
    expect(shares[4]).toBe(Math.round((COST * 5) / 15));
    for (const v of Object.values(after1)) expect(new Set(v as number[]).size).toBe(1); // same share on all five items

    const t0 = await allocatedOf(table, "tenant-000");
    expect(t0.month).toMatchObject({ costNanoUsd: 123, requests: 1, ...keys.billing("tenant-000", "2026-11") });
    expect(t0.model).toMatchObject({ modelId: EP, granularity: "month", period: "2026-11" });

    const marker = await doc.send(new GetCommand({ TableName: table, Key: endpointKeys.allocation(EP, HOUR) }));
    const used = 4400 * 15;
    expect(marker.Item).toMatchObject({ status: "complete", hourCostNanoUsd: COST, usedInferenceMs: used, capacityMs: 18_000_000 });
    expect(marker.Item?.idleCostNanoUsd).toBe(Math.round((COST * (18_000_000 - used)) / 18_000_000));
  });

  it("chunks many tenants with per-tenant records, resumes after a crash, and still sums exactly", async () => {
    const table = await freshUsageTable();
    const N = 25;
    await seedUsage(table, N);
    // 13 items per transaction: 2 shares (6 items each) per chunk, 13 chunks
    const real = new DynamoAllocationStore(doc, table);
    let commits = 0;
    const crashing = Object.assign(Object.create(real) as DynamoAllocationStore, {
      commitShares: async (...args: Parameters<DynamoAllocationStore["commitShares"]>) => {
        if (++commits === 4) throw new Error("process killed");
        return real.commitShares(...args);
      },
    });
    await expect(svc(table, 13, crashing).allocate(EP, HOUR)).rejects.toThrow("process killed");
    const marker = await doc.send(new GetCommand({ TableName: table, Key: endpointKeys.allocation(EP, HOUR), ConsistentRead: true }));
    expect(marker.Item?.status).toBe("pending");

    // a late event lands in the hour: the resumed run must keep the stored plan
    await doc.send(new PutCommand({ TableName: table, Item: { ...endpointKeys.usage(EP, HOUR, "late"), tenantId: "late", inferenceMs: 9_999_999, requests: 1 } }));

    const resumed = await svc(table, 13).allocate(EP, HOUR);
    expect(resumed.status).toBe("resumed");
    const again = await svc(table, 13).allocate(EP, HOUR);
    expect(again.status).toBe("already-allocated");

    const snap = await snapshot(table, N);
    const total = Object.values(snap).reduce((s: number, v) => s + (v as number[])[0], 0);
    expect(total).toBe(COST);
    expect((await allocatedOf(table, "late")).month).toBeUndefined();

    const records = await doc.send(
      new QueryCommand({
        TableName: table,
        KeyConditionExpression: "pk = :pk AND begins_with(sk, :p)",
        ExpressionAttributeValues: { ":pk": endpointKeys.partition(EP, HOUR), ":p": endpointKeys.tenantAllocationPrefix },
      }),
    );
    expect(records.Items).toHaveLength(N);
  });

  it("survives two runs racing on the same endpoint-hour", async () => {
    const table = await freshUsageTable();
    const N = 30;
    await seedUsage(table, N);
    const results = await Promise.allSettled([svc(table, 13).allocate(EP, HOUR), svc(table, 13).allocate(EP, HOUR)]);
    for (const r of results) expect(r.status).toBe("fulfilled");
    const snap = await snapshot(table, N);
    expect(Object.values(snap).reduce((s: number, v) => s + (v as number[])[0], 0)).toBe(COST);
  });

  it("refuses a second whole-hour commit from a run that read the state before the first landed", async () => {
    const table = await freshUsageTable();
    await seedUsage(table, 4);
    await svc(table).allocate(EP, HOUR);
    const before = await snapshot(table, 4);
    // a concurrent run that saw no marker when it looked: only the conditional put stops it
    const real = new DynamoAllocationStore(doc, table);
    let stale = true;
    const late = Object.assign(Object.create(real) as DynamoAllocationStore, {
      readState: async (...args: Parameters<DynamoAllocationStore["readState"]>) => {
        if (stale) {
          stale = false;
          return { status: "absent" as const };
        }
        return real.readState(...args);
      },
    });
    const out = await svc(table, 100, late).allocate(EP, HOUR);
    expect(out.status).toBe("already-allocated");
    expect(await snapshot(table, 4)).toEqual(before);
  });

  it("refuses a second plan from a run that read the state before the first plan was recorded", async () => {
    const table = await freshUsageTable();
    await seedUsage(table, 25);
    await svc(table, 13).allocate(EP, HOUR);
    const before = await snapshot(table, 25);
    const real = new DynamoAllocationStore(doc, table);
    let stale = true;
    const late = Object.assign(Object.create(real) as DynamoAllocationStore, {
      readState: async (...args: Parameters<DynamoAllocationStore["readState"]>) => {
        if (stale) {
          stale = false;
          return { status: "absent" as const };
        }
        return real.readState(...args);
      },
    });
    const out = await svc(table, 13, late).allocate(EP, HOUR);
    expect(out.status).toBe("already-allocated");
    expect(await snapshot(table, 25)).toEqual(before);
  });

  it("makes allocated month aggregates visible to billing through GSI1", async () => {
    const table = await freshUsageTable();
    await seedUsage(table, 3);
    await svc(table).allocate(EP, HOUR);
    let found = 0;
    for (let shard = 0; shard < USAGE_TABLE.billingShards; shard++) {
      const out = await doc.send(
        new QueryCommand({
          TableName: table,
          IndexName: USAGE_TABLE.gsi1.name,
          KeyConditionExpression: "gsi1pk = :p",
          ExpressionAttributeValues: { ":p": keys.billingPartition("2026-11", shard) },
        }),
      );
      found += out.Items?.length ?? 0;
    }
    expect(found).toBe(3);
  });
});
