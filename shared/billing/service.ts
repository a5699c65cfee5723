import { MONTH_PATTERN } from "../usage/periods";
import { BillingExportInvalidError } from "./errors";
import { buildInvoiceLines, toCsv, toJsonLines, type InvoiceLine, type MonthAggregate } from "./invoice";
import type { BillingSource, ExportSink } from "./ports";
import { TIER_PRICES_USD } from "./tiers";

export interface BillingExportResult {
  month: string;
  lines: InvoiceLine[];
  files: string[];
  totals: { revenueNanoUsd: number; totalCostNanoUsd: number; marginNanoUsd: number; unpricedRequests: number };
}

/** Deterministic names: a rerun for the same month replaces the same files. */
export function exportPaths(month: string) {
  return { jsonl: `billing/${month}/invoice-lines.jsonl`, csv: `billing/${month}/invoice-lines.csv` };
}

/**
 * Monthly invoice lines per tenant (usage, API cost, allocated fixed cost, subscription,
 * margin) as JSON lines and CSV. Idempotent per month: the content depends only on the
 * stored aggregates and tiers (sorted, no timestamps), and the file names only on the month.
 */
export class BillingExportService {
  constructor(
    private readonly source: BillingSource,
    private readonly sink: ExportSink,
    private readonly tierPricesUsd: Readonly<Record<string, number>> = TIER_PRICES_USD,
  ) {}

  async export(month: string): Promise<BillingExportResult> {
    if (!MONTH_PATTERN.test(month)) throw new BillingExportInvalidError(`month must be yyyy-mm, got '${month}'`);
    const aggregates: MonthAggregate[] = [];
    for await (const a of this.source.monthAggregates(month)) aggregates.push(a);
    const tiers = await this.source.tiers(aggregates.map((a) => a.tenantId));
    const lines = buildInvoiceLines(month, aggregates, tiers, this.tierPricesUsd);
    const paths = exportPaths(month);
    await this.sink.put(paths.jsonl, toJsonLines(lines), "application/x-ndjson");
    await this.sink.put(paths.csv, toCsv(lines), "text/csv; charset=utf-8");
    const sum = (f: (l: InvoiceLine) => number) => lines.reduce((s, l) => s + f(l), 0);
    return {
      month,
      lines,
      files: [this.sink.locate(paths.jsonl), this.sink.locate(paths.csv)],
      totals: {
        revenueNanoUsd: sum((l) => l.revenueNanoUsd),
        totalCostNanoUsd: sum((l) => l.totalCostNanoUsd),
        marginNanoUsd: sum((l) => l.marginNanoUsd),
        unpricedRequests: sum((l) => l.unpricedRequests),
      },
    };
  }
}

/** The month (yyyy-mm, UTC) before the one `now` falls in. */
export function previousMonth(now: Date): string {
  if (Number.isNaN(now.getTime())) throw new RangeError("invalid date");
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 1)).toISOString().slice(0, 7);
}
