import type { AggregateDelta } from "./coalesce";
import type { PricedEvent, UsageCounters } from "./model";

/** Outcome of one transactional write of a chunk. */
export type CommitResult =
  /** Everything committed; `duplicates` were already in the ledger and were not counted. */
  | { kind: "committed"; duplicates: string[] }
  /** The transaction was cancelled only because these ledger items exist: drop them and retry. */
  | { kind: "duplicates"; duplicates: string[] }
  /** Cancelled by a conflict or throttling: retry the same chunk after a backoff. */
  | { kind: "retryable"; reason: string };

export interface QuarantineRecord {
  messageId: string;
  receivedAt: string;
  reason: string;
  message: string;
  body: string;
  source?: string;
  tenantId?: string;
  eventId?: string;
}

/** Port: where the ingest service records events and their aggregates. */
export interface UsageStore {
  /**
   * Writes, atomically, a ledger entry per event (only if absent) and the aggregate deltas.
   * Either all of it lands or none of it does.
   */
  commit(events: readonly PricedEvent[], deltas: readonly AggregateDelta[]): Promise<CommitResult>;
  quarantine(record: QuarantineRecord): Promise<void>;
}

export interface UsageTotals {
  requests: number;
  inputTokens: number;
  outputTokens: number;
  cacheReadInputTokens: number;
  cacheWriteInputTokens: number;
  costUsd: number;
  costNanoUsd: number;
  allocatedCostUsd: number;
  unpricedRequests: number;
  estimatedRequests: number;
}

export interface AggregateRow {
  tenantId: string;
  period: string;
  modelId?: string;
  counters: UsageCounters;
}

export interface Page<T> {
  items: T[];
  cursor?: string;
}

/** Port: reads of aggregates for the usage API and billing. */
export interface UsageReader {
  tenantPeriods(tenantId: string, granularity: "month" | "day" | "hour", from: string, to: string): Promise<AggregateRow[]>;
  modelPeriods(tenantId: string, granularity: "month" | "day", from: string, to: string): Promise<AggregateRow[]>;
  monthOfAllTenants(month: string, limit: number, cursor?: string): Promise<Page<AggregateRow>>;
  quarantined(day: string, limit: number, cursor?: string): Promise<Page<QuarantineRecord>>;
}
