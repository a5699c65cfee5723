import type { MonthAggregate } from "./invoice";

/** Port: where the export reads a month's usage and the tenants' tiers. */
export interface BillingSource {
  /** Month aggregates of every tenant with usage in `month` (all pages, all shards). */
  monthAggregates(month: string): AsyncIterable<MonthAggregate>;
  /** Stored tier per tenant (the raw attribute; missing tenants are absent from the map). */
  tiers(tenantIds: readonly string[]): Promise<Map<string, unknown>>;
}

/** Port: where export files go. Writing the same path twice replaces the file. */
export interface ExportSink {
  put(path: string, body: string, contentType: string): Promise<void>;
  /** Where a path ends up, for logs and the CLI (a file path or an s3:// URL). */
  locate(path: string): string;
}
