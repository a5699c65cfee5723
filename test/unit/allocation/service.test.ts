import { describe, expect, it } from "vitest";
import { EndpointCatalog, hourCostNanoUsd } from "../../../shared/allocation/endpoints";
import { AllocationCommitFailedError } from "../../../shared/allocation/errors";
import type { AllocationStore } from "../../../shared/allocation/ports";
import { AllocationService } from "../../../shared/allocation/service";
import { MemoryStore } from "./memory-store";

const HOUR = "2026-11-25T20";
const EP = "llama31-70b-lora";
const catalog = new EndpointCatalog();
const cost = hourCostNanoUsd(catalog.get(EP));
const tenants = (n: number) => Array.from({ length: n }, (_, i) => ({ tenantId: `t${String(i).padStart(3, "0")}`, requests: 1, inputTokens: 10, outputTokens: 10, inferenceMs: 1000 + i }));
const sum = (m: Map<string, number>) => [...m.values()].reduce((s, x) => s + x, 0);
const service = (store: AllocationStore, maxTransactionItems = 100) =>
  new AllocationService({ store, catalog, maxTransactionItems, sleep: async () => {}, random: () => 0 });

describe("allocation service", () => {
  it("allocates a small hour in one transaction and refuses to allocate it twice", async () => {
    const store = new MemoryStore();
    store.usage.set(`${EP}|${HOUR}`, tenants(3));
    const first = await service(store).allocate(EP, HOUR);
    expect(first.status).toBe("allocated");
    expect(store.transactions).toBe(1);
    expect(sum(store.allocated)).toBe(cost);
    const before = new Map(store.allocated);

    const second = await service(store).allocate(EP, HOUR);
    expect(second.status).toBe("already-allocated");
    expect(store.allocated).toEqual(before);
    expect(second.plan).toEqual(first.plan);
  });

  it("chunks a large hour (more shares than one transaction holds) and still sums exactly", async () => {
    const store = new MemoryStore();
    store.usage.set(`${EP}|${HOUR}`, tenants(300));
    const out = await service(store).allocate(EP, HOUR);
    expect(out.status).toBe("allocated");
    expect(store.transactions).toBe(Math.ceil(300 / 16)); // 16 shares x 6 items per transaction
    expect(store.allocated.size).toBe(300);
    expect(sum(store.allocated)).toBe(cost);
    expect(store.markers.get(`${EP}|${HOUR}`)?.status).toBe("complete");
  });

  it("resumes a crashed run from the stored plan, even if usage changed since", async () => {
    const store = new MemoryStore();
    store.usage.set(`${EP}|${HOUR}`, tenants(100));
    store.beforeShares = (n) => {
      if (n === 2) throw new Error("lambda timed out");
      return undefined;
    };
    await expect(service(store).allocate(EP, HOUR)).rejects.toThrow("lambda timed out");
    expect(store.markers.get(`${EP}|${HOUR}`)?.status).toBe("pending");
    expect(store.allocated.size).toBe(32); // two chunks landed

    // a late event changes the usage; the rerun must not recompute shares from it
    store.usage.set(`${EP}|${HOUR}`, [...tenants(100), { tenantId: "late", requests: 1, inputTokens: 1, outputTokens: 1, inferenceMs: 10_000_000 }]);
    store.beforeShares = undefined;
    const out = await service(store).allocate(EP, HOUR);
    expect(out.status).toBe("resumed");
    expect(store.allocated.size).toBe(100);
    expect(store.allocated.has("late")).toBe(false);
    expect(sum(store.allocated)).toBe(cost);
  });

  it("drops shares a concurrent run already wrote, and retries conflicts", async () => {
    const store = new MemoryStore();
    store.usage.set(`${EP}|${HOUR}`, tenants(40));
    let calls = 0;
    store.beforeShares = () => {
      calls++;
      if (calls === 1) return { kind: "retryable", reason: "TransactionConflict" };
      return undefined;
    };
    const plan = (await service(store).allocate(EP, HOUR)).plan;
    expect(sum(store.allocated)).toBe(cost);

    // the same plan committed by "another run": every share is already written
    const again = new MemoryStore();
    again.usage = store.usage;
    again.markers.set(`${EP}|${HOUR}`, { status: "pending", version: 1, plan });
    for (const s of plan.shares.slice(0, 20)) {
      again.shareRecords.add(`${EP}|${HOUR}|${s.tenantId}`);
      again.allocated.set(s.tenantId, s.allocatedCostNanoUsd);
    }
    // writtenShares is read before the other run's chunk lands: simulate by hiding it
    const hidden = again.writtenShares.bind(again);
    again.writtenShares = async () => new Set();
    const out = await service(again).allocate(EP, HOUR);
    expect(out.status).toBe("resumed");
    expect(sum(again.allocated)).toBe(cost);
    expect(await hidden(EP, HOUR)).toHaveProperty("size", 40);
  });

  it("gives up after the retry budget with a typed error", async () => {
    const store = new MemoryStore();
    store.usage.set(`${EP}|${HOUR}`, tenants(40));
    store.beforeShares = () => ({ kind: "retryable", reason: "ThrottlingException" });
    await expect(service(store).allocate(EP, HOUR)).rejects.toBeInstanceOf(AllocationCommitFailedError);
  });

  it("records an unused hour as wholly idle", async () => {
    const store = new MemoryStore();
    const out = await service(store).allocate(EP, HOUR);
    expect(out.plan.idleCostNanoUsd).toBe(cost);
    expect(store.markers.get(`${EP}|${HOUR}`)?.status).toBe("complete");
    expect(store.allocated.size).toBe(0);
  });

  it("allocates every catalogued endpoint and reports a failing one after doing the rest", async () => {
    const store = new MemoryStore();
    store.usage.set(`llama31-70b-int4|${HOUR}`, tenants(2));
    const out = await service(store).allocateAll(HOUR);
    expect(out.map((o) => o.endpointName)).toEqual(["llama31-70b-int4", "llama31-70b-lora"]);
    await expect(service(store).allocateAll(HOUR, ["llama31-70b-lora", "missing"])).rejects.toThrow(/missing/);
  });
});

