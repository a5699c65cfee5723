import { randomUUID } from "node:crypto";
import { InvalidInvocationEventError, originOf, parseInvocationEnvelope, type InvocationEventV1, type InvocationSource } from "../events/invocation";
import type { PriceCatalog, PricingDimensions } from "../pricing/catalog";
import { addSourceCount, coalesce, correctionDeltas, countedAt, groupForAggregates, withSourceCounts } from "./coalesce";
import type { MarkerState } from "./ports";
import { retryWrites, type RetryOptions } from "./retry";
import { COUNTER_NAMES, laterCounter, subtract, zeroCounters, zeroSourceCounts, type PricedEvent, type SourceCounts, type UsageCounters } from "./model";
import { periodsOf } from "./periods";
import { contentFreeMessage, describeShape, envelopeIds } from "./quarantine";
import { periodsOfEvent } from "./coalesce";
import { LEDGER_BATCH_MAX, type Claim, type CountedEstimate, type LedgerHolder, type LedgerWrite, type UsageStore } from "./ports";

/** One delivered message (an SQS record, or anything with a stable id and a body). */
export interface IngestRecord {
  messageId: string;
  body: string;
  /**
   * How many times the queue has delivered this record (SQS `ApproximateReceiveCount`); unknown
   * when absent. A duplicate on its first delivery needs no quota evaluation (see `touched`).
   */
  receiveCount?: number;
}

export type RecordOutcome =
  | { kind: "counted"; tenantId: string; eventId: string }
  | { kind: "duplicate"; tenantId: string; eventId: string }
  | { kind: "quarantined"; reason: string }
  /** Could not be committed now; the caller must have it redelivered. */
  | { kind: "failed"; error: string };

/**
 * A tenant whose totals changed, for quota evaluation. Duplicates count only when redelivered
 * (or their receive count is unknown): a redelivery may follow a failed evaluation, which must be
 * tried again; a first delivery of a duplicate follows a delivery that was evaluated itself.
 */
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
  /** Estimates replaced by exact counts in this call: `counters` is the difference (exact - estimate), for metrics. */
  corrections: PricedEvent[];
  touched: TouchedTenant[];
  /**
   * `corrected`: duplicates (also in `duplicates`) whose exact counts replaced a counted estimate.
   * `crossSource`: calls this call recorded as reported by both paths (wrapper and invocation log);
   * `crossSourceLost`: of those, marked on the ledger but not added to the tenant-day figure (a
   * failed write; diagnostic only, see `shared/usage/README.md`).
   */
  stats: {
    counted: number;
    duplicates: number;
    corrected: number;
    quarantined: number;
    failed: number;
    unpriced: number;
    maxLagMs: number;
    crossSource: number;
    crossSourceLost: number;
  };
}

export interface IngestOptions {
  store: UsageStore;
  prices: PriceCatalog;
  region: string;
  maxEventAgeDays: number;
  /** Items per TransactWriteItems (DynamoDB allows 100): a group's aggregates plus its marker. */
  maxTransactionItems: number;
  /** Aggregate groups of one batch in flight at once (default 4). */
  chunkConcurrency?: number;
  /** Ledger writes of one batch in flight at once (default 32). */
  claimConcurrency?: number;
  /**
   * How long another run's undecided claim is respected before it is taken over (default
   * 30 s). Must cover a run's lifetime (the consumer's timeout) and stay below the queue's
   * visibility timeout, so a crashed run's events are taken over when they are redelivered.
   */
  claimLeaseMs?: number;
  /** Waits before each retry of events another run is still counting (default ~3 s in all). */
  busyRetryDelaysMs?: readonly number[];
  /** Id of one ingest call (default: a random UUID). */
  runId?: () => string;
  /** Clock skew tolerated for event times in the future. */
  maxFutureSkewMs?: number;
  maxAttempts?: number;
  clock?: () => Date;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

/**
 * Counts each distinct valid invocation event exactly once although delivery is
 * at-least-once: validate -> price -> dedupe within the batch -> group by tenant -> per group
 * (1) claim each event's ledger entry with a conditional insert naming this run and group,
 * (2) one transaction of the group's commit marker plus its coalesced aggregate ADDs.
 * An event counts when its holder's group is committed; a group that can no longer commit
 * is marked aborted and its claims are taken over by the next delivery (see
 * `shared/usage/README.md` for the protocol and why it is exactly once). A duplicate is
 * success. Invalid records are quarantined with their reason and reported as handled, so
 * they are neither retried forever nor lost.
 */
export class IngestService {
  private readonly clock: () => Date;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly random: () => number;

