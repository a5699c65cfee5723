import { z } from "zod";
import { tenantIdSchema } from "../events/invocation";
import { nanoToUsd } from "../pricing/catalog";
import { UsageQueryInvalidError } from "./errors";
import { addCounters, zeroCounters, type UsageCounters } from "./model";
import { DAY_PATTERN, MONTH_PATTERN, daysBetween, monthsBetween } from "./periods";
import type { AggregateRow, Page, QuarantineRecord, UsageReader, UsageTotals } from "./ports";

export const MAX_DAYS_PER_QUERY = 366;
export const MAX_MONTHS_PER_QUERY = 36;
export const MAX_DAYS_PER_HOURLY_QUERY = 31;

const usageQuerySchema = z
  .object({
    tenantId: tenantIdSchema,
    granularity: z.enum(["hour", "day", "month"]).default("day"),
    from: z.string().regex(/^\d{4}-\d{2}(-\d{2})?$/, "from must be yyyy-mm-dd or yyyy-mm"),
    to: z.string().regex(/^\d{4}-\d{2}(-\d{2})?$/, "to must be yyyy-mm-dd or yyyy-mm"),
  })
  .strict();
export type UsageQuery = z.input<typeof usageQuerySchema>;

export interface TenantUsage {
  tenantId: string;
  granularity: "hour" | "day" | "month";
  from: string;
  to: string;
  totals: UsageTotals;
  periods: { period: string; totals: UsageTotals }[];
  models: { modelId: string; totals: UsageTotals }[];
}

export function totalsOf(c: UsageCounters): UsageTotals {
  return {
    requests: c.requests,
    inputTokens: c.inputTokens,
    outputTokens: c.outputTokens,
    cacheReadInputTokens: c.cacheReadInputTokens,
    cacheWriteInputTokens: c.cacheWriteInputTokens,
    cacheWrite1hInputTokens: c.cacheWrite1hInputTokens,
    costNanoUsd: c.costNanoUsd,
    costUsd: roundUsd(nanoToUsd(c.costNanoUsd)),
    allocatedCostUsd: roundUsd(nanoToUsd(c.allocatedCostNanoUsd)),
    unpricedRequests: c.unpricedRequests,
    estimatedRequests: c.estimatedRequests,
  };
}

/** USD with 9 decimals (the nano-USD precision), without float noise in JSON. */
function roundUsd(usd: number): number {
  return Math.round(usd * 1e9) / 1e9;
}

/** Reads of aggregated usage for the usage API and billing jobs. */
export class UsageQueryService {
  constructor(private readonly reader: UsageReader) {}

  async tenantUsage(input: UsageQuery): Promise<TenantUsage> {
    const parsed = usageQuerySchema.safeParse(input);
    if (!parsed.success) {
      throw new UsageQueryInvalidError(parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; "));
    }
    const { tenantId, granularity } = parsed.data;
    let { from, to } = parsed.data;
    if (granularity === "month") {
      from = from.slice(0, 7);
      to = to.slice(0, 7);
      if (!MONTH_PATTERN.test(from) || !MONTH_PATTERN.test(to)) throw new UsageQueryInvalidError("from/to are not valid months");
      if (from > to) throw new UsageQueryInvalidError("from is after to");
      if (monthsBetween(from, to).length > MAX_MONTHS_PER_QUERY) {
        throw new UsageQueryInvalidError(`at most ${MAX_MONTHS_PER_QUERY} months per query`);
      }
    } else {
      if (!DAY_PATTERN.test(from) || !DAY_PATTERN.test(to)) throw new UsageQueryInvalidError(`from/to must be yyyy-mm-dd for granularity=${granularity}`);
      if (from > to) throw new UsageQueryInvalidError("from is after to");
      const maxDays = granularity === "hour" ? MAX_DAYS_PER_HOURLY_QUERY : MAX_DAYS_PER_QUERY;
      if (daysBetween(from, to).length > maxDays) {
        throw new UsageQueryInvalidError(`at most ${maxDays} days per ${granularity} query`);
      }
    }
    // per-model rows exist per month and day; an hourly query gets the daily model breakdown
    const [periodRows, modelRows] = await Promise.all([
      this.reader.tenantPeriods(tenantId, granularity, from, to),
      this.reader.modelPeriods(tenantId, granularity === "month" ? "month" : "day", from, to),
    ]);
    const total = zeroCounters();
    for (const r of periodRows) addCounters(total, r.counters);
    const byModel = new Map<string, UsageCounters>();
    for (const r of modelRows) {
      const id = r.modelId ?? "unknown";
      byModel.set(id, addCounters(byModel.get(id) ?? zeroCounters(), r.counters));
    }
    return {
      tenantId,
      granularity,
      from,
      to,
      totals: totalsOf(total),
      periods: periodRows.map((r) => ({ period: r.period, totals: totalsOf(r.counters) })),
      models: [...byModel.entries()]
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([modelId, c]) => ({ modelId, totals: totalsOf(c) })),
    };
  }

  async billingMonth(month: string, limit = 100, cursor?: string): Promise<{ month: string; tenants: { tenantId: string; totals: UsageTotals }[]; cursor?: string }> {
    if (!MONTH_PATTERN.test(month)) throw new UsageQueryInvalidError("month must be yyyy-mm");
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new UsageQueryInvalidError("limit must be 1-1000");
    const page: Page<AggregateRow> = await this.reader.monthOfAllTenants(month, limit, cursor);
    return {
      month,
      tenants: page.items.map((r) => ({ tenantId: r.tenantId, totals: totalsOf(r.counters) })),
      cursor: page.cursor,
    };
  }

  async quarantine(day: string, limit = 100, cursor?: string): Promise<{ day: string; items: QuarantineRecord[]; cursor?: string }> {
    if (!DAY_PATTERN.test(day)) throw new UsageQueryInvalidError("day must be yyyy-mm-dd");
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new UsageQueryInvalidError("limit must be 1-1000");
    const page = await this.reader.quarantined(day, limit, cursor);
    return { day, items: page.items, cursor: page.cursor };
  }
}
