import { targetId, type AggregateDelta } from "../../shared/usage/coalesce";
import { ledgerKey } from "../../shared/usage/ingest";
import type { InvocationSource } from "../../shared/events/invocation";
import { SOURCE_COUNT_NAMES, addCounters, tenantDayTarget, zeroCounters, zeroSourceCounts, type PricedEvent, type SourceCounts, type UsageCounters } from "../../shared/usage/model";
import { LEDGER_BATCH_MAX, type ApplyResult, type Claim, type CorrectResult, type CountedEstimate, type LedgerWrite, type MarkerState, type QuarantineRecord, type UsageStore } from "../../shared/usage/ports";

const markerId = (c: Claim) => `${c.run}#${c.group}`;

function estimateOf(e: PricedEvent): CountedEstimate | undefined {
  if (!e.event.estimated) return undefined;
  const { occurredAt, provider, modelId, endpointName } = e.event;
  return { occurredAt, provider, modelId, endpointName, counters: { ...e.counters } };
}

type LedgerEntry = { run: string; group: number; claimedAt: string; estimate?: CountedEstimate; source?: InvocationSource; crossSource?: InvocationSource; occurredAt?: string };

function entryOf(e: PricedEvent, claim: Claim, now: Date): LedgerEntry {
  return { ...claim, claimedAt: now.toISOString(), estimate: estimateOf(e), source: e.source, crossSource: e.crossSource, occurredAt: e.event.occurredAt };
}

/**
 * In-memory fake of the usage store with the adapter's semantics: conditional ledger puts,
 * write-once group markers, and an all-or-nothing apply of marker plus aggregates.
 */
export class MemoryUsageStore implements UsageStore {
  readonly ledger = new Map<string, LedgerEntry>();
  /** Source counters of tenant-day items, by target id. */
  readonly sources = new Map<string, SourceCounts>();
  readonly markers = new Map<string, MarkerState>();
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

  async moveLedger(e: PricedEvent, from: Claim, to: Claim, now: Date): Promise<boolean> {
    const key = ledgerKey(e.event);
    const holder = this.ledger.get(key);
    if (!holder || holder.run !== from.run || holder.group !== from.group) return false;
    this.ledger.set(key, entryOf(e, to, now));
    return true;
  }

  async marker(claim: Claim): Promise<MarkerState | undefined> {
    return this.markers.get(markerId(claim));
  }

  async abort(claim: Claim): Promise<MarkerState> {
    const id = markerId(claim);
    if (!this.markers.has(id)) this.markers.set(id, "aborted");
    return this.markers.get(id)!;
  }

  async apply(claim: Claim, deltas: readonly AggregateDelta[]): Promise<ApplyResult> {
    this.applies++;
    const state = this.markers.get(markerId(claim));
    if (state) return { kind: "marked", state };
    this.markers.set(markerId(claim), "committed");
    for (const d of deltas) {
      const id = targetId(d.target);
      this.aggregates.set(id, addCounters(this.aggregates.get(id) ?? zeroCounters(), d.counters));
      this.itemWrites.set(id, (this.itemWrites.get(id) ?? 0) + 1);
      if (d.sources) this.addSources(id, d.sources);
    }
    return { kind: "committed" };
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

  /** Ledger entries whose group committed: the events counted. */
  countedEvents(): number {
    return [...this.ledger.values()].filter((h) => this.markers.get(markerId(h)) === "committed").length;
  }
}

export type StoreOp = "putLedger" | "insertLedgers" | "moveLedger" | "marker" | "abort" | "apply" | "correct" | "markCrossSource" | "addSourceCounts";
/**
 * ok; throw before the call reaches the store (a failed request); lost: the call lands but
 * its response is lost (throws after); retryable: a throttled transaction (apply only).
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
    if (f === "throw" || (f === "retryable" && op !== "apply" && op !== "correct")) throw new Error(`injected failure of ${op} (call ${this.calls})`);
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
  moveLedger(e: PricedEvent, from: Claim, to: Claim, now: Date) {
    return this.run("moveLedger", () => this.inner.moveLedger(e, from, to, now));
  }
  marker(claim: Claim) {
    return this.run("marker", () => this.inner.marker(claim));
  }
  abort(claim: Claim, now: Date) {
    return this.run("abort", () => this.inner.abort(claim, now));
  }
  apply(claim: Claim, deltas: readonly AggregateDelta[], now: Date) {
    return this.run("apply", () => this.inner.apply(claim, deltas, now));
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