  private readonly runId: () => string;
  private readonly leaseMs: number;

  constructor(private readonly opts: IngestOptions) {
    this.clock = opts.clock ?? (() => new Date());
    this.runId = opts.runId ?? randomUUID;
    this.leaseMs = opts.claimLeaseMs ?? 30_000;
    this.sleep = opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.random = opts.random ?? Math.random;
  }

  async ingest(records: readonly IngestRecord[]): Promise<IngestResult> {
    const now = this.clock();
    const outcomes = new Map<string, RecordOutcome>();
    const counted: PricedEvent[] = [];
    const corrections: PricedEvent[] = [];
    const stats = { counted: 0, duplicates: 0, corrected: 0, quarantined: 0, failed: 0, unpriced: 0, maxLagMs: 0, crossSource: 0, crossSourceLost: 0 };

    // 1. validate and price; an event key seen twice in one batch is counted once
    const byKey = new Map<string, { priced: PricedEvent; messageIds: string[]; sources: Map<"wrapper" | "log", InvocationSource> }>();
    for (const record of records) {
      let event: InvocationEventV1;
      let source: InvocationSource;
      try {
        ({ event, source } = parseInvocationEnvelope(record.body));
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
        if (!seen.sources.has(originOf(source))) seen.sources.set(originOf(source), source);
        // the same call reported exactly and from an estimate: the exact report counts
        if (seen.priced.event.estimated && !event.estimated) seen.priced = this.price(event, source);
        continue;
      }
      byKey.set(key, { priced: this.price(event, source), messageIds: [record.messageId], sources: new Map([[originOf(source), source]]) });
    }
    // One batch carrying both paths' reports of a call: its claim records both (cross-source diagnostic).
    for (const { priced, sources } of byKey.values()) {
      for (const [origin, source] of sources) if (origin !== originOf(priced.source!)) priced.crossSource = source;
    }

    // 2. commit group by group. Grouping a tenant's events together makes a group touch few
    // aggregate items, so one ADD per item covers all of the tenant's events in the batch.
    const entries = [...byKey.values()].sort((a, b) => compareForCoalescing(a.priced, b.priced));
    const groups = groupForAggregates(
      entries.map((e) => e.priced),
      this.opts.maxTransactionItems - 1,
    );
    const messageIdsOf = new Map(entries.map((e) => [ledgerKey(e.priced.event), e.messageIds]));
    const redelivered = new Set(records.filter((r) => r.receiveCount === undefined || r.receiveCount > 1).map((r) => r.messageId));
    /** Events whose counts this call changed (counted, or an estimate corrected). */
    const changed = new Set<string>();
    /** Commit markers read in this call: a decided marker never changes, so it is read once. */
    const markers = new Map<string, Promise<MarkerState | undefined>>();
    const run = this.runId();
    const limit = limiter(this.opts.claimConcurrency ?? 32);
    const crossMarks: CrossMark[] = [];
    const record = async (priced: PricedEvent, fate: EventFate) => {
      const key = ledgerKey(priced.event);
      const { tenantId, eventId } = priced.event;
      for (const [i, messageId] of (messageIdsOf.get(key) ?? []).entries()) {
        let outcome: RecordOutcome;
        if (fate.kind === "failed" || fate.kind === "busy") outcome = { kind: "failed", error: fate.error };
        // a correction is reported as a duplicate: the record is handled, the call was counted before
        else if (i === 0 && fate.kind === "counted") outcome = { kind: "counted", tenantId, eventId };
        else outcome = { kind: "duplicate", tenantId, eventId };
        outcomes.set(messageId, outcome);
        stats[outcome.kind === "counted" ? "counted" : outcome.kind === "duplicate" ? "duplicates" : "failed"]++;
      }
      if (fate.kind === "counted" || fate.kind === "corrected") changed.add(key);
      if (fate.kind === "counted" && priced.crossSource) stats.crossSource++;
      if (fate.kind === "duplicate" && fate.holder) {
        // The other path's report of a call already counted: marked on the ledger once, counted below.
        const cross = crossSourceFor(priced, fate.holder);
        if (cross) crossMarks.push({ tenantId, eventId, source: cross, day: periodsOf(fate.holder.occurredAt ?? priced.event.occurredAt).day });
      }
      if (fate.kind === "corrected") {
        if (fate.crossSource) stats.crossSource++;
        stats.corrected++;
        corrections.push({ ...priced, counters: fate.difference });
      }
      if (fate.kind === "counted") {
        counted.push(priced);
        if (priced.unpricedReason === "unknown-model") {
          stats.unpriced++;
          await this.noteUnpriced(priced, now);
        }
        stats.maxLagMs = Math.max(stats.maxLagMs, now.getTime() - Date.parse(priced.event.occurredAt));
      }
    };
    // Events another run is still counting (a duplicate delivered to two runs at once) are
    // set aside until our groups are committed, then tried again for a few seconds: the
    // other run commits meanwhile (-> duplicate) or has died and gets aborted.
    let busy: { priced: PricedEvent; fate: EventFate }[] = [];
    let groupNumber = 0;
    const commitAll = async (sets: PricedEvent[][]) => {
      // Waves of consecutive groups with at most 25 events in all: a wave's claims go out in one
      // request whatever their groups (many small groups, many tenants), and each group commits
      // right after its wave is claimed, so a claim is held for a few requests, not the run.
      const waves: PricedEvent[][][] = [];
      let size = 0;
      for (const events of sets) {
        if (waves.length === 0 || size + events.length > LEDGER_BATCH_MAX) {
          waves.push([]);
          size = 0;
        }
        waves[waves.length - 1].push(events);
        size += events.length;
      }
      let next = 0;
      const worker = async () => {
        while (next < waves.length) {
          const wave = waves[next++];
          const claims = wave.map(() => ({ run, group: groupNumber++ }));
          const first = await this.insertAll(
            wave.flatMap((events, g) => events.map((event) => ({ event, claim: claims[g] }))),
            limit,
          );
          for (const [g, events] of wave.entries()) {
            const fates = await this.commitGroup(events, claims[g], first, limit, markers);
            for (const priced of events) {
              const fate = fates.get(ledgerKey(priced.event)) ?? { kind: "failed", error: "no outcome (bug)" };
              if (fate.kind === "busy") busy.push({ priced, fate });
              else await record(priced, fate);
            }
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(this.opts.chunkConcurrency ?? 4, waves.length) }, worker));
    };
    await commitAll(groups);
    for (const delay of this.opts.busyRetryDelaysMs ?? BUSY_RETRY_DELAYS_MS) {
      if (busy.length === 0) break;
      await this.sleep(delay);
      const again = busy.map((b) => b.priced);
      busy = [];
      await commitAll(groupForAggregates(again, this.opts.maxTransactionItems - 1));
    }
    for (const b of busy) await record(b.priced, b.fate);
    await this.countCrossSources(crossMarks, limit, stats);

    return { outcomes, counted, corrections, touched: touchedTenants(entries, (key, messageId) => changed.has(key) || (redelivered.has(messageId) && outcomes.get(messageId)?.kind === "duplicate")), stats };
  }