describe("reconcile (re-allocation of late usage)", () => {
  const key = `${EP}|${HOUR}`;
  const withLate = (n: number, late: number) => [
    ...tenants(n),
    ...Array.from({ length: late }, (_, i) => ({ tenantId: `late${i}`, requests: 1, inputTokens: 1, outputTokens: 1, inferenceMs: 5_000 + i })),
  ];
  const planTotals = (store: MemoryStore) =>
    new Map(store.markers.get(key)!.plan.shares.filter((s) => s.allocatedCostNanoUsd !== 0).map((s) => [s.tenantId, s.allocatedCostNanoUsd]));
  const nonZero = (m: Map<string, number>) => new Map([...m].filter(([, v]) => v !== 0));
  /** 100 tenants allocated, then `late` late tenants, and a reconcile killed before any delta lands: version 2 pending. */
  const crashedReallocation = async (late: number) => {
    const store = new MemoryStore();
    store.usage.set(key, tenants(100));
    await service(store).allocate(EP, HOUR);
    store.usage.set(key, withLate(100, late));
    store.beforeDeltas = () => {
      throw new Error("killed");
    };
    await expect(service(store).reconcile(EP, HOUR)).rejects.toThrow("killed");
    store.beforeDeltas = undefined;
    return store;
  };

  it("allocates an hour nobody allocated yet, then writes nothing while usage is unchanged", async () => {
    const store = new MemoryStore();
    store.usage.set(key, tenants(3));
    expect((await service(store).reconcile(EP, HOUR)).status).toBe("allocated");
    const tx = store.transactions;
    const again = await service(store).reconcile(EP, HOUR);
    expect(again).toMatchObject({ status: "already-allocated", version: 1, deltas: [] });
    expect(store.transactions).toBe(tx);
  });

  it("moves cost to late tenants in one transaction, totals equal to the new plan and the hour cost", async () => {
    const store = new MemoryStore();
    store.usage.set(key, tenants(3));
    await service(store).allocate(EP, HOUR);
    store.usage.set(key, withLate(3, 1));
    const out = await service(store).reconcile(EP, HOUR);
    expect(out).toMatchObject({ status: "reallocated", version: 2 });
    expect(out.deltas.map((d) => d.tenantId)).toEqual(["late0", "t000", "t001", "t002"]);
    expect(store.transactions).toBe(2);
    expect(sum(store.allocated)).toBe(cost);
    expect(nonZero(store.allocated)).toEqual(planTotals(store));
    expect((await service(store).reconcile(EP, HOUR)).status).toBe("already-allocated");
    expect(store.transactions).toBe(2);
  });

  it("chunks a large re-allocation and resumes a crash without applying a delta twice", async () => {
    const store = new MemoryStore();
    store.usage.set(key, tenants(100));
    await service(store).allocate(EP, HOUR);
    store.usage.set(key, withLate(100, 5));
    const tx = store.transactions;
    store.beforeDeltas = (n) => {
      if (n === tx + 3) throw new Error("lambda timed out"); // record + 2 chunks landed
      return undefined;
    };
    await expect(service(store).reconcile(EP, HOUR)).rejects.toThrow("lambda timed out");
    expect(store.markers.get(key)).toMatchObject({ status: "pending", version: 2 });
    expect(store.deltaRecords.size).toBe(32);
    expect(sum(store.allocated)).not.toBe(cost); // half-applied

    // more late usage meanwhile: the resume finishes version 2 as fixed, then applies version 3
    store.usage.set(key, withLate(100, 6));
    store.beforeDeltas = undefined;
    const out = await service(store).reconcile(EP, HOUR);
    expect(out).toMatchObject({ status: "reallocated", version: 3 });
    expect(sum(store.allocated)).toBe(cost);
    expect(nonZero(store.allocated)).toEqual(planTotals(store));

    const settled = await service(store).reconcile(EP, HOUR);
    expect(settled.status).toBe("already-allocated");
  });

  it("reports a finished pending version as resumed when nothing changed since", async () => {
    const store = await crashedReallocation(1);
    const out = await service(store).reconcile(EP, HOUR);
    expect(out).toMatchObject({ status: "resumed", version: 2 });
    expect(out.deltas).toHaveLength(101);
    expect(sum(store.allocated)).toBe(cost);
  });

  it("finishes a pending re-allocation through allocate() too, not as a first split", async () => {
    const store = await crashedReallocation(2);
    expect((await service(store).allocate(EP, HOUR)).status).toBe("resumed");
    expect(store.markers.get(key)).toMatchObject({ status: "complete", version: 2 });
    expect(nonZero(store.allocated)).toEqual(planTotals(store));
  });

  it("continues from the winner's version when another run re-allocated first", async () => {
    const store = new MemoryStore();
    store.usage.set(key, tenants(3));
    await service(store).allocate(EP, HOUR);
    store.usage.set(key, withLate(3, 1));
    // this run reads version 1, then another run commits version 2 before this one writes
    const real = store.readState.bind(store);
    let first = true;
    store.readState = async (e, h) => {
      const s = await real(e, h);
      if (first) {
        first = false;
        await service(Object.assign(new MemoryStore(), store, { readState: real })).reconcile(EP, HOUR);
      }
      return s;
    };
    const out = await service(store).reconcile(EP, HOUR);
    expect(out).toMatchObject({ status: "already-allocated", version: 2 });
    expect(sum(store.allocated)).toBe(cost);
    expect(nonZero(store.allocated)).toEqual(planTotals(store));
  });

  it("reconciles every endpoint over a window of hours and reports a failing one after the rest", async () => {
    const store = new MemoryStore();
    store.usage.set(`llama31-70b-int4|${HOUR}`, tenants(2));
    const out = await service(store).reconcileAll([HOUR, "2026-11-25T19"]);
    expect(out.map((o) => `${o.endpointName} ${o.hour} ${o.status}`)).toEqual([
      `llama31-70b-int4 ${HOUR} allocated`,
      `llama31-70b-lora ${HOUR} allocated`,
      "llama31-70b-int4 2026-11-25T19 allocated",
      "llama31-70b-lora 2026-11-25T19 allocated",
    ]);
    await expect(service(store).reconcileAll([HOUR], ["llama31-70b-lora", "missing"])).rejects.toThrow(/missing/);
  });
});
