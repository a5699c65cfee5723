import type { HourAllocation, TenantHourUsage, TenantShare } from "./allocate";
import type { Reallocation, TenantDelta } from "./reallocate";

/**
 * State of an endpoint-hour's allocation, as recorded on its marker. `version` 1 is the first
 * split; each re-allocation after late usage adds one (markers written before versions existed
 * read as 1).
 */
export type AllocationState =
  | { status: "absent" }
  /** The plan of `version` is fixed (stored) but not every tenant's share or delta has landed yet. */
  | { status: "pending"; version: number; plan: HourAllocation }
  | { status: "complete"; version: number; plan: HourAllocation };

/** Outcome of writing one chunk of tenant shares. */
export type ShareCommitResult =
  | { kind: "committed" }
  /** Cancelled only because these tenants' shares were already written (by an earlier or concurrent run). */
  | { kind: "already-written"; tenantIds: string[] }
  /** Conflict or throttling: retry the same chunk after a backoff. */
  | { kind: "retryable"; reason: string };

export type ReallocationCommitResult =
  | { kind: "committed" }
  /** Another run moved the marker first (or it was pending): nothing was written. */
  | { kind: "superseded" }
  | { kind: "retryable"; reason: string };

/**
 * Port: where the allocation job reads an endpoint-hour's usage and records its shares.
 * Exactly-once per endpoint-hour rests on the store: the marker and the per-tenant share
 * records are written only if absent, in the same transaction as the cost they account for.
 * A re-allocation moves the marker only from a complete version to the next, and each tenant's
 * delta of a version rides on a record of that version written only if absent.
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
  /**
   * Marks the marker complete if it is pending at `version`; a no-op if that version (or a
   * later one) is already complete.
   */
  complete(plan: HourAllocation, version: number): Promise<void>;

  /**
   * One transaction: the marker moves from `fromVersion` (complete) to `version` (complete)
   * with the new plan, the change record is created, and every delta is added.
   * `superseded`: the marker was no longer complete at `fromVersion`; nothing was written.
   */
  commitReallocationWhole(change: Reallocation): Promise<ReallocationCommitResult>;
  /**
   * One transaction: the marker moves from `fromVersion` (complete) to `version` (pending) with
   * the new plan, and the change record (the deltas) is created. Deltas are written after.
   */
  recordReallocation(change: Reallocation): Promise<ReallocationCommitResult>;
  /** The deltas of `version` (>= 2) as fixed when it was recorded, for a resume. */
  readReallocationDeltas(endpointName: string, hour: string, version: number): Promise<TenantDelta[]>;
  /** Tenants whose delta of `version` has already been added. */
  writtenDeltas(endpointName: string, hour: string, version: number): Promise<Set<string>>;
  /** One transaction per call: each delta's record for `change.version` (only if absent) plus its ADDs. */
  commitDeltas(change: Reallocation, deltas: readonly TenantDelta[]): Promise<ShareCommitResult>;
  /** Items one tenant's share writes in a transaction (its record + its aggregate ADDs). */
  readonly itemsPerShare: number;
}
