import { InvalidInvocationEventError, originOf, parseInvocationEnvelope, type InvocationEventV1, type InvocationSource } from "../events/invocation";
import type { PriceCatalog, PricingDimensions } from "../pricing/catalog";
import { addSourceCount, coalesceCounting, correctionDeltas, countedAt, targetId, targetsOf } from "./coalesce";
import { Epochs, newEpochId, reachedBy, type Epoch } from "./epochs";
import type { MarkerState } from "./ports";
import { backoffMs, retryWrites, type RetryOptions } from "./retry";
import { COUNTER_NAMES, laterCounter, subtract, zeroCounters, zeroSourceCounts, type AggregateTarget, type PricedEvent, type SourceCounts, type UsageCounters, type WrittenItems } from "./model";
import { periodsOf } from "./periods";
import { contentFreeMessage, describeShape, envelopeIds } from "./quarantine";
import { periodsOfEvent } from "./coalesce";
import { LEDGER_BATCH_MAX, type AggregateWrite, type Claim, type CountedEstimate, type LedgerHolder, type LedgerWrite, type UsageStore } from "./ports";
import type { AggregateDelta } from "./coalesce";

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
  /** Its month and tenant-hour items as this call's writes returned them (the quota need not read them again). */
  written?: WrittenItems;
}

/** Whether the quota evaluation after the batch reads this item as the write returned it (tenant month and hour). */
function evaluationReads(t: AggregateTarget): t is Extract<AggregateTarget, { kind: "tenant" }> & { granularity: "month" | "hour" } {
  return t.kind === "tenant" && t.granularity !== "day";
}

