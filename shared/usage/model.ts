import type { InvocationEventV1, InvocationOrigin, InvocationSource } from "../events/invocation";
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
  /** Why the catalog could not price it (its own words: model, scope, tier, region, day, or an unmapped profile). */
  unpricedDetail?: string;
  /** The envelope's source that delivered this report (absent outside the ingest, e.g. a reprice). */
  source?: InvocationSource;
  /**
   * The other path's source, when the ledger entry this event writes or updates records that the
   * other path reported the same call too (both in one batch, or an exact log record correcting a
   * wrapper's estimate). Diagnostic only (see `SourceCounts`).
   */
  crossSource?: InvocationSource;
}

/**
 * Per tenant and UTC day, on the tenant-day aggregate item: calls by the path that counted them
 * first, and calls the other path reported later. Diagnostic (which calls only one path saw), never
 * billing. `wrapperFirst + logFirst` = calls counted since sources were recorded.
 */
export interface SourceCounts {
  wrapperFirst: number;
  logFirst: number;
  /** Counted from a wrapper event, then the invocation log reported it too. */
  logAfterWrapper: number;
  /** Counted from the invocation log, then a wrapper event reported it too. */
  wrapperAfterLog: number;
}

export const SOURCE_COUNT_NAMES: readonly (keyof SourceCounts)[] = ["wrapperFirst", "logFirst", "logAfterWrapper", "wrapperAfterLog"];

/** Attribute names on the tenant-day item (kept apart from the usage counters: no other aggregate carries them). */
export const SOURCE_COUNT_ATTRIBUTES: Record<keyof SourceCounts, string> = {
  wrapperFirst: "callsWrapperFirst",
  logFirst: "callsLogFirst",
  logAfterWrapper: "callsLogAfterWrapper",
  wrapperAfterLog: "callsWrapperAfterLog",
};

export function zeroSourceCounts(): SourceCounts {
  return { wrapperFirst: 0, logFirst: 0, logAfterWrapper: 0, wrapperAfterLog: 0 };
}

/** The counter a call counted first from `origin` adds to. */
export function firstCounter(origin: InvocationOrigin): keyof SourceCounts {
  return origin === "wrapper" ? "wrapperFirst" : "logFirst";
}

/** The counter a call adds to when `later` reports it after the other path counted it. */
export function laterCounter(later: InvocationOrigin): keyof SourceCounts {
  return later === "log" ? "logAfterWrapper" : "wrapperAfterLog";
}

/**
 * The day's calls by who saw them: only a wrapper (the log never came: logging off, or lost), only
 * the log (the call bypassed the wrappers, or the wrapper's event was lost), both. Calls counted
 * before sources were recorded are `untracked` (from the day's `requests`). Never negative: a
 * crash between the mark and the count of a later report (see `shared/usage/README.md`) can only
 * leave a call in a one-path figure.
 */
export function sourceSplit(c: SourceCounts, requests: number): { wrapperOnly: number; logOnly: number; both: number; untracked: number } {
  return {
    wrapperOnly: Math.max(0, c.wrapperFirst - c.logAfterWrapper),
    logOnly: Math.max(0, c.logFirst - c.wrapperAfterLog),
    both: c.logAfterWrapper + c.wrapperAfterLog,
    untracked: Math.max(0, requests - c.wrapperFirst - c.logFirst),
  };
}

/**
 * Aggregate targets, all keyed by event time:
 * - tenant x {month, day, hour}
 * - tenant x model x {month, day, hour} (hour: for reconciliation against AWS's per-model metrics)
 * - endpoint x hour x tenant (SageMaker only), read by the fixed-cost allocation job
 * The noisy-neighbour minute windows are attributes of the tenant-hour item (see minute-window.ts).
 */
export type AggregateTarget =
  | { kind: "tenant"; tenantId: string; granularity: "month" | "day" | "hour"; period: string }
  | { kind: "model"; tenantId: string; granularity: "month" | "day" | "hour"; period: string; modelId: string }
  | { kind: "endpoint"; tenantId: string; endpointName: string; hour: string };

/**
 * A tenant's month and tenant-hour aggregate items as an ingest call's updates returned them,
 * by period: the quota evaluation after the batch uses them instead of reading them again.
 */
export interface WrittenItems {
  months: Record<string, Record<string, unknown>>;
  hours: Record<string, Record<string, unknown>>;
}

/** The tenant-day aggregate item (the one that also carries the source counters). */
export function tenantDayTarget(tenantId: string, day: string): AggregateTarget {
  return { kind: "tenant", tenantId, granularity: "day", period: day };
}
