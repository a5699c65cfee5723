import { InvalidInvocationEventError, parseInvocationMessage, type InvocationEventV1 } from "../events/invocation";
import type { PriceCatalog } from "../pricing/catalog";
import { chunkForTransactions, coalesce } from "./coalesce";
import { UsageCommitFailedError } from "./errors";
import { zeroCounters, type PricedEvent } from "./model";
import { periodsOf } from "./periods";
import type { UsageStore } from "./ports";

/** One delivered message (an SQS record, or anything with a stable id and a body). */
export interface IngestRecord {
  messageId: string;
  body: string;
}

export type RecordOutcome =
  | { kind: "counted"; tenantId: string; eventId: string }
  | { kind: "duplicate"; tenantId: string; eventId: string }
  | { kind: "quarantined"; reason: string }
  /** Could not be committed now; the caller must have it redelivered. */
  | { kind: "failed"; error: string };

/** A tenant whose totals changed (or may have: duplicates are included), for quota evaluation. */
export interface TouchedTenant {
  tenantId: string;
  months: string[];
  minutes: string[];
  messageIds: string[];
}

export interface IngestResult {
  outcomes: Map<string, RecordOutcome>;
  /** Events counted by this call (not duplicates), for cost-allocation metrics. */
  counted: PricedEvent[];
  touched: TouchedTenant[];
  stats: { counted: number; duplicates: number; quarantined: number; failed: number; unpriced: number; maxLagMs: number };
}

export interface IngestOptions {
  store: UsageStore;
  prices: PriceCatalog;
  region: string;
  maxEventAgeDays: number;
  maxTransactionItems: number;
  /** Transactions of one batch in flight at once (default 4). */
  chunkConcurrency?: number;
  /** Clock skew tolerated for event times in the future. */
  maxFutureSkewMs?: number;
  maxAttempts?: number;
  clock?: () => Date;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

/**
 * Counts each distinct valid invocation event exactly once although delivery is
 * at-least-once: validate -> price -> dedupe within the batch -> chunk -> per chunk one
 * transaction of ledger puts (`attribute_not_exists`) plus coalesced aggregate ADDs.
 * A duplicate (already in the ledger) is success. Invalid records are quarantined with
 * their reason and reported as handled, so they are neither retried forever nor lost.
 */
export class IngestService {
  private readonly clock: () => Date;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly random: () => number;

  constructor(private readonly opts: IngestOptions) {
    this.clock = opts.clock ?? (() => new Date());
    this.sleep = opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.random = opts.random ?? Math.random;
  }

  async ingest(records: readonly IngestRecord[]): Promise<IngestResult> {
    const now = this.clock();
    const outcomes = new Map<string, RecordOutcome>();
    const counted: PricedEvent[] = [];
    const stats = { counted: 0, duplicates: 0, quarantined: 0, failed: 0, unpriced: 0, maxLagMs: 0 };

    // 1. validate and price; an event key seen twice in one batch is counted once
    const byKey = new Map<string, { priced: PricedEvent; messageIds: string[] }>();
    for (const record of records) {
      let event: InvocationEventV1;
      try {
        event = parseInvocationMessage(record.body);
        this.checkTimeWindow(event, now);
      } catch (error) {
        if (!(error instanceof InvalidInvocationEventError)) throw error;
        const outcome = await this.quarantine(record, error, now);
        outcomes.set(record.messageId, outcome);
        if (outcome.kind === "quarantined") stats.quarantined++;
        else stats.failed++;
        continue;
      }
      const key = ledgerKey(event);
      const seen = byKey.get(key);
      if (seen) {
        seen.messageIds.push(record.messageId);
        continue;
      }
      byKey.set(key, { priced: this.price(event), messageIds: [record.messageId] });
    }

    // 2. commit chunk by chunk; each chunk is all-or-nothing. Grouping a tenant's events
    // together makes each chunk touch few aggregate items, so one ADD covers many events.
    const entries = [...byKey.values()].sort((a, b) => compareForCoalescing(a.priced, b.priced));
    const chunks = chunkForTransactions(
      entries.map((e) => e.priced),
      this.opts.maxTransactionItems,
    );
    const messageIdsOf = new Map(entries.map((e) => [ledgerKey(e.priced.event), e.messageIds]));
    // Chunks are independent transactions: commit a few at once. Sorting by tenant keeps
    // them on different aggregate items, and a conflict on a shared one is retried.
    let nextChunk = 0;
    const worker = async () => {
      while (nextChunk < chunks.length) await commitAndRecord(chunks[nextChunk++]);
    };
    const commitAndRecord = async (chunk: PricedEvent[]) => {
      let result: { duplicates: Set<string> } | { error: unknown };
      try {
        result = { duplicates: await this.commitChunk(chunk) };
      } catch (error) {
        result = { error };
      }
      for (const priced of chunk) {
        const key = ledgerKey(priced.event);
        const { tenantId, eventId } = priced.event;
        for (const [i, messageId] of (messageIdsOf.get(key) ?? []).entries()) {
          let outcome: RecordOutcome;
          if ("error" in result) outcome = { kind: "failed", error: describe(result.error) };
          else if (i === 0 && !result.duplicates.has(key)) outcome = { kind: "counted", tenantId, eventId };
          else outcome = { kind: "duplicate", tenantId, eventId };
          outcomes.set(messageId, outcome);
          stats[outcome.kind === "counted" ? "counted" : outcome.kind === "duplicate" ? "duplicates" : "failed"]++;
        }
        if (!("error" in result) && !result.duplicates.has(key)) {
          counted.push(priced);
          if (priced.unpricedReason === "unknown-model") {
            stats.unpriced++;
            await this.noteUnpriced(priced, now);
          }
          stats.maxLagMs = Math.max(stats.maxLagMs, now.getTime() - Date.parse(priced.event.occurredAt));
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.opts.chunkConcurrency ?? 4, chunks.length) }, worker));

