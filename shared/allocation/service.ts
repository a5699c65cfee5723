import { allocateHour, HOUR_PATTERN, type HourAllocation, type TenantShare } from "./allocate";
import type { EndpointCatalog } from "./endpoints";
import { AllocationCommitFailedError, AllocationStateInvalidError } from "./errors";
import type { AllocationState, AllocationStore, ReallocationCommitResult, ShareCommitResult } from "./ports";
import { planReallocation, type Reallocation, type TenantDelta } from "./reallocate";

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

/** Outcome of bringing an endpoint-hour up to date with its current usage (`reconcile`). */
export interface ReconcileOutcome {
  endpointName: string;
  hour: string;
  /**
   * allocated: first split, by this run; reallocated: this run applied a new version after
   * late usage; resumed: this run finished a version an earlier (crashed or concurrent) run
   * had fixed, and nothing changed since; already-allocated: the split matches current usage.
   */
  status: "allocated" | "reallocated" | "resumed" | "already-allocated";
  /** The marker's version after this run (1 = first split). */
  version: number;
  plan: HourAllocation;
  /** The deltas this run applied or finished (empty for a first split). */
  deltas: TenantDelta[];
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
 *
 * Late usage is handled by `reconcile`, not by changing a plan in flight: once a version is
 * complete, a later run re-splits the hour from current usage and applies only the per-tenant
 * differences as the next version (see `reconcile`).
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
    return runEach(
      names.map((name) => () => this.allocate(name, hour)),
      (n) => `${n} endpoints failed to allocate ${hour}`,
    );
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
    await this.finish(state);
    return { endpointName, hour, status: "resumed", plan: state.plan };
  }

  /** `reconcile` for every (endpoint, hour) pair; one failing pair does not stop the others. */
  async reconcileAll(hours: readonly string[], endpointNames?: readonly string[]): Promise<ReconcileOutcome[]> {
    const names = endpointNames ?? this.opts.catalog.list().map((e) => e.endpointName);
    return runEach(
      hours.flatMap((hour) => names.map((name) => () => this.reconcile(name, hour))),
      (n) => `${n} endpoint-hours failed to reconcile`,
    );
  }

  /**
   * Brings an endpoint-hour's split up to date with its current usage: allocates it if it
   * never was, finishes a pending version, and when late usage changed the split, applies
   * the difference as version v+1. Writes nothing when the split still matches the usage.
   *
   * The new version is fixed on the marker only if the marker is still complete at v (so two
   * runs cannot both apply a change computed from v), with its deltas in a change record; each
   * tenant's delta then rides on its own record of that version. A crash leaves v+1 pending,
   * and the next run finishes those stored deltas before looking at usage again.
   */
  async reconcile(endpointName: string, hour: string): Promise<ReconcileOutcome> {
    if (!HOUR_PATTERN.test(hour)) throw new RangeError(`hour must be yyyy-mm-ddTHH, got '${hour}'`);
    const endpoint = this.opts.catalog.get(endpointName);
    const { store } = this.opts;
    let finished: { version: number; deltas: TenantDelta[] } | undefined;
    // Each round either ends, finishes a pending version, or lost a race to a run that moved
    // the marker on; a few rounds settle anything but a storm of concurrent late usage.
    const maxRounds = 4;
    for (let round = 0; round < maxRounds; round++) {
      const state = await store.readState(endpointName, hour);
      if (state.status === "absent") {
        const first = await this.allocate(endpointName, hour);
        if (first.status === "allocated") return { endpointName, hour, status: "allocated", version: 1, plan: first.plan, deltas: [] };
        continue; // a concurrent run allocated it first: check its split against the usage
      }
      if (state.status === "pending") {
        finished = { version: state.version, deltas: await this.finish(state) };
        continue;
      }
      const change = planReallocation(state, endpoint, await store.readUsage(endpointName, hour));
      if (!change) {
        const status = finished ? "resumed" : "already-allocated";
        return { endpointName, hour, status, version: state.version, plan: state.plan, deltas: finished?.deltas ?? [] };
      }
      if (await this.applyReallocation(change)) {
        return { endpointName, hour, status: "reallocated", version: change.version, plan: change.plan, deltas: change.deltas };
      }
      // superseded: another run moved the marker from this version; continue from its state
    }
    throw new AllocationCommitFailedError(`${endpointName} ${hour} kept changing under concurrent runs`, maxRounds);
  }

  /** Finishes a pending version (its shares, or its deltas); returns the deltas (none for v1). */
  private async finish(state: Extract<AllocationState, { status: "pending" }>): Promise<TenantDelta[]> {
    if (state.version === 1) {
      await this.writeShares(state.plan);
      return [];
    }
    const { endpointName, hour } = state.plan;
    const change: Reallocation = {
      endpointName,
      hour,
      fromVersion: state.version - 1,
      version: state.version,
      plan: state.plan,
      deltas: await this.opts.store.readReallocationDeltas(endpointName, hour, state.version),
    };
    await this.writeDeltas(change);
    return change.deltas;
  }

  /** True if this run fixed (and applied) `change`; false if another run moved the marker first. */
  private async applyReallocation(change: Reallocation): Promise<boolean> {
    const { store } = this.opts;
    const aggregateItems = store.itemsPerShare - 1;
    const attempt = (r: ReallocationCommitResult) => (r.kind === "retryable" ? { retry: r.reason } : r.kind === "committed");
    // marker update + change record + every delta's ADDs in one transaction
    if (2 + change.deltas.length * aggregateItems <= this.opts.maxTransactionItems) {
      return this.withRetries(async () => attempt(await store.commitReallocationWhole(change)));
    }
    if (!(await this.withRetries(async () => attempt(await store.recordReallocation(change))))) return false;
    await this.writeDeltas(change);
    return true;
  }

  private async writeDeltas(change: Reallocation): Promise<void> {
    const { store } = this.opts;
    const written = await store.writtenDeltas(change.endpointName, change.hour, change.version);
    const pending = change.deltas.filter((d) => !written.has(d.tenantId));
    await this.commitChunks(pending, (chunk) => store.commitDeltas(change, chunk));
    // Every delta of this version is now recorded (by this run, or another whose transaction committed).
    await store.complete(change.plan, change.version);
  }

  private async writeShares(plan: HourAllocation): Promise<void> {
    const { store } = this.opts;
    const written = await store.writtenShares(plan.endpointName, plan.hour);
    const pending = plan.shares.filter((s) => !written.has(s.tenantId));
    await this.commitChunks(pending, (chunk: TenantShare[]) => store.commitShares(plan, chunk));
    // Every share is now recorded (by this run, or by another whose transaction committed).
    await store.complete(plan, 1);
  }

  /** Writes `entries` in transactions of as many tenants as fit, each chunk retried until it lands. */
  private async commitChunks<E extends { tenantId: string }>(
    entries: readonly E[],
    commit: (chunk: E[]) => Promise<ShareCommitResult>,
  ): Promise<void> {
    const perChunk = Math.floor(this.opts.maxTransactionItems / this.opts.store.itemsPerShare);
    for (let i = 0; i < entries.length; i += perChunk) {
      let rest = entries.slice(i, i + perChunk);
      await this.withRetries(async () => {
        if (rest.length === 0) return true;
        const result = await commit(rest);
        if (result.kind === "committed") return true;
        if (result.kind === "already-written") {
          // A concurrent run wrote these; drop them and write the others.
          const done = new Set(result.tenantIds);
          rest = rest.filter((e) => !done.has(e.tenantId));
          return rest.length === 0 ? true : "progress";
        }
        return { retry: result.reason };
      });
    }
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

/**
 * Runs `jobs` one after another; one failing job must not keep the others from running. The
 * caller still sees every failure, thrown after all ran (a scheduler retry is harmless: the
 * jobs are idempotent).
 */
async function runEach<T>(jobs: readonly (() => Promise<T>)[], failed: (n: number) => string): Promise<T[]> {
  const outcomes: T[] = [];
  const errors: unknown[] = [];
  for (const job of jobs) {
    try {
      outcomes.push(await job());
    } catch (error) {
      errors.push(error);
    }
  }
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new AggregateError(errors, failed(errors.length));
  return outcomes;
}