  /**
   * The other path's reports of calls counted before: each ledger entry is marked once
   * (conditional update), then the marks are added to their tenant-days, one write per
   * tenant-day of the batch. Diagnostic, never billing: a crash or a failed write between the
   * mark and the count leaves the call in a one-path figure (the mark keeps a redelivery from
   * counting it twice); the records still succeed.
   */
  private async countCrossSources(marks: readonly CrossMark[], limit: Limiter, stats: IngestResult["stats"]): Promise<void> {
    const byDay = new Map<string, { tenantId: string; day: string; counts: SourceCounts }>();
    await Promise.all(
      marks.map((m) =>
        limit(async () => {
          const marked = await this.opts.store.markCrossSource(m.tenantId, m.eventId, m.source, this.clock()).catch(() => false);
          if (!marked) return;
          const id = `${m.tenantId}#${m.day}`;
          const d = byDay.get(id) ?? byDay.set(id, { tenantId: m.tenantId, day: m.day, counts: zeroSourceCounts() }).get(id)!;
          d.counts[laterCounter(originOf(m.source))]++;
        }),
      ),
    );
    for (const d of [...byDay.values()]) {
      const n = d.counts.logAfterWrapper + d.counts.wrapperAfterLog;
      try {
        await limit(() => this.opts.store.addSourceCounts(d.tenantId, d.day, d.counts, this.clock()));
        stats.crossSource += n;
      } catch {
        stats.crossSourceLost += n;
      }
    }
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

  private price(event: InvocationEventV1, source?: InvocationSource): PricedEvent {
    const result = this.opts.prices.price(event, this.opts.region);
    const counters = zeroCounters();
    counters.requests = 1;
    counters.inputTokens = event.inputTokens;
    counters.outputTokens = event.outputTokens;
    counters.cacheReadInputTokens = event.cacheReadInputTokens ?? 0;
    counters.cacheWriteInputTokens = event.cacheWriteInputTokens ?? 0;
    counters.cacheWrite1hInputTokens = event.cacheWrite1hInputTokens ?? 0;
    counters.costNanoUsd = result.costNanoUsd;
    counters.unpricedRequests = !result.priced && result.reason === "unknown-model" ? 1 : 0;
    counters.estimatedRequests = event.estimated ? 1 : 0;
    counters.inferenceMs = Math.round(event.latencyMs ?? 0);
    return {
      event,
      baseModelId: result.baseModelId,
      counters,
      unpricedReason: result.priced ? undefined : result.reason,
      ...(!result.priced && result.detail ? { unpricedDetail: result.detail } : {}),
      pricing: pricingOf(event),
      ...(source ? { source } : {}),
    };
  }

  /**
   * Phase 1: claims the ledger entries of events of any groups, 25 a request. Returns the first
   * write's outcome by ledger key; absent where the request failed (its outcome is unknown: the
   * event is claimed again one by one, which is safe, since an entry that turns out to be ours
   * is recognised as ours).
   */
  private async insertAll(entries: { event: PricedEvent; claim: Claim }[], limit: Limiter): Promise<Map<string, LedgerWrite>> {
    const first = new Map<string, LedgerWrite>();
    await Promise.all(
      Array.from({ length: Math.ceil(entries.length / LEDGER_BATCH_MAX) }, (_, b) =>
        limit(async () => {
          const slice = entries.slice(b * LEDGER_BATCH_MAX, (b + 1) * LEDGER_BATCH_MAX);
          const out = await this.opts.store.insertLedgers(slice, this.clock()).catch(() => slice.map(() => undefined));
          out.forEach((w, i) => {
            if (w && w.kind !== "error") first.set(ledgerKey(slice[i].event.event), w);
          });
        }),
      ),
    );
    return first;
  }

  /**
   * Phase 1 (what the batched claim left open) and 2 for one group: settles every event's
   * ledger entry, then commits the group's marker with the aggregates of the events it
   * claimed. Never throws: an event whose fate is unknown is reported failed, and its
   * redelivery settles it.
   */
  private async commitGroup(
    events: readonly PricedEvent[],
    claim: Claim,
    first: Map<string, LedgerWrite>,
    limit: Limiter,
    markers: Map<string, Promise<MarkerState | undefined>>,
  ): Promise<Map<string, EventFate>> {
    const fates = new Map<string, EventFate>();
    const claims = await Promise.all(
      events.map((e) => {
        const w = first.get(ledgerKey(e.event));
        return w?.kind === "created"
          ? ({ kind: "claimed" } as const)
          : limit(() => this.claimOne(e, claim, w, markers).catch((error: unknown) => ({ kind: "error" as const, error: describe(error) })));
      }),
    );
    const claimed: PricedEvent[] = [];
    const corrections: { e: PricedEvent; held: Claim; estimate: CountedEstimate; holder: LedgerHolder }[] = [];
    let claimError: string | undefined;
    events.forEach((e, i) => {
      const c = claims[i];
      const key = ledgerKey(e.event);
      if (c.kind === "claimed") claimed.push(e);
      else if (c.kind === "duplicate") fates.set(key, { kind: "duplicate", holder: c.holder });
      else if (c.kind === "correct") corrections.push({ e, held: c.held, estimate: c.estimate, holder: c.holder });
      else if (c.kind === "busy") {
        fates.set(key, {
          kind: "busy",
          error: `event is being counted by a concurrent delivery (run ${c.holder.run}, claimed ${c.holder.claimedAt}); retry after it ends`,
        });
      } else {
        claimError ??= c.error;
        fates.set(key, { kind: "failed", error: `ledger write failed: ${c.error}` });
      }
    });
    for (const c of corrections) fates.set(ledgerKey(c.e.event), await this.correctOne(c.e, c.held, c.estimate, c.holder));
    if (claimed.length === 0) return fates;
    // A ledger write whose outcome is unknown may hold this group: the group may not commit
    // without that event, so it is aborted and every claim of it is taken over on redelivery.
    const fate = claimError
      ? await this.giveUp(claim, `a ledger write of its group failed (${claimError})`)
      : await this.applyGroup(claim, claimed);
    for (const e of claimed) fates.set(ledgerKey(e.event), fate);
    return fates;
  }

  /** Takes the event's ledger entry for `claim`: created, our own, or taken over from a dead group. */
  private async claimOne(e: PricedEvent, claim: Claim, firstWrite: LedgerWrite | undefined, markers: Map<string, Promise<MarkerState | undefined>>): Promise<ClaimOutcome> {
    let holder: LedgerHolder = {};
    for (let attempt = 0; attempt < 4; attempt++) {
      const now = this.clock();
      const write = attempt === 0 && firstWrite ? firstWrite : await this.opts.store.putLedger(e, claim, now);
      if (write.kind === "created") return { kind: "claimed" };
      holder = write.holder;
      // An entry without a holder predates claims: it was counted in the same transaction.
      if (holder.run === undefined || holder.group === undefined) return { kind: "duplicate" };
      // Our own put, retried after a lost response.
      if (holder.run === claim.run && holder.group === claim.group) return { kind: "claimed" };
      const held: Claim = { run: holder.run, group: holder.group };
      const markerId = `${held.run}#${held.group}`;
      let read = markers.get(markerId);
      if (!read) {
        // Shared by the concurrent claims of the same group; forgotten while undecided or failed.
        read = this.opts.store.marker(held);
        markers.set(markerId, read);
        read.then((s) => s === undefined && markers.delete(markerId), () => markers.delete(markerId));
      }
      let state = await read;
      if (state === undefined) {
        // Undecided: its run may still be working. Respect its lease; after that the run is
        // dead (a run lives at most the consumer timeout), so its group is aborted.
        const age = now.getTime() - Date.parse(holder.claimedAt ?? "");
        if (age < this.leaseMs) return { kind: "busy", holder };
        state = await this.opts.store.abort(held, now);
        markers.set(markerId, Promise.resolve(state));
      }
      if (state === "committed") {
        // An exact report of a call that was counted from an estimate (an abandoned stream,
        // then the invocation log): the exact counts replace the estimate, once.
        if (holder.estimate && !e.event.estimated) return { kind: "correct", held, estimate: holder.estimate, holder };
        return { kind: "duplicate", holder };
      }
      // Aborted: the event was never counted. Take the entry over unless a third run was faster.
      if (await this.opts.store.moveLedger(e, held, claim, this.clock())) return { kind: "claimed" };
    }
    return { kind: "busy", holder };
  }

  /** Exact counts replace a committed estimate: the net difference on every aggregate, once. */
  private async correctOne(e: PricedEvent, held: Claim, estimate: CountedEstimate, holder: LedgerHolder): Promise<EventFate> {
    const difference = zeroCounters();
    for (const c of COUNTER_NAMES) difference[c] = e.counters[c] - estimate.counters[c];
    const old = { ...e, event: { ...e.event, ...countedAt(estimate) }, counters: subtract(zeroCounters(), estimate.counters) };
    const deltas = correctionDeltas([old, e]);
    // An exact report from the other path (the log correcting a wrapper's estimate): the call was
    // seen by both; marked and counted in the correction's own transaction, so once.
    const cross = crossSourceFor(e, holder);
    if (cross) addSourceCount(deltas, e.event.tenantId, periodsOf(estimate.occurredAt).day, laterCounter(originOf(cross)));
    const exact: PricedEvent = { ...e, crossSource: cross };
    let result;
    try {
      result = await retryWrites(() => this.opts.store.correct(exact, held, deltas, this.clock()), this.retry());
    } catch (error) {
      // Landed or not, a redelivery settles it: the ledger says whether it is still an estimate.
      return { kind: "failed", error: `estimate correction failed (${describe(error)})` };
    }
    if (result.kind === "corrected") return { kind: "corrected", difference, crossSource: cross !== undefined };
    // corrected by another delivery meanwhile
    if (result.kind === "already") return { kind: "duplicate" };
    // Not corrected: a redelivery tries again (the ledger still says estimate).
    return { kind: "failed", error: `estimate not corrected after ${this.retry().maxAttempts} attempts: ${result.reason}` };
  }

  /** Phase 2: the group's marker and aggregates in one transaction, retried with backoff. */
  private async applyGroup(claim: Claim, events: readonly PricedEvent[]): Promise<EventFate> {
    // which path reported each call rides on the tenant-day items the group writes anyway
    const deltas = withSourceCounts(coalesce(events), events);
    let result;
    try {
      result = await retryWrites(() => this.opts.store.apply(claim, deltas, this.clock()), this.retry());
    } catch (error) {
      // The write may or may not have landed: the marker decides.
      return this.giveUp(claim, `aggregate write failed (${describe(error)})`);
    }
    if (result.kind === "committed") return { kind: "counted" };
    if (result.kind === "marked") return this.settled(result.state, "its group was aborted by a later delivery before it committed");
    return this.giveUp(claim, `aggregates not committed after ${this.retry().maxAttempts} attempts: ${result.reason}`);
  }

  private retry(): RetryOptions {
    return { maxAttempts: this.opts.maxAttempts ?? 8, sleep: this.sleep, random: this.random };
  }

  /**
   * Ends a group that cannot commit now: marks it aborted so its events are taken over as
   * soon as they are redelivered. If the marker says committed, an earlier write landed.
   */
  private async giveUp(claim: Claim, reason: string): Promise<EventFate> {
    try {
      return this.settled(await this.opts.store.abort(claim, this.clock()), reason);
    } catch (error) {
      // Left undecided: a redelivery takes the claims over once the lease has run out.
      return { kind: "failed", error: `${reason}; abort not recorded either (${describe(error)})` };
    }
  }

  private settled(state: "committed" | "aborted", reason: string): EventFate {
    return state === "committed" ? { kind: "counted" } : { kind: "failed", error: reason };
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
        message: `counted without cost: ${priced.unpricedDetail ?? `no price for model '${modelId}' (base '${priced.baseModelId}') in region ${this.opts.region}`}`,
        shape: describeShape(priced.event),
        tenantId,
        eventId,
      })
      .catch(() => undefined);
  }