    return { outcomes, counted, touched: touchedTenants(entries, outcomes), stats };
  }

  private checkTimeWindow(event: InvocationEventV1, now: Date): void {
    const at = Date.parse(event.occurredAt);
    const oldest = now.getTime() - this.opts.maxEventAgeDays * 86_400_000;
    if (at < oldest) {
      // Older than the dedupe window: its ledger entry may have expired, so counting it
      // could count it twice. Keep it for an operator instead.
      throw new InvalidInvocationEventError(
        `occurredAt ${event.occurredAt} is older than ${this.opts.maxEventAgeDays} days`,
        "too-late",
      );
    }
    if (at > now.getTime() + (this.opts.maxFutureSkewMs ?? 3_600_000)) {
      throw new InvalidInvocationEventError(`occurredAt ${event.occurredAt} is in the future`, "future-timestamp");
    }
  }

  private price(event: InvocationEventV1): PricedEvent {
    const result = this.opts.prices.price(event, this.opts.region);
    const counters = zeroCounters();
    counters.requests = 1;
    counters.inputTokens = event.inputTokens;
    counters.outputTokens = event.outputTokens;
    counters.cacheReadInputTokens = event.cacheReadInputTokens ?? 0;
    counters.cacheWriteInputTokens = event.cacheWriteInputTokens ?? 0;
    counters.costNanoUsd = result.costNanoUsd;
    counters.unpricedRequests = !result.priced && result.reason === "unknown-model" ? 1 : 0;
    counters.estimatedRequests = event.estimated ? 1 : 0;
    counters.inferenceMs = Math.round(event.latencyMs ?? 0);
    return {
      event,
      baseModelId: result.baseModelId,
      counters,
      unpricedReason: result.priced ? undefined : result.reason,
    };
  }

