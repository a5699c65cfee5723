import { targetId, type AggregateDelta } from "../../shared/usage/coalesce";
import { ledgerKey } from "../../shared/usage/ingest";
import { addCounters, zeroCounters, type PricedEvent, type UsageCounters } from "../../shared/usage/model";
import type { CommitResult, QuarantineRecord, UsageStore } from "../../shared/usage/ports";

/** In-memory fake of the usage store with the same all-or-nothing commit semantics. */
export class MemoryUsageStore implements UsageStore {
  readonly ledger = new Set<string>();
  readonly aggregates = new Map<string, UsageCounters>();
  readonly quarantined: QuarantineRecord[] = [];
  commits = 0;

  async commit(events: readonly PricedEvent[], deltas: readonly AggregateDelta[]): Promise<CommitResult> {
    this.commits++;
    const dups = events.map((e) => ledgerKey(e.event)).filter((k) => this.ledger.has(k));
    if (dups.length) return { kind: "duplicates", duplicates: dups };
    for (const e of events) this.ledger.add(ledgerKey(e.event));
    for (const d of deltas) {
      const id = targetId(d.target);
      this.aggregates.set(id, addCounters(this.aggregates.get(id) ?? zeroCounters(), d.counters));
    }
    return { kind: "committed", duplicates: [] };
  }

  async quarantine(record: QuarantineRecord): Promise<void> {
    this.quarantined.push(record);
  }

  month(tenantId: string, month: string): UsageCounters | undefined {
    return this.aggregates.get(`t|${tenantId}|month|${month}`);
  }
}

/** Wraps a store and injects faults: thrown errors and retryable cancellations. */
export class FaultyStore implements UsageStore {
  calls = 0;
  constructor(
    private readonly inner: UsageStore,
    private readonly fault: (call: number) => "ok" | "throw" | "retryable",
  ) {}

  async commit(events: readonly PricedEvent[], deltas: readonly AggregateDelta[]): Promise<CommitResult> {
    const f = this.fault(++this.calls);
    if (f === "throw") throw new Error(`injected crash on commit ${this.calls}`);
    if (f === "retryable") return { kind: "retryable", reason: "injected ThrottlingError" };
    return this.inner.commit(events, deltas);
  }

  quarantine(record: QuarantineRecord): Promise<void> {
    return this.inner.quarantine(record);
  }
}