  private async quarantine(record: IngestRecord, error: InvalidInvocationEventError, now: Date): Promise<RecordOutcome> {
    try {
      // Never the body itself: it may hold any text a sender put in it (see quarantine.ts).
      await this.opts.store.quarantine({
        messageId: record.messageId,
        receivedAt: now.toISOString(),
        reason: error.reason,
        message: contentFreeMessage(error.message),
        shape: describeShape(record.body),
        ...envelopeIds(record.body),
      });
      return { kind: "quarantined", reason: error.reason };
    } catch (cause) {
      // Not kept anywhere yet: let the queue redeliver it (and finally move it to the DLQ).
      return { kind: "failed", error: `quarantine write failed: ${describe(cause)}` };
    }
  }
}

type EventFate =
  | { kind: "counted" }
  /** `holder`: the ledger entry that counted it, when read (for the cross-source mark). */
  | { kind: "duplicate"; holder?: LedgerHolder }
  /** Already counted from an estimate; this exact delivery corrected the aggregates by `difference`. */
  | { kind: "corrected"; difference: UsageCounters; crossSource: boolean }
  | { kind: "failed"; error: string }
  /** Held by another run's undecided group: retried later in this run, then failed. */
  | { kind: "busy"; error: string };

/** Waits before retrying events held by a concurrent run: about 3 s in all. */
const BUSY_RETRY_DELAYS_MS = [50, 100, 200, 400, 800, 800, 800];
type ClaimOutcome =
  | { kind: "claimed" }
  | { kind: "duplicate"; holder?: LedgerHolder }
  | { kind: "busy"; holder: LedgerHolder }
  | { kind: "correct"; held: Claim; estimate: CountedEstimate; holder: LedgerHolder }
  | { kind: "error"; error: string };