  /** Returns the ledger keys that turned out to be duplicates. Throws when retries run out. */
  private async commitChunk(chunk: readonly PricedEvent[]): Promise<Set<string>> {
    const duplicates = new Set<string>();
    let pending = [...chunk];
    const maxAttempts = this.opts.maxAttempts ?? 8;
    let lastReason = "";
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      if (pending.length === 0) return duplicates;
      const result = await this.opts.store.commit(pending, coalesce(pending));
      if (result.kind === "committed") {
        for (const d of result.duplicates) duplicates.add(d);
        return duplicates;
      }
      if (result.kind === "duplicates") {
        // Another delivery already counted these: drop them and re-coalesce the rest.
        const dup = new Set(result.duplicates);
        for (const d of dup) duplicates.add(d);
        pending = pending.filter((e) => !dup.has(ledgerKey(e.event)));
        attempt--; // progress was made; this does not count against the retry budget
        continue;
      }
      lastReason = result.reason;
      await this.sleep(backoffMs(attempt, this.random));
    }
    throw new UsageCommitFailedError(`chunk not committed after ${maxAttempts} attempts: ${lastReason}`, maxAttempts);
  }

  /**
   * The event is counted (tokens matter for quotas) and flagged `unpricedRequests`; this note
   * puts it in the quarantine listing so an operator adds the price. Keyed by the event, so
   * a redelivery rewrites the same note. A failed note is not worth a redelivery: the flag on
   * the aggregates and the metric still tell.
   */
  private async noteUnpriced(priced: PricedEvent, now: Date): Promise<void> {
    const { tenantId, eventId, modelId } = priced.event;
    await this.opts.store
      .quarantine({
        messageId: `unpriced:${tenantId}:${eventId}`,
        receivedAt: now.toISOString(),
        reason: "unknown-model",
        message: `counted without cost: no price for model '${modelId}' (base '${priced.baseModelId}') in region ${this.opts.region}`,
        body: JSON.stringify(priced.event),
        tenantId,
        eventId,
      })
      .catch(() => undefined);
  }

  private async quarantine(record: IngestRecord, error: InvalidInvocationEventError, now: Date): Promise<RecordOutcome> {
    const hint = peek(record.body);
    try {
      await this.opts.store.quarantine({
        messageId: record.messageId,
        receivedAt: now.toISOString(),
        reason: error.reason,
        message: error.message,
        body: record.body,
        ...hint,
      });
      return { kind: "quarantined", reason: error.reason };
    } catch (cause) {
      // Not kept anywhere yet: let the queue redeliver it (and finally move it to the DLQ).
      return { kind: "failed", error: `quarantine write failed: ${describe(cause)}` };
    }
  }
}

function compareForCoalescing(a: PricedEvent, b: PricedEvent): number {
  const x = a.event;
  const y = b.event;
  return (
    (x.tenantId < y.tenantId ? -1 : x.tenantId > y.tenantId ? 1 : 0) ||
    (x.modelId < y.modelId ? -1 : x.modelId > y.modelId ? 1 : 0) ||
    (x.occurredAt < y.occurredAt ? -1 : x.occurredAt > y.occurredAt ? 1 : 0)
  );
}

export function ledgerKey(event: Pick<InvocationEventV1, "tenantId" | "eventId">): string {
  return `${event.tenantId}#${event.eventId}`;
}

function touchedTenants(
  entries: { priced: PricedEvent; messageIds: string[] }[],
  outcomes: Map<string, RecordOutcome>,
): TouchedTenant[] {
  const byTenant = new Map<string, { months: Set<string>; minutes: Set<string>; messageIds: string[] }>();
  for (const { priced, messageIds } of entries) {
    if (!messageIds.some((m) => { const o = outcomes.get(m); return o?.kind === "counted" || o?.kind === "duplicate"; })) continue;
    const t = byTenant.get(priced.event.tenantId) ?? { months: new Set(), minutes: new Set(), messageIds: [] };
    const p = periodsOf(priced.event.occurredAt);
    t.months.add(p.month);
    t.minutes.add(p.minute);
    t.messageIds.push(...messageIds);
    byTenant.set(priced.event.tenantId, t);
  }
  return [...byTenant.entries()].map(([tenantId, t]) => ({
    tenantId,
    months: [...t.months].sort(),
    minutes: [...t.minutes].sort(),
    messageIds: t.messageIds,
  }));
}

/** Full-jitter exponential backoff: 25 ms base, 2 s cap. */
export function backoffMs(attempt: number, random: () => number = Math.random): number {
  return Math.round(random() * Math.min(2000, 25 * 2 ** attempt));
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/** Best-effort tenant/event ids of a bad record, so an operator can find it by tenant. */
function peek(body: string): { source?: string; tenantId?: string; eventId?: string } {
  try {
    const j = JSON.parse(body) as { source?: unknown; detail?: { tenantId?: unknown; eventId?: unknown } };
    const str = (v: unknown) => (typeof v === "string" ? v.slice(0, 128) : undefined);
    return { source: str(j.source), tenantId: str(j.detail?.tenantId), eventId: str(j.detail?.eventId) };
  } catch {
    return {};
  }
}
