import type { RecordShape } from "./quarantine";
import type { AggregateDelta } from "./coalesce";
import type { PricingDimensions } from "../pricing/catalog";
import type { InvocationSource } from "../events/invocation";
import type { AggregateTarget, PricedEvent, SourceCounts, UsageCounters } from "./model";

/**
 * Who holds an event's ledger entry. Since high-water commits: `run` is the writer's epoch and
 * `group` the epoch's run number (`hw` set on the entry); before them, a run id and the
 * aggregate group of that run, decided by its commit marker (legacy entries, still resolved).
 */
export interface Claim {
  run: string;
  group: number;
}

/**
 * A writer identity with a lease: one ingest call at a time uses it, its runs are numbered
 * 1, 2, 3... and run n+1 starts only after every write of run n landed. `done` is the last run
 * whose every write landed (recorded after the run); `leaseUntil` (epoch ms) is when it may no
 * longer write, so after it a claim of a run above `done` is the claim of a dead run.
 */
export interface EpochState {
  done: number;
  leaseUntil: number;
}

/** The high-water marks of one aggregate item: for each epoch that wrote it, its last run. */
export type HighWaterMarks = Record<string, number>;

/** Outcome of one aggregate item write of a high-water commit (`addAggregate`). */
export type AggregateWrite =
  /**
   * Landed now. `marks`: the item's marks after the write; `item`: the item after it. Both
   * undefined when the caller did not ask for the item and the store did not need it (the write
   * returned nothing).
   */
  | { kind: "applied"; marks: HighWaterMarks | undefined; item: Record<string, unknown> | undefined }
  /** Had landed before (a retry after a lost response): the item's mark is already this run's. `item`: as it is now. */
  | { kind: "already"; marks: HighWaterMarks; item: Record<string, unknown> }
  /** Not written: a mark asked to be removed is above what the caller knew was done. Retry without it. */
  | { kind: "clean-conflict"; marks: HighWaterMarks }
  | { kind: "retryable"; reason: string };

/** A ledger entry that already exists. `run` is absent on entries written before claims. */
export interface LedgerHolder {
  run?: string;
  group?: number;
  /** A high-water claim (`run` is an epoch): decided by the epoch's `done` and the items' marks, not by a marker. */
  hw?: boolean;
  /** Earlier holders of a high-water claim, taken over from dead runs: their marks count as landed too. */
  prev?: Claim[];
  claimedAt?: string;
  /** Present when the entry counted estimated tokens: what it counted, so exact counts can replace it. */
  estimate?: CountedEstimate;
  /** The envelope source that claimed the entry (absent on entries written before sources were recorded). */
  source?: InvocationSource;
  /** Set once the other path reported the same call too. */
  crossSource?: InvocationSource;
  /** Event time the entry counted (its tenant-day). */
  occurredAt?: string;
  /** Model the entry counted. */
  modelId?: string;
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

/** State of a legacy group's commit marker: its aggregates landed, or they never will. */
export type MarkerState = "committed" | "aborted";

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
 * Port: where the ingest service records events and their aggregates (see
 * `shared/usage/README.md`): each event's ledger entry is claimed for a run of an epoch, then
 * every aggregate item is added to once, conditional on the item's high-water mark of that
 * epoch, then the epoch records the run done.
 */
export interface UsageStore {
  /** Writes the event's ledger entry held by `claim`, only if absent; else reports its holder. */
  putLedger(event: PricedEvent, claim: Claim, now: Date): Promise<LedgerWrite>;
  /**
   * `putLedger` for up to `LEDGER_BATCH_MAX` events in one request. Each event gets its own
   * outcome; an `error` means its write did not happen or is unknown.
   */
  insertLedgers(entries: readonly { event: PricedEvent; claim: Claim }[], now: Date): Promise<(LedgerWrite | { kind: "error"; error: string })[]>;
  /**
   * Rewrites the ledger entry for `to`, only if `from` still holds it; false if it does not.
   * `prev`: the earlier holders whose writes may have landed (a high-water take-over).
   */
  moveLedger(event: PricedEvent, from: Claim, to: Claim, now: Date, prev?: readonly Claim[]): Promise<boolean>;
  /** Creates an epoch record (`done` 0), only if absent. */
  startEpoch(epoch: string, leaseUntil: number, now: Date): Promise<void>;
  /** Extends a running epoch's lease, only while the record's lease has not passed `now`; false if it had. */
  extendLease(epoch: string, leaseUntil: number, now: Date): Promise<boolean>;
  /** Records run `run` of the epoch done (every write landed) and extends its lease. */
  finishRun(epoch: string, run: number, leaseUntil: number, now: Date): Promise<void>;
  /** The epochs' records, read strongly consistent (absent ids: no record). */
  epochStates(epochs: readonly string[]): Promise<Map<string, EpochState>>;
  /**
   * Adds `delta` to its aggregate item and sets the item's mark of `mark.epoch` to `mark.run`,
   * only if that mark is below `mark.run`; also removes the marks in `clean`, each only if it is
   * at most the given run (a run known done). `opts.item: false`: the caller does not need the
   * item after the write (a store may then return none, and `marks` with it); by default it is
   * returned.
   */
  addAggregate(delta: AggregateDelta, mark: { epoch: string; run: number }, clean: readonly { epoch: string; upTo: number }[], now: Date, opts?: { item?: boolean }): Promise<AggregateWrite>;
  /** The high-water marks of aggregate items, read strongly consistent, by target id. */
  highWaterMarks(targets: readonly AggregateTarget[]): Promise<Map<string, HighWaterMarks>>;
  /** A legacy group's marker, read strongly consistent; undefined while the group is undecided. */
  marker(claim: Claim): Promise<MarkerState | undefined>;
  /** Marks a legacy group aborted unless it has a marker already; returns the state now stored. */
  abort(claim: Claim, now: Date): Promise<MarkerState>;
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
