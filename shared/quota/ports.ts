import type { UsageCounters } from "../usage/model";
import type { MinuteCounters } from "../usage/minute-window";
import type { EnforcementEventDetail } from "./events";
import type { EnforcementState, OutboxEntry, TenantConfig, Transition } from "./model";

/** Everything one evaluation reads, in one round trip. */
export interface EvaluationSnapshot {
  config?: TenantConfig;
  /** Month totals of the evaluated month (absent = no usage yet). */
  monthTotals?: UsageCounters;
  /** Minute windows by yyyy-mm-ddThh:mm (absent = no usage in that minute). */
  minuteTotals: Record<string, MinuteCounters>;
  state?: EnforcementState;
  prevState?: EnforcementState;
}

export interface DecisionSnapshot {
  config?: TenantConfig;
  /** Month totals, for the usage/quota figures shown with the decision. */
  monthTotals?: UsageCounters;
  state?: EnforcementState;
  prevState?: EnforcementState;
}

export interface EnforcementLogEntry {
  day: string;
  detailType: string;
  detail: EnforcementEventDetail;
  publishedAt: string;
}

export interface Page<T> {
  items: T[];
  cursor?: string;
}

/** Port: enforcement state, tenant config and the enforcement log (DynamoDB adapter). */
/** What one evaluation reads: the tenant, its month and the month before, the minute windows it needs. */
export interface EvaluationQuery {
  tenantId: string;
  month: string;
  prevMonth: string;
  minutes: string[];
  /**
   * Aggregate items the caller just wrote and holds as they were after its write (the ingest's
   * updates return them): not read again. `month`: the month item of `month`; `hours`: tenant-hour
   * items (the minute windows) by hour. A later write by someone else is seen by that writer's
   * own evaluation, so no crossing is missed.
   */
  known?: { month?: Record<string, unknown>; hours?: Record<string, Record<string, unknown>> };
}

export interface QuotaStore {
  loadForEvaluation(q: EvaluationQuery): Promise<EvaluationSnapshot>;
  /**
   * `loadForEvaluation` of many tenants in as few round trips as the store allows (DynamoDB: shared
   * BatchGetItems of up to 100 keys across tenants). Optional: without it each tenant is read alone.
   */
  loadManyForEvaluation?(qs: readonly EvaluationQuery[]): Promise<Map<string, EvaluationSnapshot>>;
  /** Cheap read for the data plane (eventually consistent). */
  loadForDecision(q: { tenantId: string; month: string; prevMonth: string }): Promise<DecisionSnapshot>;
  /**
   * Records a transition and its outbox entry with one conditional write. `conflict` means the
   * state changed since it was read (another evaluation won, or the transition already happened).
   */
  apply(tenantId: string, t: Transition): Promise<"applied" | "conflict">;
  /** Takes over a pending entry whose lease (`seenLeaseUntil`) ran out; false if someone else did. */
  claim(tenantId: string, period: string, enforcementId: string, seenLeaseUntil: string, leaseUntil: string): Promise<boolean>;
  /** Gives a lease back after a failed publish so the next evaluation (or sweep) retries at once. */
  release(tenantId: string, period: string, enforcementId: string, leaseUntil: string): Promise<void>;
  /** After a successful publish: writes the enforcement log entry and drops the outbox entry. */
  markPublished(tenantId: string, period: string, entry: OutboxEntry, publishedAt: string): Promise<void>;
  /**
   * The change mark (see shared/quota/README.md, "Evaluation inputs held between batches"): a
   * change to a tenant's config or enforcement state is bracketed by `changeBegins` before it and
   * `changeEnds` after it, so an evaluation that holds the tenant's config and states from an
   * earlier read (the DynamoDB adapter keeps them per process, checked against a counter pair on
   * the month item the ingest's write returns) reads them again. Per month given: whether the
   * begin mark was made (false: the month has no item yet, so nobody holds anything for it).
   * Optional: a store that holds nothing between reads needs no marks.
   */
  changeBegins?(tenantId: string, months: readonly string[]): Promise<boolean[]>;
  changeEnds?(tenantId: string, months: readonly string[], begun: readonly boolean[]): Promise<void>;
  getConfig(tenantId: string): Promise<TenantConfig | undefined>;
  putConfig(config: TenantConfig): Promise<void>;
  listLog(day: string, limit: number, cursor?: string): Promise<Page<EnforcementLogEntry>>;
}

/**
 * Port: every enforcement state that has pending outbox entries, across all tenants, for the
 * outbox sweeper (DynamoDB adapter: a sparse GSI1 partition per shard, never a Scan). The listing
 * may lag the table: the sweeper decides on nothing it reads here without a compare-and-set.
 */
export interface PendingOutboxIndex {
  /** Number of independent partitions of the index; `listPending` is called once per shard. */
  readonly shards: number;
  listPending(shard: number, limit: number, cursor?: string): Promise<Page<EnforcementState>>;
  /** Takes a state whose outbox is empty off the index; a no-op when an entry was added meanwhile. */
  unindex(tenantId: string, period: string): Promise<void>;
}

export interface PublishResult {
  /** enforcementIds that were accepted by the bus. */
  published: string[];
  /** enforcementIds the bus refused, with the reason. */
  failed: { enforcementId: string; reason: string }[];
}

/** Port: the bus enforcement events go to (EventBridge adapter). Throws only when the call itself fails. */
export interface EnforcementPublisher {
  publish(details: readonly EnforcementEventDetail[]): Promise<PublishResult>;
}
