import { MetricUnit, type Metrics } from "@aws-lambda-powertools/metrics";
import { nanoToUsd } from "../pricing/catalog";
import type { IngestResult } from "../usage/ingest";
import type { PricedEvent } from "../usage/model";
import { COST_METRICS, DIMENSIONS, PIPELINE_METRICS } from "./metric-names";

export type CostMetricDimensions = "tenant-tier-model" | "tenant-tier" | "tier-model" | "off";

/** One EMF document's worth of cost metrics: the sums of a tenant/tier/model combination of a batch. */
export interface CostGroup {
  dimensions: Record<string, string>;
  costNanoUsd: number;
  inputTokens: number;
  outputTokens: number;
  requests: number;
}

/**
 * Pure: sums counted events (and corrections, whose counters are the difference exact -
 * estimate, possibly negative) per combination of the configured dimensions. Each distinct
 * combination is one billed custom metric per metric name.
 */
export function costGroups(events: readonly PricedEvent[], tierOf: (tenantId: string, event: PricedEvent) => string, dims: CostMetricDimensions): CostGroup[] {
  if (dims === "off") return [];
  const groups = new Map<string, CostGroup>();
  for (const p of events) {
    const dimensions: Record<string, string> = { [DIMENSIONS.tier]: tierOf(p.event.tenantId, p) };
    if (dims !== "tier-model") dimensions[DIMENSIONS.tenant] = p.event.tenantId;
    if (dims !== "tenant-tier") dimensions[DIMENSIONS.model] = p.baseModelId;
    const k = JSON.stringify(dimensions);
    let g = groups.get(k);
    if (!g) groups.set(k, (g = { dimensions, costNanoUsd: 0, inputTokens: 0, outputTokens: 0, requests: 0 }));
    g.costNanoUsd += p.counters.costNanoUsd;
    g.inputTokens += p.counters.inputTokens;
    g.outputTokens += p.counters.outputTokens;
    g.requests += p.counters.requests;
  }
  return [...groups.values()];
}

/** What the quota evaluation of one batch did, for the pipeline metrics. */
export interface EnforcementTally {
  published: number;
  breaches: number;
}

/**
 * The ingest handler's metrics: pipeline health (flushed by Powertools' `logMetrics`
 * middleware at the end of the invocation) and cost allocation per tenant/tier/model (one
 * EMF document per combination, published here since each carries its own dimensions).
 * Remembers each tenant's tier and quota use as the quota evaluation saw them (bounded).
 */
export class IngestMetrics {
  private readonly seen = new Map<string, { tier: string; usedRatio: number; gaugeAt?: number }>();
  private readonly clock: () => number;

  constructor(
    private readonly metrics: Metrics,
    private readonly dims: CostMetricDimensions,
    private readonly opts: {
      /** Tenants remembered at most (a container's memory must not grow with the tenant count). */
      maxTenants?: number;
      /** QuotaUsedPercent is a level: emitted at most once per tenant per this many ms (default 60 s). */
      quotaGaugeIntervalMs?: number;
      clock?: () => number;
    } = {},
  ) {
    this.clock = opts.clock ?? Date.now;
  }

  /** The quota evaluation's view of a tenant (its `onUsage` callback). */
  readonly noteUsage = (u: { tenantId: string; tier: string; usedRatio: number }): void => {
    const before = this.seen.get(u.tenantId);
    if (!before && this.seen.size >= (this.opts.maxTenants ?? 10_000)) this.seen.clear();
    this.seen.set(u.tenantId, { tier: u.tier, usedRatio: u.usedRatio, gaugeAt: before?.gaugeAt });
  };

  /**
   * Publishes the cost documents, then stores the pipeline metrics for `logMetrics` to flush
   * (in this order: a publish flushes whatever is stored, with the dimensions of the moment).
   */
  record(result: IngestResult, enforcement: EnforcementTally): void {
    const tierOf = (tenantId: string, p: PricedEvent) => this.seen.get(tenantId)?.tier ?? p.event.tier ?? "unknown";
    for (const g of costGroups([...result.counted, ...result.corrections], tierOf, this.dims)) {
      this.publishWith(g.dimensions, () => {
        this.metrics.addMetric(COST_METRICS.costUsd, MetricUnit.NoUnit, nanoToUsd(g.costNanoUsd));
        this.metrics.addMetric(COST_METRICS.inputTokens, MetricUnit.Count, g.inputTokens);
        this.metrics.addMetric(COST_METRICS.outputTokens, MetricUnit.Count, g.outputTokens);
        this.metrics.addMetric(COST_METRICS.requests, MetricUnit.Count, g.requests);
      });
    }
    // Quota use is a per-tenant level: without the tenant dimension it would mean nothing, and
    // once a minute per tenant is enough for a dashboard (it changes with every batch otherwise).
    if (this.dims === "tenant-tier-model" || this.dims === "tenant-tier") {
      const now = this.clock();
      for (const { tenantId } of result.touched) {
        const u = this.seen.get(tenantId);
        if (!u || (u.gaugeAt !== undefined && now - u.gaugeAt < (this.opts.quotaGaugeIntervalMs ?? 60_000))) continue;
        u.gaugeAt = now;
        this.publishWith({ [DIMENSIONS.tenant]: tenantId, [DIMENSIONS.tier]: u.tier }, () =>
          this.metrics.addMetric(COST_METRICS.quotaUsedPercent, MetricUnit.Percent, Math.round(u.usedRatio * 10_000) / 100),
        );
      }
    }
    // Counters that are zero are left out (a Sum over a period is the same; the alarms treat
    // missing data as not breaching): at one event per batch the pipeline document is most of
    // the EMF bytes. EventsIngested is always there, so a running ingest always reports.
    const { stats } = result;
    const count = (name: string, value: number) => value !== 0 && this.metrics.addMetric(name, MetricUnit.Count, value);
    this.metrics.addMetric(PIPELINE_METRICS.eventsIngested, MetricUnit.Count, stats.counted);
    count(PIPELINE_METRICS.duplicates, stats.duplicates);
    count(PIPELINE_METRICS.quarantined, stats.quarantined);
    count(PIPELINE_METRICS.estimatesCorrected, stats.corrected);
    count(PIPELINE_METRICS.recordsRetried, stats.failed);
    count(PIPELINE_METRICS.unpriced, stats.unpriced);
    if (stats.counted > 0) this.metrics.addMetric(PIPELINE_METRICS.ingestLag, MetricUnit.Milliseconds, stats.maxLagMs);
    count(PIPELINE_METRICS.enforcementEvents, enforcement.published);
    count(PIPELINE_METRICS.quotaBreaches, enforcement.breaches);
  }

  /** One EMF document with these dimensions (publishing clears them for the next document). */
  private publishWith(dimensions: Record<string, string>, add: () => void): void {
    this.metrics.addDimensions(dimensions);
    add();
    this.metrics.publishStoredMetrics();
  }
}
