import { describe, expect, it } from "vitest";
import type { HourAllocation, TenantHourUsage, TenantShare } from "../../../shared/allocation/allocate";
import { EndpointCatalog, hourCostNanoUsd } from "../../../shared/allocation/endpoints";
import { AllocationCommitFailedError } from "../../../shared/allocation/errors";
import type { AllocationState, AllocationStore, ShareCommitResult } from "../../../shared/allocation/ports";
import { AllocationService } from "../../../shared/allocation/service";

/** In-memory store with the same conditional semantics the DynamoDB adapter has. */
class MemoryStore implements AllocationStore {
  readonly itemsPerShare = 6;
  usage = new Map<string, TenantHourUsage[]>();
  markers = new Map<string, { status: "pending" | "complete"; plan: HourAllocation }>();
  shareRecords = new Set<string>();
  /** tenant -> summed allocated cost (what the aggregates would hold) */
  allocated = new Map<string, number>();
  transactions = 0;
  /** Injected faults: called before each commitShares; may throw or return a result. */
  beforeShares?: (n: number) => ShareCommitResult | undefined;

  async readUsage(e: string, h: string) {
    return this.usage.get(`${e}|${h}`) ?? [];
  }
  async readState(e: string, h: string): Promise<AllocationState> {
    const m = this.markers.get(`${e}|${h}`);
    return m ? { status: m.status, plan: structuredClone(m.plan) } : { status: "absent" };
  }
  async writtenShares(e: string, h: string) {
    return new Set([...this.shareRecords].filter((k) => k.startsWith(`${e}|${h}|`)).map((k) => k.split("|")[2]));
  }
  private add(shares: readonly TenantShare[]) {
    for (const s of shares) this.allocated.set(s.tenantId, (this.allocated.get(s.tenantId) ?? 0) + s.allocatedCostNanoUsd);
  }
  async commitWhole(plan: HourAllocation) {
    const k = `${plan.endpointName}|${plan.hour}`;
    if (this.markers.has(k)) return { kind: "exists" as const };
    this.transactions++;
    this.markers.set(k, { status: "complete", plan: structuredClone(plan) });
    this.add(plan.shares);
    return { kind: "committed" as const };
  }
  async recordPlan(plan: HourAllocation) {
    const k = `${plan.endpointName}|${plan.hour}`;
    if (this.markers.has(k)) return false;
    this.markers.set(k, { status: "pending", plan: structuredClone(plan) });
    return true;
  }
  async commitShares(plan: HourAllocation, shares: readonly TenantShare[]): Promise<ShareCommitResult> {
    const injected = this.beforeShares?.(this.transactions);
    if (injected) return injected;
    const keyOf = (s: TenantShare) => `${plan.endpointName}|${plan.hour}|${s.tenantId}`;
    const written = shares.filter((s) => this.shareRecords.has(keyOf(s))).map((s) => s.tenantId);
    if (written.length) return { kind: "already-written", tenantIds: written };
    if (shares.length * this.itemsPerShare > 100) throw new Error("transaction too large");
    this.transactions++;
    for (const s of shares) this.shareRecords.add(keyOf(s));
    this.add(shares);
    return { kind: "committed" };
  }
  async complete(plan: HourAllocation) {
    const m = this.markers.get(`${plan.endpointName}|${plan.hour}`)!;
    m.status = "complete";
  }
}

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
    again.markers.set(`${EP}|${HOUR}`, { status: "pending", plan });
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
