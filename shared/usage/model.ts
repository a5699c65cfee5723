import type { InvocationEventV1 } from "../events/invocation";
import type { PricingDimensions } from "../pricing/catalog";

/** Counters kept on every aggregate item. Costs are integer nano-USD (1e-9 USD). */
export interface UsageCounters {
  requests: number;
  inputTokens: number;
  outputTokens: number;
  cacheReadInputTokens: number;
  cacheWriteInputTokens: number;
  /** The part of `cacheWriteInputTokens` written with a 1-hour TTL. */
  cacheWrite1hInputTokens: number;
  /** Pay-per-token cost from the price catalog. */
  costNanoUsd: number;
  /** Fixed endpoint cost shared to the tenant by the allocation job (issue 5). */
  allocatedCostNanoUsd: number;
  /** Calls whose model had no price (flagged, never priced at $0 silently). */
  unpricedRequests: number;
  /** Calls with an estimated token count. */
  estimatedRequests: number;
  /** Model inference time, the basis for sharing fixed endpoint cost. */
  inferenceMs: number;
}

export const COUNTER_NAMES: readonly (keyof UsageCounters)[] = [
  "requests",
  "inputTokens",
  "outputTokens",
  "cacheReadInputTokens",
  "cacheWriteInputTokens",
  "cacheWrite1hInputTokens",
  "costNanoUsd",
  "allocatedCostNanoUsd",
  "unpricedRequests",
  "estimatedRequests",
  "inferenceMs",
];

export function zeroCounters(): UsageCounters {
  return {
    requests: 0,
    inputTokens: 0,
    outputTokens: 0,
    cacheReadInputTokens: 0,
    cacheWriteInputTokens: 0,
    cacheWrite1hInputTokens: 0,
    costNanoUsd: 0,
    allocatedCostNanoUsd: 0,
    unpricedRequests: 0,
    estimatedRequests: 0,
    inferenceMs: 0,
  };
}

export function addCounters(into: UsageCounters, add: Partial<UsageCounters>): UsageCounters {
  for (const k of COUNTER_NAMES) into[k] += add[k] ?? 0;
  return into;
}

export function subtract(from: UsageCounters, take: Partial<UsageCounters>): UsageCounters {
  for (const k of COUNTER_NAMES) from[k] -= take[k] ?? 0;
  return from;
}

/** An invocation event after validation and pricing: what the ingest service counts. */
export interface PricedEvent {
  event: InvocationEventV1;
  /** Catalog base model the price was looked up for (inference profiles resolved). */
  baseModelId: string;
  counters: UsageCounters;
  /** Why the event carries no per-token cost, if it does not. */
  unpricedReason?: "unknown-model" | "fixed-cost";
  /** What besides model and tokens set the price (kept on an unpriced ledger entry, so a reprice uses the same). */
  pricing?: PricingDimensions;
}

/**
 * Aggregate targets, all keyed by event time:
 * - tenant x {month, day, hour}
 * - tenant x model x {month, day, hour} (hour: for reconciliation against AWS's per-model metrics)
 * - endpoint x hour x tenant (SageMaker only), read by the fixed-cost allocation job
 * - tenant x minute (noisy-neighbour windows, with TTL)
 */
export type AggregateTarget =
  | { kind: "tenant"; tenantId: string; granularity: "month" | "day" | "hour"; period: string }
  | { kind: "model"; tenantId: string; granularity: "month" | "day" | "hour"; period: string; modelId: string }
  | { kind: "endpoint"; tenantId: string; endpointName: string; hour: string }
  | { kind: "minute"; tenantId: string; minute: string };
