import { targetId, targetsOf, type AggregateDelta } from "../../shared/usage/coalesce";
import { ledgerKey } from "../../shared/usage/ingest";
import { reachedBy } from "../../shared/usage/epochs";
import type { InvocationSource } from "../../shared/events/invocation";
import { SOURCE_COUNT_NAMES, addCounters, tenantDayTarget, zeroCounters, zeroSourceCounts, type AggregateTarget, type PricedEvent, type SourceCounts, type UsageCounters } from "../../shared/usage/model";
import { LEDGER_BATCH_MAX, type AggregateWrite, type Claim, type CorrectResult, type CountedEstimate, type EpochState, type HighWaterMarks, type LedgerWrite, type MarkerState, type QuarantineRecord, type UsageStore } from "../../shared/usage/ports";

const markerId = (c: Claim) => `${c.run}#${c.group}`;

function estimateOf(e: PricedEvent): CountedEstimate | undefined {
  if (!e.event.estimated) return undefined;
  const { occurredAt, provider, modelId, endpointName } = e.event;
  return { occurredAt, provider, modelId, endpointName, counters: { ...e.counters } };
}

type LedgerEntry = {
  run: string;
  group: number;
  /** A high-water claim (false: a legacy group claim, decided by its marker). */
  hw: boolean;
  prev?: Claim[];
  claimedAt: string;
  estimate?: CountedEstimate;
  source?: InvocationSource;
  crossSource?: InvocationSource;
  occurredAt?: string;
  modelId?: string;
  /** The call's aggregate items (target ids), for `countedEvents`. */
  targets: string[];
};

function entryOf(e: PricedEvent, claim: Claim, now: Date): LedgerEntry {
  return {
    ...claim,
    hw: true,
    claimedAt: now.toISOString(),
    estimate: estimateOf(e),
    source: e.source,
    crossSource: e.crossSource,
    occurredAt: e.event.occurredAt,
    modelId: e.event.modelId,
    targets: targetsOf(e).map(targetId),
  };
}

/**
 * In-memory fake of the usage store with the adapter's semantics: conditional ledger puts,
 * epoch records, aggregate writes conditional on the item's high-water mark of the writer's
 * epoch (single-item atomic, like an UpdateItem), and write-once legacy group markers.
 */
export class MemoryUsageStore implements UsageStore {
  readonly ledger = new Map<string, LedgerEntry>();
  /** Source counters of tenant-day items, by target id. */
  readonly sources = new Map<string, SourceCounts>();
  readonly markers = new Map<string, MarkerState>();
  readonly epochs = new Map<string, EpochState>();
  readonly marks = new Map<string, HighWaterMarks>();
  readonly aggregates = new Map<string, UsageCounters>();
  readonly quarantined: QuarantineRecord[] = [];
  /** Aggregate item writes, per item id (the hot-item figure). */
  readonly itemWrites = new Map<string, number>();
  applies = 0;

  async putLedger(e: PricedEvent, claim: Claim, now: Date): Promise<LedgerWrite> {
    const key = ledgerKey(e.event);
    const holder = this.ledger.get(key);
    if (holder) return { kind: "exists", holder: { ...holder } };
    this.ledger.set(key, entryOf(e, claim, now));
    return { kind: "created" };
  }

  async insertLedgers(entries: readonly { event: PricedEvent; claim: Claim }[], now: Date): Promise<LedgerWrite[]> {
    if (entries.length > LEDGER_BATCH_MAX) throw new RangeError(`too many: ${entries.length}`);
    const out: LedgerWrite[] = [];
    for (const { event, claim } of entries) out.push(await this.putLedger(event, claim, now));
    return out;
  }

  async moveLedger(e: PricedEvent, from: Claim, to: Claim, now: Date, prev?: readonly Claim[]): Promise<boolean> {
    const key = ledgerKey(e.event);
    const holder = this.ledger.get(key);
    if (!holder || holder.run !== from.run || holder.group !== from.group) return false;
    this.ledger.set(key, { ...entryOf(e, to, now), ...(prev?.length ? { prev: prev.map((c) => ({ ...c })) } : {}) });
    return true;
  }

  async startEpoch(epoch: string, leaseUntil: number): Promise<void> {
    if (this.epochs.has(epoch)) throw new Error(`epoch ${epoch} exists already`);
    this.epochs.set(epoch, { done: 0, leaseUntil });
  }

  async extendLease(epoch: string, leaseUntil: number, now: Date): Promise<boolean> {
    const s = this.epochs.get(epoch);
    if (!s || s.leaseUntil <= now.getTime() || s.leaseUntil >= leaseUntil) return false;
    s.leaseUntil = leaseUntil;
    return true;
  }

