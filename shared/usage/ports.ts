import type { RecordShape } from "./quarantine";
import type { AggregateDelta } from "./coalesce";
import type { PricingDimensions } from "../pricing/catalog";
import type { InvocationSource } from "../events/invocation";
import type { PricedEvent, SourceCounts, UsageCounters } from "./model";

/**
 * Who holds an event's ledger entry: the ingest run that claimed it and the aggregate group
 * of that run it is counted in. The group's commit marker says whether it was counted.
 */
export interface Claim {
  run: string;
  group: number;
}

/** A ledger entry that already exists. `run` is absent on entries written before claims. */
export interface LedgerHolder {
  run?: string;
  group?: number;
  claimedAt?: string;
  /** Present when the entry counted estimated tokens: what it counted, so exact counts can replace it. */
  estimate?: CountedEstimate;
  /** The envelope source that claimed the entry (absent on entries written before sources were recorded). */
  source?: InvocationSource;
  /** Set once the other path reported the same call too. */
  crossSource?: InvocationSource;
  /** Event time the entry counted (its tenant-day). */
  occurredAt?: string;
}

/** What an estimated ledger entry added to the aggregates (the fields its targets depend on). */
export interface CountedEstimate {
  occurredAt: string;
  provider: "bedrock" | "sagemaker";
  modelId: string;
  endpointName?: string;
  counters: UsageCounters;
  /** Pricing dimensions of an unpriced entry (region, service tier, invoked model), so a reprice prices it as the ingest would have. */
  pricing?: PricingDimensions;
}

/** Outcome of replacing a counted estimate by exact counts. */
export type CorrectResult = { kind: "corrected" } | { kind: "already" } | { kind: "retryable"; reason: string };

/** Most ledger entries `insertLedgers` writes in one request (PartiQL BatchExecuteStatement). */
export const LEDGER_BATCH_MAX = 25;

export type LedgerWrite = { kind: "created" } | { kind: "exists"; holder: LedgerHolder };

/** State of a group's commit marker: its aggregates landed, or they never will. */
export type MarkerState = "committed" | "aborted";

/** Outcome of one transactional write of a group's aggregates. */
export type ApplyResult =
  /** The committed marker and every aggregate delta landed together. */
  | { kind: "committed" }
  /** The marker already existed (nothing was written): its state decides. */
  | { kind: "marked"; state: MarkerState }
  /** Cancelled by a conflict or throttling: retry the same write after a backoff. */
  | { kind: "retryable"; reason: string };

/**
 * A record kept for an operator, never its content: ids, reason, and the record's shape (field
 * names and sizes, see `quarantine.ts`). No prompt or completion text can be stored here.
 */
export interface QuarantineRecord {
  messageId: string;
  receivedAt: string;
  reason: string;
  message: string;
  shape: RecordShape;
  source?: string;
  detailType?: string;
  tenantId?: string;
  eventId?: string;
}

/**
 * Port: where the ingest service records events and their aggregates. Two phases (see
 * `shared/usage/README.md`): each event's ledger entry is claimed for a group of the run,
 * then the group's aggregate deltas land in one transaction with its commit marker.
 */
export interface UsageStore {
  /** Writes the event's ledger entry held by `claim`, only if absent; else reports its holder. */
  putLedger(event: PricedEvent, claim: Claim, now: Date): Promise<LedgerWrite>;
  /**
   * `putLedger` for up to `LEDGER_BATCH_MAX` events in one request (distinct events, each held
   * by its own claim: the groups of a run share requests). Each event gets its own outcome; an
   * `error` means its write did not happen or is unknown.
   */
  insertLedgers(entries: readonly { event: PricedEvent; claim: Claim }[], now: Date): Promise<(LedgerWrite | { kind: "error"; error: string })[]>;
  /** Rewrites the ledger entry for `to`, only if `from` still holds it; false if it does not. */
  moveLedger(event: PricedEvent, from: Claim, to: Claim, now: Date): Promise<boolean>;
  /** The group's marker, read strongly consistent; undefined while the group is undecided. */
  marker(claim: Claim): Promise<MarkerState | undefined>;
  /** Marks the group aborted unless it has a marker already; returns the state now stored. */
  abort(claim: Claim, now: Date): Promise<MarkerState>;
  /** Atomically: the group's committed marker (only if absent) plus the aggregate deltas. */
  apply(claim: Claim, deltas: readonly AggregateDelta[], now: Date): Promise<ApplyResult>;
  /**
   * Atomically, once: marks the event's ledger entry (still held by `held` and still an
   * estimate) exact, and adds `deltas` (exact minus estimated) to the aggregates.
   */
  correct(event: PricedEvent, held: Claim, deltas: readonly AggregateDelta[], now: Date): Promise<CorrectResult>;
  quarantine(record: QuarantineRecord): Promise<void>;
  /**
   * Marks a counted event's ledger entry as reported by `source` too (the path that did not claim
   * it), only if it exists, was claimed by the other path, and is not marked yet. True when this
   * call set the mark: the caller counts it once (see `addSourceCounts`).
   */
  markCrossSource(tenantId: string, eventId: string, source: InvocationSource, now: Date): Promise<boolean>;
  /** Adds to the source counters of a tenant-day aggregate item (diagnostic; not exactly once on its own). */
  addSourceCounts(tenantId: string, day: string, counts: SourceCounts, now: Date): Promise<void>;
}

export interface UsageTotals {
  requests: number;
  inputTokens: number;
  outputTokens: number;
  cacheReadInputTokens: number;
  cacheWriteInputTokens: number;
  cacheWrite1hInputTokens: number;
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
  /** Tenant-day items that counted calls since sources were recorded: which path reported them. */
  sources?: SourceCounts;
}

export interface Page<T> {
  items: T[];
  cursor?: string;
}

/** Port: reads of aggregates for the usage API and billing. */
export interface UsageReader {
  tenantPeriods(tenantId: string, granularity: "month" | "day" | "hour", from: string, to: string): Promise<AggregateRow[]>;
  modelPeriods(tenantId: string, granularity: "month" | "day" | "hour", from: string, to: string): Promise<AggregateRow[]>;
  monthOfAllTenants(month: string, limit: number, cursor?: string): Promise<Page<AggregateRow>>;
  quarantined(day: string, limit: number, cursor?: string): Promise<Page<QuarantineRecord>>;
}
