import { splitHour, type HourAllocation, type TenantHourUsage, type TenantShare } from "./allocate";
import type { FixedCostEndpoint } from "./endpoints";

/** How one tenant's share of an endpoint-hour moves from one plan version to the next. */
export interface TenantDelta {
  tenantId: string;
  previousNanoUsd: number;
  nextNanoUsd: number;
  /** next - previous; negative when the tenant loses share to late usage of others. */
  deltaNanoUsd: number;
}

/**
 * A re-allocation of an endpoint-hour: version `version` replaces the complete version
 * `fromVersion` (= version - 1). Applying every delta once to the tenants' aggregates turns
 * the old plan's totals into the new plan's.
 */
export interface Reallocation {
  endpointName: string;
  hour: string;
  fromVersion: number;
  version: number;
  plan: HourAllocation;
  /** Sorted by tenantId; only tenants whose share changed. */
  deltas: TenantDelta[];
}

/**
 * Per-tenant differences between two plans' shares (tenants absent from a plan hold 0).
 * The deltas sum to next total - previous total: 0 when both plans split the same hour cost,
 * the whole cost when the previous plan had nobody to charge (an idle hour that got late use).
 */
export function shareDeltas(previous: readonly TenantShare[], next: readonly TenantShare[]): TenantDelta[] {
  const amounts = new Map<string, { previousNanoUsd: number; nextNanoUsd: number }>();
  const add = (shares: readonly TenantShare[], side: "previousNanoUsd" | "nextNanoUsd") => {
    const seen = new Set<string>();
    for (const s of shares) {
      if (seen.has(s.tenantId)) throw new RangeError(`tenant ${s.tenantId} listed twice in one plan`);
      seen.add(s.tenantId);
      const e = amounts.get(s.tenantId) ?? { previousNanoUsd: 0, nextNanoUsd: 0 };
      e[side] = s.allocatedCostNanoUsd;
      amounts.set(s.tenantId, e);
    }
  };
  add(previous, "previousNanoUsd");
  add(next, "nextNanoUsd");
  return [...amounts.entries()]
    .map(([tenantId, a]) => ({ tenantId, ...a, deltaNanoUsd: a.nextNanoUsd - a.previousNanoUsd }))
    .filter((d) => d.deltaNanoUsd !== 0)
    .sort((a, b) => (a.tenantId < b.tenantId ? -1 : a.tenantId > b.tenantId ? 1 : 0));
}

/**
 * Splits an already-allocated hour again from current usage. The hour's cost, capacity and
 * instances come from the stored plan (a later catalog change must not re-price past hours);
 * only the basis preference comes from the catalog entry.
 */
export function reallocateHour(previous: HourAllocation, endpoint: FixedCostEndpoint, usage: readonly TenantHourUsage[]): HourAllocation {
  // the stored plan carries the hour's terms (`HourTerms` is a subset of `HourAllocation`)
  return splitHour(previous, endpoint.basis, usage);
}

/**
 * Whether `next` splits the hour differently from `previous`. The stored plan carries every
 * tenant's basis weight, so this is the "usage changed" test without any extra fingerprint:
 * late usage that does not touch the basis (e.g. requests without latency when sharing by
 * inference time) changes nothing and writes nothing.
 */
export function splitChanged(previous: HourAllocation, next: HourAllocation): boolean {
  if (previous.basis !== next.basis || previous.usedInferenceMs !== next.usedInferenceMs) return true;
  if (previous.idleCostNanoUsd !== next.idleCostNanoUsd || previous.shares.length !== next.shares.length) return true;
  return previous.shares.some((s, i) => {
    const n = next.shares[i];
    return s.tenantId !== n.tenantId || s.weight !== n.weight || s.allocatedCostNanoUsd !== n.allocatedCostNanoUsd;
  });
}

/**
 * The re-allocation that brings a complete plan (at `version`) up to date with `usage`, or
 * undefined when the split would not change.
 */
export function planReallocation(
  current: { version: number; plan: HourAllocation },
  endpoint: FixedCostEndpoint,
  usage: readonly TenantHourUsage[],
): Reallocation | undefined {
  const next = reallocateHour(current.plan, endpoint, usage);
  if (!splitChanged(current.plan, next)) return undefined;
  return {
    endpointName: current.plan.endpointName,
    hour: current.plan.hour,
    fromVersion: current.version,
    version: current.version + 1,
    plan: next,
    deltas: shareDeltas(current.plan.shares, next.shares),
  };
}
