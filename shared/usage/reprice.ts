import type { PriceCatalog } from "../pricing/catalog";
import { correctionDeltas, countedAt } from "./coalesce";
import { retryWrites } from "./retry";
import { zeroCounters, type PricedEvent } from "./model";
import { daysBetween } from "./periods";
import type { AggregateDelta } from "./coalesce";
import type { Claim, CountedEstimate, CorrectResult } from "./ports";

/** A counted ledger entry whose model had no price when it was counted. */
export interface UnpricedEntry extends CountedEstimate {
  tenantId: string;
  eventId: string;
  held: Claim;
  /** A high-water claim, and its earlier holders (see `LedgerHolder`). */
  hw?: boolean;
  prev?: Claim[];
}

/** Port: unpriced entries and their one-time repricing. */
export interface RepriceStore {
  /** Events noted `unknown-model` on a day (the quarantine notes the ingest leaves). */
  unpricedNotes(day: string): Promise<{ tenantId: string; eventId: string }[]>;
  /** The event's ledger entry if it is still unpriced, else undefined. */
  unpricedEntry(tenantId: string, eventId: string): Promise<UnpricedEntry | undefined>;
  /** Whether the entry's holder counted the call: its run recorded done, or every item of the call carrying its mark (a legacy group: committed). */
  isCounted(entry: UnpricedEntry): Promise<boolean>;
  /** Atomically, once: marks the entry priced at `costNanoUsd` (only if still unpriced and held by the same group) and adds `deltas`. */
  reprice(entry: UnpricedEntry, costNanoUsd: number, deltas: readonly AggregateDelta[], now: Date): Promise<CorrectResult>;
}

export interface RepriceReport {
  days: string[];
  notes: number;
  repriced: { tenantId: string; eventId: string; modelId: string; costNanoUsd: number }[];
  /** Still no price in the catalog. */
  stillUnpriced: { tenantId: string; eventId: string; modelId: string }[];
  /** Priced before (an earlier run) or never counted. */
  skipped: number;
  failed: { tenantId: string; eventId: string; error: string }[];
}

/**
 * Prices usage that was counted without a price (a Bedrock model missing from the catalog):
 * after the price is added (`PRICE_CATALOG_JSON`), each noted event gets its cost added to
 * every aggregate it counted in, and `unpricedRequests` taken off, exactly once (the ledger
 * entry's `unpriced` flag flips in the same transaction). The price is the one in force on the
 * event's day. Safe to rerun.
 */
export class RepriceService {
  private readonly clock: () => Date;

  constructor(
    private readonly opts: {
      store: RepriceStore;
      prices: PriceCatalog;
      region: string;
      clock?: () => Date;
      sleep?: (ms: number) => Promise<void>;
      maxAttempts?: number;
    },
  ) {
    this.clock = opts.clock ?? (() => new Date());
  }

  async reprice(range: { from: string; to: string; dryRun?: boolean }): Promise<RepriceReport> {
    const days = daysBetween(range.from, range.to);
    const report: RepriceReport = { days, notes: 0, repriced: [], stillUnpriced: [], skipped: 0, failed: [] };
    const seen = new Set<string>();
    for (const day of days) {
      for (const note of await this.opts.store.unpricedNotes(day)) {
        const key = `${note.tenantId}#${note.eventId}`;
        if (seen.has(key)) continue;
        seen.add(key);
        report.notes++;
        try {
          await this.one(note, report, range.dryRun ?? false);
        } catch (error) {
          report.failed.push({ ...note, error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) });
        }
      }
    }
    return report;
  }

  private async one(note: { tenantId: string; eventId: string }, report: RepriceReport, dryRun: boolean): Promise<void> {
    const entry = await this.opts.store.unpricedEntry(note.tenantId, note.eventId);
    // Priced already, or not counted (yet): then a redelivery counts it, priced.
    if (!entry || !(await this.opts.store.isCounted(entry))) return void report.skipped++;
    const { counters } = entry;
    const price = this.opts.prices.price(
      {
        provider: entry.provider,
        modelId: entry.modelId,
        occurredAt: entry.occurredAt,
        inputTokens: counters.inputTokens,
        outputTokens: counters.outputTokens,
        cacheReadInputTokens: counters.cacheReadInputTokens,
        cacheWriteInputTokens: counters.cacheWriteInputTokens,
        cacheWrite1hInputTokens: counters.cacheWrite1hInputTokens,
        ...entry.pricing,
      },
      this.opts.region,
    );
    if (!price.priced) return void report.stillUnpriced.push({ ...note, modelId: entry.modelId });
    const delta = zeroCounters();
    delta.costNanoUsd = price.costNanoUsd;
    delta.unpricedRequests = -1;
    const event: PricedEvent = {
      event: { ...countedAt(entry), eventId: entry.eventId, tenantId: entry.tenantId, inputTokens: counters.inputTokens, outputTokens: counters.outputTokens },
      baseModelId: price.baseModelId,
      counters: delta,
    };
    const deltas = correctionDeltas([event]);
    if (!dryRun) {
      const r = await retryWrites(() => this.opts.store.reprice(entry, price.costNanoUsd, deltas, this.clock()), {
        maxAttempts: this.opts.maxAttempts ?? 8,
        sleep: this.opts.sleep ?? ((ms) => new Promise((res) => setTimeout(res, ms))),
        random: Math.random,
      });
      if (r.kind === "already") return void report.skipped++;
      if (r.kind === "retryable") throw new Error(`not repriced after ${this.opts.maxAttempts ?? 8} attempts: ${r.reason}`);
    }
    report.repriced.push({ ...note, modelId: entry.modelId, costNanoUsd: price.costNanoUsd });
  }
}