  async finishRun(epoch: string, run: number, leaseUntil: number): Promise<void> {
    const s = this.epochs.get(epoch);
    if (!s) throw new Error(`no epoch ${epoch}`);
    if (s.done < run) this.epochs.set(epoch, { done: run, leaseUntil });
  }

  async epochStates(epochs: readonly string[]): Promise<Map<string, EpochState>> {
    return new Map(epochs.filter((e) => this.epochs.has(e)).map((e) => [e, { ...this.epochs.get(e)! }]));
  }

  async addAggregate(d: AggregateDelta, mark: { epoch: string; run: number }, clean: readonly { epoch: string; upTo: number }[]): Promise<AggregateWrite> {
    this.applies++;
    const id = targetId(d.target);
    const marks = this.marks.get(id) ?? {};
    if ((marks[mark.epoch] ?? 0) >= mark.run) return { kind: "already", marks: { ...marks }, item: { ...this.aggregates.get(id) } };
    if (clean.some((c) => (marks[c.epoch] ?? 0) > c.upTo)) return { kind: "clean-conflict", marks: { ...marks } };
    for (const c of clean) delete marks[c.epoch];
    marks[mark.epoch] = mark.run;
    this.marks.set(id, marks);
    this.aggregates.set(id, addCounters(this.aggregates.get(id) ?? zeroCounters(), d.counters));
    this.itemWrites.set(id, (this.itemWrites.get(id) ?? 0) + 1);
    if (d.sources) this.addSources(id, d.sources);
    return { kind: "applied", marks: { ...marks }, item: { ...this.aggregates.get(id) } };
  }

  async highWaterMarks(targets: readonly AggregateTarget[]): Promise<Map<string, HighWaterMarks>> {
    return new Map(targets.filter((t) => this.marks.has(targetId(t))).map((t) => [targetId(t), { ...this.marks.get(targetId(t))! }]));
  }

  async marker(claim: Claim): Promise<MarkerState | undefined> {
    return this.markers.get(markerId(claim));
  }

  async abort(claim: Claim): Promise<MarkerState> {
    const id = markerId(claim);
    if (!this.markers.has(id)) this.markers.set(id, "aborted");
    return this.markers.get(id)!;
  }

  async correct(e: PricedEvent, held: Claim, deltas: readonly AggregateDelta[]): Promise<CorrectResult> {
    const key = ledgerKey(e.event);
    const entry = this.ledger.get(key);
    if (!entry || entry.run !== held.run || entry.group !== held.group || !entry.estimate) return { kind: "already" };
    this.ledger.set(key, { ...entry, estimate: undefined, ...(e.crossSource ? { crossSource: e.crossSource } : {}) });
    for (const d of deltas) {
      const id = targetId(d.target);
      if (d.sources) this.addSources(id, d.sources);
      this.aggregates.set(id, addCounters(this.aggregates.get(id) ?? zeroCounters(), d.counters));
      this.itemWrites.set(id, (this.itemWrites.get(id) ?? 0) + 1);
    }
    return { kind: "corrected" };
  }

  async quarantine(record: QuarantineRecord): Promise<void> {
    this.quarantined.push(record);
  }

  async markCrossSource(tenantId: string, eventId: string, source: InvocationSource): Promise<boolean> {
    const entry = this.ledger.get(ledgerKey({ tenantId, eventId }));
    if (!entry || !entry.source || entry.source === source || entry.crossSource) return false;
    entry.crossSource = source;
    return true;
  }

  async addSourceCounts(tenantId: string, day: string, counts: SourceCounts): Promise<void> {
    this.addSources(targetId(tenantDayTarget(tenantId, day)), counts);
  }

  private addSources(id: string, add: SourceCounts): void {
    const s = this.sources.get(id) ?? zeroSourceCounts();
    for (const c of SOURCE_COUNT_NAMES) s[c] += add[c];
    this.sources.set(id, s);
  }

  month(tenantId: string, month: string): UsageCounters | undefined {
    return this.aggregates.get(`t|${tenantId}|month|${month}`);
  }

  /**
   * Ledger entries whose call is counted: a legacy group committed, a high-water run recorded
   * done, or every item of the call carrying the mark of the holder or of an earlier holder.
   */
  countedEvents(): number {
    return [...this.ledger.values()].filter((h) => {
      if (!h.hw) return this.markers.get(markerId(h)) === "committed";
      if ((this.epochs.get(h.run)?.done ?? 0) >= h.group) return true;
      const holders = [...(h.prev ?? []), { run: h.run, group: h.group }];
      return h.targets.every((t) => reachedBy(this.marks.get(t) ?? {}, holders));
    }).length;
  }