/** Keeps a written tenant month or tenant-hour item (the latest write of it wins: it holds the earlier ones). */
function noteWritten(written: Map<string, WrittenItems>, d: AggregateDelta, item: Record<string, unknown> | undefined): void {
  const t = d.target;
  if (item === undefined || !evaluationReads(t)) return;
  const w = written.get(t.tenantId) ?? written.set(t.tenantId, { months: {}, hours: {} }).get(t.tenantId)!;
  const into = t.granularity === "month" ? w.months : w.hours;
  const before = into[t.period];
  if (!before || Number(item.requests ?? 0) >= Number(before.requests ?? 0)) into[t.period] = item;
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
  /** Ledger and aggregate writes of one batch in flight at once (default 32). */
  claimConcurrency?: number;
  /**
   * A run's longest life (default 30 s, the consumer's timeout). An epoch's lease is twice this
   * from its last finished run; a claim of a dead epoch's unfinished run is taken over after
   * the lease, which must stay below the queue's visibility timeout so a crashed run's events
   * are taken over when they are redelivered.
   */
  claimLeaseMs?: number;
  /** Waits before each retry of events another run is still counting (default ~3 s in all). */
  busyRetryDelaysMs?: readonly number[];
  /** Ids of new epochs (default: random, 10 characters). */
  epochId?: () => string;
  /** Clock skew tolerated for event times in the future. */
  maxFutureSkewMs?: number;
  maxAttempts?: number;
  clock?: () => Date;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

/**
 * Counts each distinct valid invocation event exactly once although delivery is
 * at-least-once: validate -> price -> dedupe within the batch -> one run of an epoch:
 * (1) claim each event's ledger entry with a conditional insert naming the epoch and run,
 * (2) one coalesced ADD per aggregate item, conditional on the item's high-water mark of the
 * epoch being below the run, (3) record the run done on the epoch. A claim of a dead epoch's
 * unfinished run is taken over: the items its writes reached carry its mark, the others get
 * the event now (see `shared/usage/README.md` for the protocol and why it is exactly once). A duplicate is
 * success. Invalid records are quarantined with their reason and reported as handled, so
 * they are neither retried forever nor lost.
 */
export class IngestService {
  private readonly clock: () => Date;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly random: () => number;

  private readonly leaseMs: number;
  private readonly epochs: Epochs;

  constructor(private readonly opts: IngestOptions) {
    this.clock = opts.clock ?? (() => new Date());
    this.leaseMs = opts.claimLeaseMs ?? 30_000;
    this.epochs = new Epochs(opts.store, this.leaseMs, this.clock, opts.epochId ?? newEpochId);
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

    // 2. count in one run: claims, then each aggregate item once, then the run recorded done.
    // Sorted by tenant, so a tenant's events sit together in the claim requests.
    const entries = [...byKey.values()].sort((a, b) => compareForCoalescing(a.priced, b.priced));
    const messageIdsOf = new Map(entries.map((e) => [ledgerKey(e.priced.event), e.messageIds]));
    const redelivered = new Set(records.filter((r) => r.receiveCount === undefined || r.receiveCount > 1).map((r) => r.messageId));
    /** Events whose counts this call changed (counted, or an estimate corrected). */
    const changed = new Set<string>();
    /** Tenants' month and tenant-hour items as this call's writes returned them, for the quota evaluation. */
    const written = new Map<string, WrittenItems>();
    /** Legacy commit markers read in this call: a decided marker never changes, so it is read once. */
    const markers = new Map<string, Promise<MarkerState | undefined>>();
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
    // set aside until our run is done, then tried again for a few seconds in runs of their own:
    // the other run finishes meanwhile (-> duplicate) or its lease runs out (-> taken over).
    let busy: { priced: PricedEvent; fate: EventFate }[] = [];
    const countAll = async (events: readonly PricedEvent[]) => {
      const fates = await this.runOnce(events, limit, markers, written);
      for (const priced of events) {
        const fate = fates.get(ledgerKey(priced.event)) ?? { kind: "failed", error: "no outcome (bug)" };
        if (fate.kind === "busy") busy.push({ priced, fate });
        else await record(priced, fate);
      }
    };
    await countAll(entries.map((e) => e.priced));
    for (const delay of this.opts.busyRetryDelaysMs ?? BUSY_RETRY_DELAYS_MS) {
      if (busy.length === 0) break;
      await this.sleep(delay);
      const again = busy.map((b) => b.priced);
      busy = [];
      await countAll(again);
    }
    for (const b of busy) await record(b.priced, b.fate);
    await this.countCrossSources(crossMarks, limit, stats);

    const touched = touchedTenants(entries, (key, messageId) => changed.has(key) || (redelivered.has(messageId) && outcomes.get(messageId)?.kind === "duplicate"));
    for (const t of touched) {
      const w = written.get(t.tenantId);
      if (w) t.written = w;
    }
    return { outcomes, counted, corrections, touched, stats };
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
   * One run of an epoch over `events` (see the class comment). Never throws: an event whose
   * fate is unknown is reported failed, and its redelivery settles it.
   */
  private async runOnce(
    events: readonly PricedEvent[],
    limit: Limiter,
    markers: Map<string, Promise<MarkerState | undefined>>,
    written: Map<string, WrittenItems>,
  ): Promise<Map<string, EventFate>> {
    const fates = new Map<string, EventFate>();
    if (events.length === 0) return fates;
    let epoch: Epoch;
    try {
      epoch = await this.epochs.acquire();
    } catch (error) {
      for (const e of events) fates.set(ledgerKey(e.event), { kind: "failed", error: `epoch record not written (${describe(error)})` });
      return fates;
    }
    const claim: Claim = { run: epoch.id, group: ++epoch.run };
    // The run may be recorded done only if every claim naming it is known and every write of it landed.
    let finished = false;
    try {
      // Phase 1: claims.
      const first = await this.insertAll(events, claim, epoch, limit);
      const claims = await Promise.all(
        events.map((e) => {
          const w = first.get(ledgerKey(e.event));
          return w?.kind === "created"
            ? ({ kind: "claimed" } as ClaimOutcome)
            : limit(async () =>
                (await this.epochs.keepAlive(epoch))
                  ? this.claimOne(e, claim, w, markers).catch((error: unknown) => ({ kind: "error" as const, error: describe(error) }))
                  : ({ kind: "error", error: "epoch lease ran out before the claim" } as ClaimOutcome),
              );
        }),
      );
      const counting: { key: string; event: PricedEvent; skip?: ReadonlySet<string>; completesEstimate?: boolean }[] = [];
      const corrections: { e: PricedEvent; held: Claim; estimate: CountedEstimate; holder: LedgerHolder }[] = [];
      let unknownClaim = false;
      events.forEach((e, i) => {
        const c = claims[i];
        const key = ledgerKey(e.event);
        if (c.kind === "claimed") counting.push({ key, event: c.counting ?? e, skip: c.landed, completesEstimate: c.completesEstimate });
        else if (c.kind === "duplicate") fates.set(key, { kind: "duplicate", holder: c.holder });
        else if (c.kind === "correct") corrections.push({ e, held: c.held, estimate: c.estimate, holder: c.holder });
        else if (c.kind === "busy") {
          fates.set(key, {
            kind: "busy",
            error: `event is being counted by a concurrent delivery (epoch ${c.holder.run} run ${c.holder.group}, claimed ${c.holder.claimedAt}); retry after it ends`,
          });
        } else if (c.kind === "defer") fates.set(key, { kind: "failed", error: c.error });
        else {
          // The entry may exist naming this run: the run is then never recorded done, so a
          // redelivery finds it unfinished and takes it over.
          unknownClaim = true;
          fates.set(key, { kind: "failed", error: `ledger write failed: ${c.error}` });
        }
      });
      for (const c of corrections) fates.set(ledgerKey(c.e.event), await this.correctOne(c.e, c.held, c.estimate, c.holder));
      if (unknownClaim) {
        // An entry naming this run whose call is not among the writes below would look counted
        // wherever the run's mark lands: write nothing, so every claim of the run is finished
        // from scratch after the lease.
        for (const c of counting) fates.set(c.key, { kind: "failed", error: "not counted: another ledger write of its batch has an unknown outcome" });
        return fates;
      }

      // Phase 2: one conditional ADD per aggregate item.
      const failedItems = await this.addAll(coalesceCounting(counting), epoch, claim, limit, written);
      const firstFailure = failedItems.values().next().value;
      for (const c of counting) {
        const ids = targetsOf(c.event).map(targetId);
        if (ids.some((id) => !c.skip?.has(id) && failedItems.has(id))) fates.set(c.key, { kind: "failed", error: `aggregate write failed: ${firstFailure}` });
        // An estimate's interrupted count completed: the exact report corrects it on its redelivery.
        else if (c.completesEstimate) fates.set(c.key, { kind: "failed", error: "completed an interrupted count of this call's estimate; the exact report corrects it when redelivered" });
        // taken over from a dead run whose writes had all landed: counted before, nothing added now
        else if (c.skip && ids.every((id) => c.skip!.has(id))) fates.set(c.key, { kind: "duplicate" });
        else fates.set(c.key, { kind: "counted" });
      }

      // Phase 3: the run recorded done (a run that claimed nothing has nothing to record).
      if (failedItems.size === 0) finished = counting.length === 0 || (await this.epochs.finish(epoch, claim.group));
    } finally {
      this.epochs.release(epoch, finished);
    }
    return fates;
  }

  /**
   * Claims the ledger entries, 25 a request. Returns the first write's outcome by ledger key;
   * absent where the request failed (its outcome is unknown: the event is claimed again one by
   * one, which is safe, since an entry that turns out to be ours is recognised as ours).
   */
  private async insertAll(events: readonly PricedEvent[], claim: Claim, epoch: Epoch, limit: Limiter): Promise<Map<string, LedgerWrite>> {
    const entries = events.map((event) => ({ event, claim }));
    const first = new Map<string, LedgerWrite>();
    await Promise.all(
      Array.from({ length: Math.ceil(entries.length / LEDGER_BATCH_MAX) }, (_, b) =>
        limit(async () => {
          const slice = entries.slice(b * LEDGER_BATCH_MAX, (b + 1) * LEDGER_BATCH_MAX);
          // a long claim phase keeps the lease too (an entry claimed after it could be taken over unseen)
          if (!(await this.epochs.keepAlive(epoch))) return;
          // one claim is one conditional put (a batch statement of one costs the same and does more)
          const out =
            slice.length === 1
              ? [await this.opts.store.putLedger(slice[0].event, slice[0].claim, this.clock()).catch(() => undefined)]
              : await this.opts.store.insertLedgers(slice, this.clock()).catch(() => slice.map(() => undefined));
          out.forEach((w, i) => {
            if (w && w.kind !== "error") first.set(ledgerKey(slice[i].event.event), w);
          });
        }),
      ),
    );
    return first;
  }

  /** Takes the event's ledger entry for `claim`: created, our own, or taken over from a dead run. */
  private async claimOne(e: PricedEvent, claim: Claim, firstWrite: LedgerWrite | undefined, markers: Map<string, Promise<MarkerState | undefined>>): Promise<ClaimOutcome> {
    let holder: LedgerHolder = {};
    let unknown: unknown;
    for (let attempt = 0; attempt < 4; attempt++) {
      try {
        const outcome = await this.claimAttempt(e, claim, attempt === 0 ? firstWrite : undefined, markers);
        if (outcome.kind !== "again") return outcome;
        holder = outcome.holder;
        unknown = undefined;
      } catch (error) {
        // A ledger write or a read after a take-over with an unknown outcome: the next attempt's
        // conditional put finds out whose the entry is (ours: with the holders we took it from).
        unknown = error;
      }
    }
    if (unknown !== undefined) throw unknown;
    return { kind: "busy", holder };
  }

  private async claimAttempt(
    e: PricedEvent,
    claim: Claim,
    firstWrite: LedgerWrite | undefined,
    markers: Map<string, Promise<MarkerState | undefined>>,
  ): Promise<ClaimOutcome | { kind: "again"; holder: LedgerHolder }> {
    const now = this.clock();
    const write = firstWrite ?? (await this.opts.store.putLedger(e, claim, now));
    if (write.kind === "created") return { kind: "claimed" };
    const holder = write.holder;
    // An entry without a holder predates claims: it was counted in the same transaction.
    if (holder.run === undefined || holder.group === undefined) return { kind: "duplicate" };
    // Our own entry, after a lost response: created by us, or taken over from the holders in `prev`.
    if (holder.run === claim.run && holder.group === claim.group) return holder.prev?.length ? this.takenOver(e, holder, holder.prev) : { kind: "claimed" };
    const held: Claim = { run: holder.run, group: holder.group };
    let state: "counted" | "busy" | "dead";
    try {
      state = holder.hw ? await this.runState(held, now) : await this.groupState(held, holder, now, markers);
    } catch (error) {
      // nothing of ours was written for this call: only its record fails
      return { kind: "defer", error: `holder's state not read (${describe(error)})` };
    }
    if (state === "busy") return { kind: "busy", holder };
    if (state === "counted") {
      // An exact report of a call that was counted from an estimate (an abandoned stream,
      // then the invocation log): the exact counts replace the estimate, once.
      if (holder.estimate && !e.event.estimated) return { kind: "correct", held, estimate: holder.estimate, holder };
      return { kind: "duplicate", holder };
    }
    if (!holder.hw) {
      // A legacy group aborted: nothing of it landed. Take the entry over unless a third run was faster.
      return (await this.opts.store.moveLedger(e, held, claim, this.clock())) ? { kind: "claimed" } : { kind: "again", holder };
    }
    // A dead epoch's unfinished run: some of the call's items may carry its mark. The call is
    // finished as that run counted it (its event time and model; an estimate's counts). An
    // estimate cannot finish exact counts it does not carry: the exact report's own
    // redelivery (its run failed too) does.
    if (e.event.estimated && !holder.estimate) return { kind: "defer", error: "an interrupted exact count is finished by the exact report's redelivery, not by an estimate" };
    const prev = [...(holder.prev ?? []), held];
    if (!(await this.opts.store.moveLedger(asClaimed(e, holder), held, claim, this.clock(), prev))) return { kind: "again", holder };
    return this.takenOver(e, holder, prev);
  }

  /** A call taken over from dead holders (`prev`): the items their writes reached are not added again. */
  private async takenOver(e: PricedEvent, holder: LedgerHolder, prev: readonly Claim[]): Promise<ClaimOutcome> {
    const counting = asClaimed(e, holder);
    const landed = await this.landedOf(counting, prev);
    return { kind: "claimed", landed, ...(counting !== e ? { counting, completesEstimate: counting.event.estimated === true && !e.event.estimated } : {}) };
  }

  /** Whether a high-water claim's run counted the call, is still running, or died unfinished. */
  private async runState(held: Claim, now: Date): Promise<"counted" | "busy" | "dead"> {
    const s = await this.epochs.stateFor(held.run, held.group);
    if (!s) throw new Error(`epoch ${held.run} of a ledger entry has no record`);
    if (s.done >= held.group) return "counted";
    return now.getTime() >= s.leaseUntil ? "dead" : "busy";
  }

  /** The same for a legacy claim (a run id and group, decided by its commit marker). */
  private async groupState(held: Claim, holder: LedgerHolder, now: Date, markers: Map<string, Promise<MarkerState | undefined>>): Promise<"counted" | "busy" | "dead"> {
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
      // Undecided: its run may still be working. After the lease the run is dead, so its group is aborted.
      const age = now.getTime() - Date.parse(holder.claimedAt ?? "");
      if (age < this.leaseMs) return "busy";
      state = await this.opts.store.abort(held, now);
      markers.set(markerId, Promise.resolve(state));
    }
    return state === "committed" ? "counted" : "dead";
  }

  /** The call's aggregate items that a write of an earlier holder reached (its mark is at least that run). */
  private async landedOf(e: PricedEvent, prev: readonly Claim[]): Promise<Set<string>> {
    const targets = targetsOf(e);
    const marks = await this.opts.store.highWaterMarks(targets);
    const landed = new Set<string>();
    for (const t of targets) if (reachedBy(marks.get(targetId(t)) ?? {}, prev)) landed.add(targetId(t));
    return landed;
  }

  /** Phase 2: every delta once, concurrently. Returns the items not known to have landed, with why. */
  private async addAll(deltas: readonly AggregateDelta[], epoch: Epoch, claim: Claim, limit: Limiter, written: Map<string, WrittenItems>): Promise<Map<string, string>> {
    const failed = new Map<string, string>();
    if (deltas.length === 0) return failed;
    await this.epochs.learn(deltas.map((d) => targetId(d.target)));
    await Promise.all(
      deltas.map((d) =>
        limit(async () => {
          const out = await this.addOne(d, epoch, claim);
          if ("why" in out) failed.set(targetId(d.target), out.why);
          else noteWritten(written, d, out.item);
        }),
      ),
    );
    return failed;
  }

  /**
   * One item: retried with backoff after throttling or an unknown outcome (the same conditional
   * write tells whether the earlier one landed). Returns why it did not land, or undefined.
   */
  private async addOne(d: AggregateDelta, epoch: Epoch, claim: Claim): Promise<{ item: Record<string, unknown> | undefined } | { why: string }> {
    const id = targetId(d.target);
    let clean = this.epochs.cleanable(id, epoch.id);
    let why = "no attempt";
    const attempts = this.retry().maxAttempts;
    for (let attempt = 0; attempt < attempts; attempt++) {
      if (attempt > 0) await this.sleep(backoffMs(attempt, this.random));
      // Never a write after the lease: a taker-over may be reading the marks by then.
      if (!(await this.epochs.keepAlive(epoch))) return { why: `epoch lease ran out (${why})` };
      let w: AggregateWrite;
      try {
        w = await this.opts.store.addAggregate(d, { epoch: epoch.id, run: claim.group }, clean, this.clock(), { item: evaluationReads(d.target) });
      } catch (error) {
        why = describe(error);
        continue;
      }
      if (w.kind === "retryable") {
        why = w.reason;
        continue;
      }
      // a write that returned nothing: the marks known before, less the ones it removed
      if (w.marks) this.epochs.remember(id, w.marks);
      else this.epochs.removed(id, clean.map((c) => c.epoch));
      if (w.kind === "clean-conflict") {
        // a mark we meant to remove belongs to an unfinished run: leave it
        clean = [];
        attempt--;
        continue;
      }
      return { item: w.item };
    }
    return { why: `not written after ${attempts} attempts: ${why}` };
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

  private retry(): RetryOptions {
    return { maxAttempts: this.opts.maxAttempts ?? 8, sleep: this.sleep, random: this.random };
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
  /** Held by another run that is still running: retried later in this call, then failed. */
  | { kind: "busy"; error: string };

/**
 * The call as a holder's ledger entry counted it: its event time and model, and an estimate's
 * counts, so a take-over adds to the items the holder's writes did not reach what the holder
 * would have added.
 */
function asClaimed(e: PricedEvent, holder: LedgerHolder): PricedEvent {
  // the path that reported it first stays the holder's (the tenant-day count the holder's write may have made)
  const paths = holder.source ? { source: holder.source, crossSource: holder.crossSource } : {};
  const est = holder.estimate;
  if (est && !e.event.estimated) {
    return { ...e, ...paths, event: { ...e.event, ...countedAt(est), estimated: true }, counters: { ...est.counters } };
  }
  const occurredAt = holder.occurredAt ?? e.event.occurredAt;
  const modelId = holder.modelId ?? e.event.modelId;
  if (occurredAt === e.event.occurredAt && modelId === e.event.modelId && (!holder.source || (holder.source === e.source && holder.crossSource === e.crossSource))) return e;
  return { ...e, ...paths, event: { ...e.event, occurredAt, modelId } };
}

/** Waits before retrying events held by a concurrent run: about 3 s in all. */
const BUSY_RETRY_DELAYS_MS = [50, 100, 200, 400, 800, 800, 800];
type ClaimOutcome =
  /**
   * `landed`: target ids an earlier, dead holder's writes reached (not added again).
   * `counting`: the call as that holder counted it, when it differs from this delivery (an estimate).
   */
  | { kind: "claimed"; landed?: ReadonlySet<string>; counting?: PricedEvent; completesEstimate?: boolean }
  | { kind: "duplicate"; holder?: LedgerHolder }
  | { kind: "busy"; holder: LedgerHolder }
  | { kind: "correct"; held: Claim; estimate: CountedEstimate; holder: LedgerHolder }
  /** Not claimed, nothing written for it: its record fails and is redelivered. */
  | { kind: "defer"; error: string }
  /** A ledger write of this run with an unknown outcome: the entry may name this run. */
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

