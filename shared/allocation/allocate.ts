import { hourCapacityMs, hourCostNanoUsd, type AllocationBasis, type FixedCostEndpoint } from "./endpoints";

/** One tenant's use of one endpoint-hour (the ingest's `ENDPOINT#<name>#<hour>` items). */
export interface TenantHourUsage {
  tenantId: string;
  requests: number;
  inputTokens: number;
  outputTokens: number;
  inferenceMs: number;
}

export interface TenantShare {
  tenantId: string;
  /** Basis units the tenant used (ms of inference, or tokens). */
  weight: number;
  allocatedCostNanoUsd: number;
}

/** How one endpoint-hour's cost is shared; stored on the allocation marker as the plan. */
export interface HourAllocation {
  endpointName: string;
  hour: string; // yyyy-mm-ddTHH
  instanceType: string;
  instanceCount: number;
  rate: FixedCostEndpoint["rate"];
  hourCostNanoUsd: number;
  /** The basis actually used (falls back when every tenant has 0 of the configured one). */
  basis: AllocationBasis | "requests" | "none";
  /** Sorted by tenantId; sums exactly to `hourCostNanoUsd`, or is empty when nobody used the hour. */
  shares: TenantShare[];
  usedInferenceMs: number;
  capacityMs: number;
  /** Cost of the unused capacity: informational, the tenants' shares still cover the whole hour. */
  idleCostNanoUsd: number;
}

export const HOUR_PATTERN = /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3])$/;

function weightOf(u: TenantHourUsage, basis: AllocationBasis | "requests"): number {
  if (basis === "inferenceMs") return u.inferenceMs;
  if (basis === "tokens") return u.inputTokens + u.outputTokens;
  return u.requests;
}

/**
 * Splits `total` (integer) in proportion to integer `weights` with the largest-remainder
 * method: everyone gets floor(total * w / W), the leftover units go one each to the largest
 * remainders (ties: lower index first, i.e. tenantId order). The result sums to `total`
 * exactly. BigInt because total * w overflows 2^53 (1.6e10 nano-USD x 1.8e7 ms).
 */
export function largestRemainder(total: number, weights: readonly number[]): number[] {
  if (!Number.isSafeInteger(total) || total < 0) throw new RangeError(`total must be a non-negative safe integer, got ${total}`);
  for (const w of weights) {
    if (!Number.isSafeInteger(w) || w < 0) throw new RangeError(`weights must be non-negative safe integers, got ${w}`);
  }
  const W = weights.reduce((s, w) => s + BigInt(w), 0n);
  if (W === 0n) throw new RangeError("at least one weight must be positive");
  const T = BigInt(total);
  const floors = weights.map((w) => (T * BigInt(w)) / W);
  const rems = weights.map((w, i) => ({ i, r: (T * BigInt(w)) % W }));
  let left = T - floors.reduce((s, f) => s + f, 0n); // < number of weights
  rems.sort((a, b) => (a.r === b.r ? a.i - b.i : a.r > b.r ? -1 : 1));
  for (const { i } of rems) {
    if (left === 0n) break;
    floors[i] += 1n;
    left -= 1n;
  }
  return floors.map(Number);
}

/**
 * Shares one endpoint-hour's cost (rate x instances) among its tenants by the endpoint's
 * basis. When every tenant has 0 of that basis (e.g. latency not reported), it falls back to
 * tokens, then requests, so a used hour is never left unallocated. Idle = the share of the
 * hour's concurrent-sequence capacity nobody used, priced at the hour's cost.
 */
export function allocateHour(endpoint: FixedCostEndpoint, hour: string, usage: readonly TenantHourUsage[]): HourAllocation {
  if (!HOUR_PATTERN.test(hour)) throw new RangeError(`hour must be yyyy-mm-ddTHH, got '${hour}'`);
  return splitHour(
    {
      endpointName: endpoint.endpointName,
      hour,
      instanceType: endpoint.instanceType,
      instanceCount: endpoint.instanceCount,
      rate: endpoint.rate,
      hourCostNanoUsd: hourCostNanoUsd(endpoint),
      capacityMs: hourCapacityMs(endpoint),
    },
    endpoint.basis,
    usage,
  );
}

/** What an hour's split is made of before usage is known: the hour's cost and capacity. */
export type HourTerms = Pick<
  HourAllocation,
  "endpointName" | "hour" | "instanceType" | "instanceCount" | "rate" | "hourCostNanoUsd" | "capacityMs"
>;

/**
 * Splits an hour whose cost and capacity are given (`terms`) among `usage` by `preferred`
 * basis (with the fallbacks of `allocateHour`). Re-allocation calls it with the terms stored
 * on the hour's first plan, so a later catalog change does not re-price past hours.
 */
export function splitHour(terms: HourTerms, preferred: AllocationBasis, usage: readonly TenantHourUsage[]): HourAllocation {
  const cost = terms.hourCostNanoUsd;
  const capacityMs = terms.capacityMs;
  const tenants = [...usage].sort((a, b) => (a.tenantId < b.tenantId ? -1 : a.tenantId > b.tenantId ? 1 : 0));
  for (let i = 1; i < tenants.length; i++) {
    if (tenants[i].tenantId === tenants[i - 1].tenantId) throw new RangeError(`tenant ${tenants[i].tenantId} listed twice`);
  }
  const usedInferenceMs = tenants.reduce((s, u) => s + u.inferenceMs, 0);
  const base = {
    endpointName: terms.endpointName,
    hour: terms.hour,
    instanceType: terms.instanceType,
    instanceCount: terms.instanceCount,
    rate: terms.rate,
    hourCostNanoUsd: cost,
    usedInferenceMs,
    capacityMs,
  };

  const order: (AllocationBasis | "requests")[] =
    preferred === "inferenceMs" ? ["inferenceMs", "tokens", "requests"] : ["tokens", "inferenceMs", "requests"];
  const basis = order.find((b) => tenants.some((u) => weightOf(u, b) > 0));
  if (!basis) return { ...base, basis: "none", shares: [], idleCostNanoUsd: cost };

  const users = tenants.filter((u) => weightOf(u, basis) > 0);
  const weights = users.map((u) => weightOf(u, basis));
  const amounts = largestRemainder(cost, weights);
  const idleMs = Math.max(0, capacityMs - Math.round(usedInferenceMs));
  // idle cost = cost x idleMs / capacityMs, rounded half up, in integers
  const idleCostNanoUsd = Number((BigInt(cost) * BigInt(idleMs) * 2n + BigInt(capacityMs)) / (2n * BigInt(capacityMs)));
  return {
    ...base,
    basis,
    shares: users.map((u, i) => ({ tenantId: u.tenantId, weight: weights[i], allocatedCostNanoUsd: amounts[i] })),
    idleCostNanoUsd,
  };
}
