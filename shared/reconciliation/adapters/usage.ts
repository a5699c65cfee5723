import type { TenantHourUsage } from "../../allocation/allocate";
import { zeroSourceCounts } from "../../usage/model";
import type { AggregateRow, UsageReader } from "../../usage/ports";
import type { MeteredModelHour, MeteredSageMakerHour, MeteredTenantDaySources } from "../model";
import type { HourRange, MeteredUsage } from "../ports";
import { hoursOf, isBedrockModelId } from "../service";

/** The reads this adapter needs of the endpoint-hour usage (the allocation store has them). */
export interface EndpointHourReader {
  readUsage(endpointName: string, hour: string): Promise<TenantHourUsage[]>;
}

/**
 * Our counted usage per model and hour, every tenant summed, from the usage aggregates: the
 * tenants with usage in the range's months (GSI1 month partitions), then each tenant's
 * tenant x model x hour items (one Query per tenant for the whole range). SageMaker endpoints
 * come from the endpoint x hour items the allocation job reads; inference components from the
 * model-hour items (a SageMaker event's model id is its inference component, else its endpoint).
 *
 * Model-hour items exist for usage counted since they were introduced; earlier hours read as 0.
 */
export class AggregateMeteredUsage implements MeteredUsage {
  private cache?: { key: string; rows: Promise<AggregateRow[]> };

  constructor(
    private readonly usage: UsageReader,
    private readonly endpoints: EndpointHourReader,
    private readonly opts: { concurrency?: number } = {},
  ) {}

  async bedrock(range: HourRange): Promise<MeteredModelHour[]> {
    const rows = await this.modelHours(range);
    return rows
      .filter((r) => r.modelId !== undefined && isBedrockModelId(r.modelId))
      .map((r) => ({
        modelId: r.modelId!,
        hour: r.period,
        invocations: r.counters.requests,
        inputTokens: r.counters.inputTokens,
        outputTokens: r.counters.outputTokens,
        cacheReadInputTokens: r.counters.cacheReadInputTokens,
        cacheWriteInputTokens: r.counters.cacheWriteInputTokens,
      }));
  }

  async sagemaker(range: HourRange, names: { endpoints: readonly string[]; inferenceComponents: readonly string[] }): Promise<MeteredSageMakerHour[]> {
    const out: MeteredSageMakerHour[] = [];
    const hours = hoursOf(range);
    await pool(
      names.endpoints.flatMap((e) => hours.map((h) => [e, h] as const)),
      this.opts.concurrency ?? 8,
      async ([endpointName, hour]) => {
        const usage = await this.endpoints.readUsage(endpointName, hour);
        if (usage.length === 0) return;
        out.push({
          kind: "endpoint",
          name: endpointName,
          hour,
          invocations: usage.reduce((s, u) => s + u.requests, 0),
          inferenceMs: usage.reduce((s, u) => s + u.inferenceMs, 0),
        });
      },
    );
    const components = new Set(names.inferenceComponents);
    for (const r of await this.modelHours(range)) {
      if (!r.modelId || !components.has(r.modelId)) continue;
      out.push({ kind: "inference-component", name: r.modelId, hour: r.period, invocations: r.counters.requests, inferenceMs: r.counters.inferenceMs });
    }
    return out;
  }

  /** The tenant-day items of every tenant with usage in the day's month (one Query per tenant). */
  async tenantDaySources(day: string): Promise<MeteredTenantDaySources[]> {
    const tenants = await this.tenantsOf([day.slice(0, 7)]);
    const out: MeteredTenantDaySources[] = [];
    await pool([...tenants].sort(), this.opts.concurrency ?? 8, async (tenantId) => {
      for (const r of await this.usage.tenantPeriods(tenantId, "day", day, day)) {
        if (r.period !== day) continue;
        out.push({ tenantId, day, requests: r.counters.requests, ...(r.sources ?? zeroSourceCounts()) });
      }
    });
    return out;
  }

  private modelHours(range: HourRange): Promise<AggregateRow[]> {
    const key = `${range.from.toISOString()}|${range.to.toISOString()}`;
    if (this.cache?.key !== key) this.cache = { key, rows: this.readModelHours(range) };
    return this.cache.rows;
  }

  private async readModelHours(range: HourRange): Promise<AggregateRow[]> {
    const hours = hoursOf(range);
    const tenants = await this.tenantsOf([...new Set(hours.map((h) => h.slice(0, 7)))]);
    const rows: AggregateRow[] = [];
    const first = hours[0];
    const last = hours[hours.length - 1];
    await pool([...tenants].sort(), this.opts.concurrency ?? 8, async (tenantId) => {
      rows.push(...(await this.usage.modelPeriods(tenantId, "hour", first, last)));
    });
    return rows;
  }

  /** Tenants with usage in any of `months` (the GSI1 month partitions). */
  private async tenantsOf(months: readonly string[]): Promise<Set<string>> {
    const tenants = new Set<string>();
    for (const month of months) {
      let cursor: string | undefined;
      do {
        const page = await this.usage.monthOfAllTenants(month, 1000, cursor);
        for (const row of page.items) tenants.add(row.tenantId);
        cursor = page.cursor;
      } while (cursor);
    }
    return tenants;
  }
}

async function pool<T>(items: readonly T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]);
  });
  await Promise.all(workers);
}
