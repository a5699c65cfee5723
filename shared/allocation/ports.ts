import type { HourAllocation, TenantHourUsage, TenantShare } from "./allocate";

/** State of an endpoint-hour's allocation, as recorded on its marker. */
export type AllocationState =
  | { status: "absent" }
  /** The plan is fixed (stored) but not every tenant's share has landed yet. */
  | { status: "pending"; plan: HourAllocation }
  | { status: "complete"; plan: HourAllocation };

/** Outcome of writing one chunk of tenant shares. */
export type ShareCommitResult =
  | { kind: "committed" }
  /** Cancelled only because these tenants' shares were already written (by an earlier or concurrent run). */
  | { kind: "already-written"; tenantIds: string[] }
  /** Conflict or throttling: retry the same chunk after a backoff. */
  | { kind: "retryable"; reason: string };

/**
 * Port: where the allocation job reads an endpoint-hour's usage and records its shares.
 * Exactly-once per endpoint-hour rests on the store: the marker and the per-tenant share
 * records are written only if absent, in the same transaction as the cost they account for.
 */
export interface AllocationStore {
  /** Per-tenant usage of the endpoint-hour (every tenant item, all pages). */
  readUsage(endpointName: string, hour: string): Promise<TenantHourUsage[]>;
  readState(endpointName: string, hour: string): Promise<AllocationState>;
  /** Tenants whose share of this endpoint-hour has already been written (resume after a crash). */
  writtenShares(endpointName: string, hour: string): Promise<Set<string>>;
  /**
   * One transaction: the marker as `complete` (only if absent) plus every share's ADDs.
   * `exists`: the marker was already there, nothing was written.
   */
  commitWhole(plan: HourAllocation): Promise<{ kind: "committed" } | { kind: "exists" } | { kind: "retryable"; reason: string }>;
  /** Records the plan on the marker as `pending` (only if absent); false if a marker existed. */
  recordPlan(plan: HourAllocation): Promise<boolean>;
  /** One transaction per call: each share's record (only if absent) plus its ADDs. */
  commitShares(plan: HourAllocation, shares: readonly TenantShare[]): Promise<ShareCommitResult>;
  /** Marks a pending marker complete (no-op if it already is). */
  complete(plan: HourAllocation): Promise<void>;
  /** Items one tenant's share writes in a transaction (its record + its aggregate ADDs). */
  readonly itemsPerShare: number;
}
