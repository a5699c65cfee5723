import type { HourAllocation, TenantHourUsage, TenantShare } from "../../../shared/allocation/allocate";
import type { AllocationState, AllocationStore, ReallocationCommitResult, ShareCommitResult } from "../../../shared/allocation/ports";
import type { Reallocation, TenantDelta } from "../../../shared/allocation/reallocate";

type Marker = { status: "pending" | "complete"; version: number; plan: HourAllocation };

/** In-memory allocation store with the same conditional semantics the DynamoDB adapter has. */
export class MemoryStore implements AllocationStore {
  readonly itemsPerShare = 6;
  usage = new Map<string, TenantHourUsage[]>();
  markers = new Map<string, Marker>();
  shareRecords = new Set<string>();
  /** `${endpoint}|${hour}|${version}` -> deltas (the change records) */
  changes = new Map<string, TenantDelta[]>();
  deltaRecords = new Set<string>();
  /** tenant -> summed allocated cost (what the aggregates would hold) */
  allocated = new Map<string, number>();
  transactions = 0;
  /** Injected faults: called before each commitShares; may throw or return a result. */
  beforeShares?: (n: number) => ShareCommitResult | undefined;
  /** Injected faults: called before each commitDeltas; may throw or return a result. */
  beforeDeltas?: (n: number) => ShareCommitResult | undefined;

  async readUsage(e: string, h: string) {
    return structuredClone(this.usage.get(`${e}|${h}`) ?? []);
  }
  async readState(e: string, h: string): Promise<AllocationState> {
    const m = this.markers.get(`${e}|${h}`);
    return m ? { status: m.status, version: m.version, plan: structuredClone(m.plan) } : { status: "absent" };
  }
  async writtenShares(e: string, h: string) {
    return new Set([...this.shareRecords].filter((k) => k.startsWith(`${e}|${h}|`)).map((k) => k.split("|")[2]));
  }
  private add(tenantId: string, amount: number) {
    this.allocated.set(tenantId, (this.allocated.get(tenantId) ?? 0) + amount);
  }
  async commitWhole(plan: HourAllocation) {
    const k = `${plan.endpointName}|${plan.hour}`;
    if (this.markers.has(k)) return { kind: "exists" as const };
    this.transactions++;
    this.markers.set(k, { status: "complete", version: 1, plan: structuredClone(plan) });
    for (const s of plan.shares) this.add(s.tenantId, s.allocatedCostNanoUsd);
    return { kind: "committed" as const };
  }
  async recordPlan(plan: HourAllocation) {
    const k = `${plan.endpointName}|${plan.hour}`;
    if (this.markers.has(k)) return false;
    this.markers.set(k, { status: "pending", version: 1, plan: structuredClone(plan) });
    return true;
  }
  async commitShares(plan: HourAllocation, shares: readonly TenantShare[]): Promise<ShareCommitResult> {
    return (
      this.beforeShares?.(this.transactions) ??
      this.commitRecorded(
        this.shareRecords,
        `${plan.endpointName}|${plan.hour}|`,
        shares.map((s) => ({ tenantId: s.tenantId, amount: s.allocatedCostNanoUsd })),
      )
    );
  }
  /** As the adapter's transaction: every entry's record (only if absent) and its ADD, or nothing. */
  private commitRecorded(records: Set<string>, prefix: string, entries: readonly { tenantId: string; amount: number }[]): ShareCommitResult {
    const written = entries.filter((e) => records.has(prefix + e.tenantId)).map((e) => e.tenantId);
    if (written.length) return { kind: "already-written", tenantIds: written };
    if (entries.length * this.itemsPerShare > 100) throw new Error("transaction too large");
    this.transactions++;
    for (const e of entries) {
      records.add(prefix + e.tenantId);
      this.add(e.tenantId, e.amount);
    }
    return { kind: "committed" };
  }
  async complete(plan: HourAllocation, version: number) {
    const m = this.markers.get(`${plan.endpointName}|${plan.hour}`);
    if (m && m.status === "pending" && m.version === version) m.status = "complete";
    else if (!m || m.version < version) throw new Error(`complete(${version}) on marker ${JSON.stringify(m && { ...m, plan: undefined })}`);
  }
  private move(change: Reallocation, status: "pending" | "complete"): ReallocationCommitResult {
    const k = `${change.endpointName}|${change.hour}`;
    const m = this.markers.get(k);
    if (!m || m.status !== "complete" || m.version !== change.fromVersion) return { kind: "superseded" };
    const ck = `${k}|${change.version}`;
    if (this.changes.has(ck)) throw new Error(`change record ${ck} exists`);
    this.markers.set(k, { status, version: change.version, plan: structuredClone(change.plan) });
    this.changes.set(ck, structuredClone(change.deltas));
    return { kind: "committed" };
  }
  async commitReallocationWhole(change: Reallocation) {
    const r = this.move(change, "complete");
    if (r.kind !== "committed") return r;
    this.transactions++;
    for (const d of change.deltas) this.add(d.tenantId, d.deltaNanoUsd);
    return r;
  }
  async recordReallocation(change: Reallocation) {
    const r = this.move(change, "pending");
    if (r.kind === "committed") this.transactions++;
    return r;
  }
  async readReallocationDeltas(e: string, h: string, version: number) {
    const d = this.changes.get(`${e}|${h}|${version}`);
    if (!d) throw new Error("no change record");
    return structuredClone(d);
  }
  async writtenDeltas(e: string, h: string, version: number) {
    const p = `${e}|${h}|${version}|`;
    return new Set([...this.deltaRecords].filter((k) => k.startsWith(p)).map((k) => k.slice(p.length)));
  }
  async commitDeltas(change: Reallocation, deltas: readonly TenantDelta[]): Promise<ShareCommitResult> {
    return (
      this.beforeDeltas?.(this.transactions) ??
      this.commitRecorded(
        this.deltaRecords,
        `${change.endpointName}|${change.hour}|${change.version}|`,
        deltas.map((d) => ({ tenantId: d.tenantId, amount: d.deltaNanoUsd })),
      )
    );
  }
}
