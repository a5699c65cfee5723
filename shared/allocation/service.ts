import { allocateHour, HOUR_PATTERN, type HourAllocation, type TenantShare } from "./allocate";
import type { EndpointCatalog } from "./endpoints";
import { AllocationCommitFailedError, AllocationStateInvalidError } from "./errors";
import type { AllocationStore } from "./ports";

export interface AllocationOutcome {
  endpointName: string;
  hour: string;
  /**
   * allocated: this run wrote the whole hour; resumed: this run finished a plan an earlier
   * (crashed or concurrent) run had fixed; already-allocated: nothing to do.
   */
  status: "allocated" | "resumed" | "already-allocated";
  plan: HourAllocation;
}

export interface AllocationServiceOptions {
  store: AllocationStore;
  catalog: EndpointCatalog;
  /** Items per TransactWriteItems (DynamoDB allows 100). */
  maxTransactionItems: number;
  maxAttempts?: number;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

/**
 * Shares each fixed-cost endpoint-hour among its tenants exactly once.
 *
 * Small hours (marker + every share's ADDs fit one transaction) are one transaction whose
 * marker put is conditional on absence: a rerun is refused as a whole. Larger hours first
 * fix the plan on the marker (`pending`, conditional on absence), then write the shares in
 * chunks, each share with its own conditional record, then mark the marker `complete`. A
 * rerun after a crash reuses the stored plan (not a recomputation from usage that may have
 * changed since), skips shares already written, and so the shares still sum exactly to the
 * hour's cost.
 */
export class AllocationService {
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly random: () => number;

  constructor(private readonly opts: AllocationServiceOptions) {
    if (opts.maxTransactionItems < opts.store.itemsPerShare + 1) {
      throw new RangeError(`maxTransactionItems must be at least ${opts.store.itemsPerShare + 1}`);
    }
    this.sleep = opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.random = opts.random ?? Math.random;
  }

  /** Allocates `hour` for every endpoint of the catalog (or the ones named). */
  async allocateAll(hour: string, endpointNames?: readonly string[]): Promise<AllocationOutcome[]> {
    const names = endpointNames ?? this.opts.catalog.list().map((e) => e.endpointName);
    const outcomes: AllocationOutcome[] = [];
    const errors: unknown[] = [];
    // One failing endpoint must not keep the others from being allocated; the caller
    // still sees the failure (and a scheduler retry is harmless: the job is idempotent).
    for (const name of names) {
      try {
        outcomes.push(await this.allocate(name, hour));
      } catch (error) {
        errors.push(error);
      }
    }
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, `${errors.length} endpoints failed to allocate ${hour}`);
    return outcomes;
  }

  async allocate(endpointName: string, hour: string): Promise<AllocationOutcome> {
    if (!HOUR_PATTERN.test(hour)) throw new RangeError(`hour must be yyyy-mm-ddTHH, got '${hour}'`);
    const endpoint = this.opts.catalog.get(endpointName);
    const { store } = this.opts;

    let state = await store.readState(endpointName, hour);
    if (state.status === "absent") {
      const plan = allocateHour(endpoint, hour, await store.readUsage(endpointName, hour));
      const aggregateItems = store.itemsPerShare - 1;
      if (1 + plan.shares.length * aggregateItems <= this.opts.maxTransactionItems) {
        const committed = await this.withRetries(async () => {
          const r = await store.commitWhole(plan);
          return r.kind === "retryable" ? { retry: r.reason } : r.kind === "committed";
        });
        if (committed) return { endpointName, hour, status: "allocated", plan };
      } else if (await store.recordPlan(plan)) {
        await this.writeShares(plan);
        return { endpointName, hour, status: "allocated", plan };
      }
      // Another run got there first: continue from what it recorded.
      state = await store.readState(endpointName, hour);
      if (state.status === "absent") throw new AllocationStateInvalidError(`marker of ${endpointName} ${hour} vanished`);
    }
    if (state.status === "complete") return { endpointName, hour, status: "already-allocated", plan: state.plan };
    await this.writeShares(state.plan);
    return { endpointName, hour, status: "resumed", plan: state.plan };
  }

  private async writeShares(plan: HourAllocation): Promise<void> {
    const { store } = this.opts;
    const written = await store.writtenShares(plan.endpointName, plan.hour);
    const perChunk = Math.floor(this.opts.maxTransactionItems / store.itemsPerShare);
    const pending = plan.shares.filter((s) => !written.has(s.tenantId));
    for (let i = 0; i < pending.length; i += perChunk) {
      await this.commitChunk(plan, pending.slice(i, i + perChunk));
    }
    // Every share is now recorded (by this run, or by another whose transaction committed).
    await store.complete(plan);
  }

  private async commitChunk(plan: HourAllocation, chunk: TenantShare[]): Promise<void> {
    let rest = chunk;
    await this.withRetries(async () => {
      if (rest.length === 0) return true;
      const result = await this.opts.store.commitShares(plan, rest);
      if (result.kind === "committed") return true;
      if (result.kind === "already-written") {
        // A concurrent run wrote these; drop them and write the others.
        const done = new Set(result.tenantIds);
        rest = rest.filter((s) => !done.has(s.tenantId));
        return rest.length === 0 ? true : "progress";
      }
      return { retry: result.reason };
    });
  }

  /**
   * Runs `attempt` until it returns a boolean. `{ retry }` backs off and counts against the
   * budget; "progress" retries at once without counting (something was learnt).
   */
  private async withRetries<T extends boolean>(
    attempt: () => Promise<T | "progress" | { retry: string }>,
  ): Promise<T> {
    const maxAttempts = this.opts.maxAttempts ?? 8;
    let last = "";
    for (let n = 1; n <= maxAttempts; ) {
      const r = await attempt();
      if (typeof r === "boolean") return r;
      if (r === "progress") continue;
      last = r.retry;
      await this.sleep(Math.round(this.random() * Math.min(2000, 25 * 2 ** n)));
      n++;
    }
    throw new AllocationCommitFailedError(`allocation not committed after ${maxAttempts} attempts: ${last}`, maxAttempts);
  }
}