type Limiter = <T>(task: () => Promise<T>) => Promise<T>;

/** Runs at most `n` tasks at once, in the order they were submitted. */
function limiter(n: number): Limiter {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async <T>(task: () => Promise<T>): Promise<T> => {
    // A finishing task hands its slot straight to the next waiting one.
    if (active < n) active++;
    else await new Promise<void>((resolve) => waiting.push(resolve));
    try {
      return await task();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else active--;
    }
  };
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
  touches: (key: string, messageId: string) => boolean,
): TouchedTenant[] {
  const byTenant = new Map<string, { months: Set<string>; minutes: Set<string>; messageIds: string[] }>();
  for (const { priced, messageIds } of entries) {
    const key = ledgerKey(priced.event);
    if (!messageIds.some((m) => touches(key, m))) continue;
    const t = byTenant.get(priced.event.tenantId) ?? { months: new Set(), minutes: new Set(), messageIds: [] };
    const p = periodsOfEvent(priced);
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


function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/** An event's pricing dimensions besides model and tokens, only those it carries. */
function pricingOf(e: InvocationEventV1): PricingDimensions | undefined {
  const p: PricingDimensions = {};
  if (e.region) p.region = e.region;
  if (e.serviceTier) p.serviceTier = e.serviceTier;
  if (e.invokedModelId) p.invokedModelId = e.invokedModelId;
  return Object.keys(p).length ? p : undefined;
}

/** A duplicate from the path that did not claim the call: marked on the ledger, then counted per tenant-day. */
interface CrossMark {
  tenantId: string;
  eventId: string;
  source: InvocationSource;
  day: string;
}

/**
 * The source of this batch's reports of a call (the event's own, or the other path's carried in
 * the same batch) that the holder's path is not, if the holder is not marked yet. Undefined for
 * entries that predate sources (nothing says which path claimed them).
 */
function crossSourceFor(priced: PricedEvent, holder: LedgerHolder): InvocationSource | undefined {
  if (!holder.source || holder.crossSource) return undefined;
  const theirs = originOf(holder.source);
  for (const s of [priced.source, priced.crossSource]) if (s && originOf(s) !== theirs) return s;
  return undefined;
}