  /** A claim in the legacy shape (a run id and group, decided by a commit marker), as written before high-water commits. */
  legacyClaim(e: PricedEvent, claim: Claim, claimedAt: string): void {
    this.ledger.set(ledgerKey(e.event), { ...entryOf(e, claim, new Date(claimedAt)), hw: false });
  }
}

export type StoreOp =
  | "putLedger"
  | "insertLedgers"
  | "moveLedger"
  | "startEpoch"
  | "finishRun"
  | "extendLease"
  | "epochStates"
  | "addAggregate"
  | "highWaterMarks"
  | "marker"
  | "abort"
  | "correct"
  | "markCrossSource"
  | "addSourceCounts";
/**
 * ok; throw before the call reaches the store (a failed request); lost: the call lands but
 * its response is lost (throws after); retryable: a throttled write (addAggregate, correct only).
 */
export type Fault = "ok" | "throw" | "lost" | "retryable";

/** Wraps a store and injects faults into any of its calls. */
export class FaultyStore implements UsageStore {
  calls = 0;
  constructor(
    private readonly inner: UsageStore,
    private readonly fault: (call: number, op: StoreOp) => Fault,
  ) {}

  private async run<T>(op: StoreOp, call: () => Promise<T>): Promise<T> {
    const f = this.fault(++this.calls, op);
    if (f === "throw" || (f === "retryable" && op !== "addAggregate" && op !== "correct")) throw new Error(`injected failure of ${op} (call ${this.calls})`);
    if (f === "retryable") return { kind: "retryable", reason: "injected ThrottlingError" } as T;
    const out = await call();
    if (f === "lost") throw new Error(`injected lost response of ${op} (call ${this.calls})`);
    return out;
  }

  putLedger(e: PricedEvent, claim: Claim, now: Date) {
    return this.run("putLedger", () => this.inner.putLedger(e, claim, now));
  }
  insertLedgers(entries: readonly { event: PricedEvent; claim: Claim }[], now: Date) {
    return this.run("insertLedgers", () => this.inner.insertLedgers(entries, now));
  }
  moveLedger(e: PricedEvent, from: Claim, to: Claim, now: Date, prev?: readonly Claim[]) {
    return this.run("moveLedger", () => this.inner.moveLedger(e, from, to, now, prev));
  }
  startEpoch(epoch: string, leaseUntil: number, now: Date) {
    return this.run("startEpoch", () => this.inner.startEpoch(epoch, leaseUntil, now));
  }
  extendLease(epoch: string, leaseUntil: number, now: Date) {
    return this.run("extendLease", () => this.inner.extendLease(epoch, leaseUntil, now));
  }
  finishRun(epoch: string, run: number, leaseUntil: number, now: Date) {
    return this.run("finishRun", () => this.inner.finishRun(epoch, run, leaseUntil, now));
  }
  epochStates(epochs: readonly string[]) {
    return this.run("epochStates", () => this.inner.epochStates(epochs));
  }
  addAggregate(d: AggregateDelta, mark: { epoch: string; run: number }, clean: readonly { epoch: string; upTo: number }[], now: Date) {
    return this.run("addAggregate", () => this.inner.addAggregate(d, mark, clean, now));
  }
  highWaterMarks(targets: readonly AggregateTarget[]) {
    return this.run("highWaterMarks", () => this.inner.highWaterMarks(targets));
  }
  marker(claim: Claim) {
    return this.run("marker", () => this.inner.marker(claim));
  }
  abort(claim: Claim, now: Date) {
    return this.run("abort", () => this.inner.abort(claim, now));
  }
  correct(e: PricedEvent, held: Claim, deltas: readonly AggregateDelta[], now: Date) {
    return this.run("correct", () => this.inner.correct(e, held, deltas, now));
  }
  quarantine(record: QuarantineRecord): Promise<void> {
    return this.inner.quarantine(record);
  }
  markCrossSource(tenantId: string, eventId: string, source: InvocationSource, now: Date) {
    return this.run("markCrossSource", () => this.inner.markCrossSource(tenantId, eventId, source, now));
  }
  addSourceCounts(tenantId: string, day: string, counts: SourceCounts, now: Date) {
    return this.run("addSourceCounts", () => this.inner.addSourceCounts(tenantId, day, counts, now));
  }
}
