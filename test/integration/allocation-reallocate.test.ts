import { GetCommand, QueryCommand, type DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { beforeAll, describe, expect, inject, it, vi } from "vitest";
import { run as cliAllocate } from "../../cli/allocate";
import { DynamoAllocationStore } from "../../shared/allocation/adapters/dynamodb";
import type { AllocationStore } from "../../shared/allocation/ports";
import { AllocationService } from "../../shared/allocation/service";
import { documentClient } from "../../shared/storage/adapters/dynamodb";
import { endpointKeys } from "../../shared/storage/keys";
import { freshUsageTable, localDynamoClient, localIngest } from "../helpers/dynamo";
import { invocation, recordOf } from "../helpers/events";
import { allocationTargets, catalog, COST, EP, HOUR } from "./allocation-fixtures";

let doc: DynamoDBDocumentClient;
beforeAll(() => {
  doc = documentClient(localDynamoClient());
});

/** SageMaker calls on the endpoint in HOUR, through the real ingest (it writes the endpoint-hour usage items). */
async function ingest(table: string, calls: { tenantId: string; latencyMs: number; minute?: number }[]) {
  // hours after the hour: a late event for an hour that is already allocated
  const { service } = localIngest(doc, table, { clock: () => new Date("2026-11-26T02:00:00Z") });
  const events = calls.map((c) =>
    invocation({
      tenantId: c.tenantId,
      provider: "sagemaker",
      modelId: "meta-llama-3-1-70b-instruct",
      endpointName: EP,
      variantName: "AllTraffic",
      adapterId: c.tenantId,
      latencyMs: c.latencyMs,
      occurredAt: `${HOUR}:${String(c.minute ?? 30).padStart(2, "0")}:00Z`,
    }),
  );
  const out = await service.ingest(events.map(recordOf));
  expect(out.stats).toMatchObject({ counted: calls.length, failed: 0 });
}

/** Every tenant's allocatedCostNanoUsd on its month/day/hour and tenant x endpoint month/day aggregates. */
async function allocatedOf(table: string, tenantId: string): Promise<number[]> {
  const out: number[] = [];
  for (const Key of allocationTargets(tenantId)) {
    const r = await doc.send(new GetCommand({ TableName: table, Key, ConsistentRead: true }));
    out.push(Number(r.Item?.allocatedCostNanoUsd ?? 0));
  }
  return out;
}

/** tenant -> allocated (asserting all five aggregates agree) */
async function totals(table: string, tenants: readonly string[]) {
  const m = new Map<string, number>();
  for (const t of tenants) {
    const a = await allocatedOf(table, t);
    expect(new Set(a).size, `aggregates of ${t} disagree: ${a.join(",")}`).toBe(1);
    if (a[0] !== 0) m.set(t, a[0]);
  }
  return m;
}

async function marker(table: string) {
  const r = await doc.send(new GetCommand({ TableName: table, Key: endpointKeys.allocation(EP, HOUR), ConsistentRead: true }));
  return r.Item!;
}

const planOf = (m: Record<string, unknown>) =>
  new Map((m.shares as { tenantId: string; allocatedCostNanoUsd: number }[]).filter((s) => s.allocatedCostNanoUsd !== 0).map((s) => [s.tenantId, s.allocatedCostNanoUsd]));
const sum = (m: Map<string, number>) => [...m.values()].reduce((s, x) => s + x, 0);

/** Counts the table's write calls, to show a rerun without change writes nothing. */
function countingStore(table: string) {
  const store = new DynamoAllocationStore(doc, table);
  const writes = { n: 0 };
  for (const name of ["commitWhole", "recordPlan", "commitShares", "complete", "commitReallocationWhole", "recordReallocation", "commitDeltas"] as const) {
    const real = (store[name] as (...a: unknown[]) => Promise<unknown>).bind(store);
    Object.assign(store, { [name]: (...a: unknown[]) => (writes.n++, real(...a)) });
  }
  return { store, writes };
}

const svc = (store: AllocationStore, maxTransactionItems = 100) =>
  new AllocationService({ store, catalog, maxTransactionItems, sleep: async () => {} });

describe("re-allocation of late usage on DynamoDB Local", () => {
  it("moves cost from the hour's tenants to a late one exactly, and a rerun without change writes nothing", async () => {
    const table = await freshUsageTable();
    await ingest(table, [
      { tenantId: "acme", latencyMs: 4400 },
      { tenantId: "acme", latencyMs: 4400 },
      { tenantId: "globex", latencyMs: 4400 },
    ]);
    const { store, writes } = countingStore(table);
    expect((await svc(store).reconcile(EP, HOUR)).status).toBe("allocated");
    const before = await totals(table, ["acme", "globex", "initech"]);
    expect(sum(before)).toBe(COST);
    // 2 : 1 by inference time; the one leftover nano-USD goes to the larger remainder (acme's)
    expect(before).toEqual(new Map([["acme", COST - Math.floor(COST / 3)], ["globex", Math.floor(COST / 3)]]));

    // late SageMaker events of the same hour: a new tenant, and more of an existing one
    await ingest(table, [
      { tenantId: "initech", latencyMs: 8800, minute: 59 },
      { tenantId: "globex", latencyMs: 4400, minute: 58 },
    ]);
    const out = await svc(store).reconcile(EP, HOUR);
    expect(out).toMatchObject({ status: "reallocated", version: 2 });

    const after = await totals(table, ["acme", "globex", "initech"]);
    const m = await marker(table);
    expect(m).toMatchObject({ status: "complete", version: 2, usedInferenceMs: 4400 * 6 });
    // acme 2, globex 2, initech 2 (x 4,400 ms): a third each
    expect(after).toEqual(planOf(m));
    expect(sum(after)).toBe(COST);
    expect(Math.abs(after.get("acme")! - COST / 3)).toBeLessThanOrEqual(1);
    expect(after.get("acme")! - before.get("acme")!).toBeLessThan(0); // acme lost share: a negative ADD
    expect(out.deltas.reduce((s, d) => s + d.deltaNanoUsd, 0)).toBe(0);
    const change = await doc.send(new GetCommand({ TableName: table, Key: endpointKeys.reallocation(EP, HOUR, 2), ConsistentRead: true }));
    expect(change.Item).toMatchObject({ type: "reallocation", fromVersion: 1, version: 2 });
    // globex keeps its third (its delta is 0 and not written); acme hands a third to initech
    expect(after.get("globex")).toBe(before.get("globex"));
    expect(out.deltas.map((d) => d.tenantId)).toEqual(["acme", "initech"]);
    expect(change.Item?.deltas).toEqual(out.deltas);

    const w = writes.n;
    const again = await svc(store).reconcile(EP, HOUR);
    expect(again).toMatchObject({ status: "already-allocated", version: 2, deltas: [] });
    expect(writes.n).toBe(w);
    expect(await totals(table, ["acme", "globex", "initech"])).toEqual(after);
  });

  it("resumes a re-allocation that crashed between chunks without applying any delta twice", async () => {
    const table = await freshUsageTable();
    const N = 20;
    const tenants = Array.from({ length: N }, (_, i) => `tenant-${String(i).padStart(2, "0")}`);
    await ingest(table, tenants.map((tenantId, i) => ({ tenantId, latencyMs: 1000 * (i + 1) })));
    // 13 items per transaction: 2 tenants (record + 5 aggregates each) per chunk
    await svc(new DynamoAllocationStore(doc, table), 13).reconcile(EP, HOUR);
    expect(sum(await totals(table, tenants))).toBe(COST);

    await ingest(table, [{ tenantId: "late", latencyMs: 50_000, minute: 59 }]);
    const real = new DynamoAllocationStore(doc, table);
    let chunks = 0;
    const crashing = Object.assign(Object.create(real) as DynamoAllocationStore, {
      commitDeltas: async (...args: Parameters<DynamoAllocationStore["commitDeltas"]>) => {
        if (++chunks === 4) throw new Error("process killed");
        return real.commitDeltas(...args);
      },
    });
    await expect(svc(crashing, 13).reconcile(EP, HOUR)).rejects.toThrow("process killed");
    expect(await marker(table)).toMatchObject({ status: "pending", version: 2 });
    const records = await doc.send(
      new QueryCommand({
        TableName: table,
        KeyConditionExpression: "pk = :pk AND begins_with(sk, :p)",
        ExpressionAttributeValues: { ":pk": endpointKeys.partition(EP, HOUR), ":p": endpointKeys.tenantReallocationPrefix(2) },
        ConsistentRead: true,
      }),
    );
    expect(records.Items).toHaveLength(6); // three chunks of two landed
    const all = [...tenants, "late"];
    expect(sum(await totals(table, all))).not.toBe(COST); // half-applied until resumed

    // two resumers at once: the per-tenant, per-version records let each delta land once
    const results = await Promise.allSettled([svc(real, 13).reconcile(EP, HOUR), svc(new DynamoAllocationStore(doc, table), 13).reconcile(EP, HOUR)]);
    for (const r of results) expect(r.status).toBe("fulfilled");
    const final = await totals(table, all);
    const m = await marker(table);
    expect(m).toMatchObject({ status: "complete", version: 2 });
    expect(final).toEqual(planOf(m));
    expect(sum(final)).toBe(COST);
    expect((await svc(real, 13).reconcile(EP, HOUR)).status).toBe("already-allocated");
  });

  it("lets only one of two racing re-allocations apply its change", async () => {
    const table = await freshUsageTable();
    await ingest(table, [
      { tenantId: "a", latencyMs: 1000 },
      { tenantId: "b", latencyMs: 3000 },
    ]);
    await svc(new DynamoAllocationStore(doc, table)).reconcile(EP, HOUR);
    await ingest(table, [{ tenantId: "c", latencyMs: 4000, minute: 59 }]);
    const outs = await Promise.all([
      svc(new DynamoAllocationStore(doc, table)).reconcile(EP, HOUR),
      svc(new DynamoAllocationStore(doc, table)).reconcile(EP, HOUR),
      svc(new DynamoAllocationStore(doc, table)).reconcile(EP, HOUR),
    ]);
    expect(outs.filter((o) => o.status === "reallocated")).toHaveLength(1);
    expect(outs.every((o) => o.version === 2)).toBe(true);
    const final = await totals(table, ["a", "b", "c"]);
    expect(final).toEqual(planOf(await marker(table)));
    expect(sum(final)).toBe(COST);
    expect(final.get("c")).toBe(COST / 2);
  });

  it("does not let a stale run complete a later pending version", async () => {
    const table = await freshUsageTable();
    await ingest(table, Array.from({ length: 20 }, (_, i) => ({ tenantId: `t${i}`, latencyMs: 1000 + i })));
    const store = new DynamoAllocationStore(doc, table);
    await svc(store, 13).reconcile(EP, HOUR);
    const v1 = (await store.readState(EP, HOUR)) as { plan: Parameters<DynamoAllocationStore["complete"]>[0] };
    await ingest(table, [{ tenantId: "late", latencyMs: 9000, minute: 59 }]);
    const crashing = Object.assign(Object.create(store) as DynamoAllocationStore, {
      commitDeltas: async () => {
        throw new Error("process killed");
      },
    });
    await expect(svc(crashing, 13).reconcile(EP, HOUR)).rejects.toThrow("process killed");
    // a run that finished version 1 long ago now calls complete: version 2 must stay pending
    await store.complete(v1.plan, 1);
    expect(await marker(table)).toMatchObject({ status: "pending", version: 2 });
    await svc(store, 13).reconcile(EP, HOUR);
    const final = await totals(table, [...Array.from({ length: 20 }, (_, i) => `t${i}`), "late"]);
    expect(sum(final)).toBe(COST);
    expect(final).toEqual(planOf(await marker(table)));
  });

  it("reads a marker written before versions existed as version 1 and re-allocates it", async () => {
    const table = await freshUsageTable();
    await ingest(table, [{ tenantId: "a", latencyMs: 1000 }]);
    await svc(new DynamoAllocationStore(doc, table)).allocate(EP, HOUR);
    // strip the version attribute, as on markers of the earlier code
    const { version, ...legacy } = await marker(table);
    expect(version).toBe(1);
    const { PutCommand } = await import("@aws-sdk/lib-dynamodb");
    await doc.send(new PutCommand({ TableName: table, Item: legacy }));
    await ingest(table, [{ tenantId: "b", latencyMs: 1000, minute: 59 }]);
    const out = await svc(new DynamoAllocationStore(doc, table)).reconcile(EP, HOUR);
    expect(out).toMatchObject({ status: "reallocated", version: 2 });
    expect(await totals(table, ["a", "b"])).toEqual(new Map([["a", COST / 2], ["b", COST / 2]]));
  });

  it("re-allocates a given hour from the CLI, and prints what moved", async () => {
    const table = await freshUsageTable();
    await ingest(table, [{ tenantId: "a", latencyMs: 1000 }]);
    const args = ["--hour", HOUR, "--endpoint", EP, "--endpoint-url", inject("dynamoEndpoint"), "--table", table];
    const lines: string[] = [];
    const log = vi.spyOn(console, "log").mockImplementation((...a: unknown[]) => void lines.push(a.join(" ")));
    try {
      expect(await cliAllocate(args)).toBe(0);
      expect(lines[0]).toContain(`${EP} ${HOUR}: allocated (version 1)`);
      await ingest(table, [{ tenantId: "b", latencyMs: 3000, minute: 59 }]);
      lines.length = 0;
      expect(await cliAllocate(args)).toBe(0);
      expect(lines[0]).toContain(`${EP} ${HOUR}: reallocated (version 2)`);
      expect(lines.filter((l) => l.includes("moved"))).toEqual([
        expect.stringMatching(/moved a\s+-\$11\.986500$/),
        expect.stringMatching(/moved b\s+\+\$11\.986500$/),
      ]);
    } finally {
      log.mockRestore();
    }
    expect(await totals(table, ["a", "b"])).toEqual(new Map([["a", COST / 4], ["b", (COST * 3) / 4]]));
  });
});
