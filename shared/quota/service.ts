import { decide, minuteOf, monthOf, planTransitions, previousMonth } from "./evaluate";
import { QuotaContentionError, QuotaPublishError } from "./errors";
import {
  effectivePolicy,
  tenantConfigInputSchema,
  usageSnapshot,
  usedRatio,
  type Decision,
  type EnforcementOutcome,
  type EnforcementState,
  type OutboxEntry,
  type TenantConfig,
  type TenantConfigInput,
} from "./model";
import { QuotaConfigInvalidError } from "./errors";
import { claimExpired, publishHeld } from "./outbox";
import type { EnforcementLogEntry, EnforcementPublisher, EvaluationQuery, EvaluationSnapshot, Page, QuotaStore } from "./ports";
import { DEFAULT_TIERS, type TierCatalog, type TierName, type TierPolicy } from "./tiers";
import type { WrittenItems } from "../usage/model";
import { nextMonthStart } from "../usage/periods";

export interface EvaluateInput {
  tenantId: string;
  /** Month (yyyy-mm) of the aggregates the ingest just committed. */
  month: string;
  /** Minute windows (yyyy-mm-ddThh:mm) the ingest just added to. */
  minutes: string[];
  now: Date;
  /** The tenant's month and tenant-hour items as the ingest's writes returned them (by period), used instead of reading them again. */
  written?: WrittenItems;
}

export interface QuotaServiceDeps {
  store: QuotaStore;
  publisher: EnforcementPublisher;
  tiers?: TierCatalog;
  /** Tier of a tenant without a CONFIG item. */
  defaultTier?: TierName;
  clock?: () => Date;
  /** Told the tenant's tier and month quota use after each evaluation (QuotaUsedPercent metric). */
  onUsage?: (u: { tenantId: string; tier: TierName; month: string; usedRatio: number }) => void;
}

/** Bound on re-reads when concurrent evaluations of a tenant keep winning the conditional writes. */
const MAX_ROUNDS = 5;
/** Live minute windows read per evaluation (the current minute and clock-skewed later ones). */
const MAX_WINDOWS = 3;
const TIER_SEEN_MAX = 10_000;

/** Clock skew allowed between processes at a month boundary (see `changeMonths`). */
const MONTH_EDGE_MS = 60_000;

/**
 * Months whose change mark a change of the tenant's quota inputs made in `month` at `now` must
 * move: the month itself, and the adjacent one when `now` is within a minute of the boundary,
 * since another process whose clock is on the other side evaluates that month (and holds this
 * month's state as its previous month's, or the reverse).
 */
export function changeMonths(month: string, now: Date): string[] {
  const out = [month];
  const t = now.getTime();
  if (nextMonthStart(month).getTime() - t <= MONTH_EDGE_MS) out.push(nextMonthStart(month).toISOString().slice(0, 7));
  if (t - Date.parse(`${month}-01T00:00:00.000Z`) <= MONTH_EDGE_MS) out.push(previousMonth(month));
  return out;
}

function hasMinuteLimits(p: TierPolicy): boolean {
  return p.tokensPerMinute !== undefined || p.requestsPerMinute !== undefined;
}

/**
 * Quota enforcement: evaluates a tenant's month and minute windows after the ingest counted
 * its events, records each due transition once (conditional write + outbox entry), publishes
 * the entries, and answers the data plane's "what do I do with this tenant's next call".
 */
export class QuotaEvaluator {
  private readonly tiers: TierCatalog;
  private readonly defaultTier: TierName;
  private readonly clock: () => Date;
  /**
   * Tier of each tenant as its last evaluation read it: which keys the next evaluation needs
   * (a tier without per-minute limits needs no minute windows). Bounded, like a cache.
   */
  private readonly tierSeen = new Map<string, TierName>();
  /** Tenants an `evaluateMany` of this process is evaluating: the call's promise, settled when it ends. */
  private readonly evaluating = new Map<string, Promise<void>>();

  constructor(private readonly deps: QuotaServiceDeps) {
    this.tiers = deps.tiers ?? DEFAULT_TIERS;
    this.defaultTier = deps.defaultTier ?? "basic";
    this.clock = deps.clock ?? (() => new Date());
  }

  private noteTier(tenantId: string, tier: TierName): void {
    if (this.tierSeen.size >= TIER_SEEN_MAX && !this.tierSeen.has(tenantId)) this.tierSeen.clear();
    this.tierSeen.set(tenantId, tier);
  }

  policyOf(config: TenantConfig | undefined): TierPolicy {
    return effectivePolicy(this.tiers, config, this.defaultTier);
  }

  /**
   * Idempotent: safe to call again for the same tenant (SQS redelivery, concurrent batches).
   * A closed month (input.month before the month of `now`) is never enforced: late usage is
   * billed, but the current month is what gets evaluated. Throws when publishing failed
   * (the entries stay pending; the next evaluation, or else the outbox sweeper, republishes them
   * with the same id).
   */
  async evaluate(input: EvaluateInput): Promise<EnforcementOutcome[]> {
    return this.evaluateWith(input);
  }

  /**
   * `evaluate` for many tenants (an ingest batch's): their first reads share round trips
   * (`QuotaStore.loadManyForEvaluation`), and minute windows are not read for a tenant whose
   * tier, as last seen, has no per-minute limits. Each tenant's result is its own: one failure
   * does not fail the others.
   */
  async evaluateMany(
    inputs: readonly EvaluateInput[],
    opts: { concurrency?: number } = {},
  ): Promise<Map<string, { outcomes: EnforcementOutcome[] } | { error: unknown }>> {
    // One evaluation of a tenant at a time in this process (the local stack, or any consumer running
    // several batches at once): concurrent ones would read the same state and plan the same
    // transition, and all but one would lose its write, having made its change marks for nothing,
    // and read again. A call waits only for the calls before it that share a tenant with it.
    const tenants = [...new Set(inputs.map((i) => i.tenantId))];
    const before = [...new Set(tenants.map((t) => this.evaluating.get(t)).filter((p): p is Promise<void> => p !== undefined))];
    let finished!: () => void;
    const mine = new Promise<void>((resolve) => (finished = resolve));
    for (const t of tenants) this.evaluating.set(t, mine);
    try {
      await Promise.all(before);
      return await this.evaluateManyNow(inputs, opts);
    } finally {
      finished();
      for (const t of tenants) if (this.evaluating.get(t) === mine) this.evaluating.delete(t);
    }
  }

  private async evaluateManyNow(
    inputs: readonly EvaluateInput[],
    opts: { concurrency?: number },
  ): Promise<Map<string, { outcomes: EnforcementOutcome[] } | { error: unknown }>> {
    const queries = inputs.map((input) => {
      const q = this.queryOf(input);
      const tier = this.tierSeen.get(input.tenantId);
      const month = input.written?.months[q.month];
      // the first round only: a later round re-reads everything
      const known = input.written ? { ...(month ? { month } : {}), hours: input.written.hours } : undefined;
      return { ...q, ...(known ? { known } : {}), ...(tier && !hasMinuteLimits(this.tiers[tier]) ? { minutes: [] } : {}) };
    });
    const results = new Map<string, { outcomes: EnforcementOutcome[] } | { error: unknown }>();
    let preloaded = new Map<string, EvaluationSnapshot>();
    if (this.deps.store.loadManyForEvaluation && inputs.length > 0) {
      try {
        preloaded = await this.deps.store.loadManyForEvaluation(queries);
      } catch (error) {
        for (const input of inputs) results.set(input.tenantId, { error });
        return results;
      }
    }
    let next = 0;
    const worker = async () => {
      while (next < inputs.length) {
        const i = next++;
        const input = inputs[i];
        let first = preloaded.get(input.tenantId);
        // The tier changed to one with per-minute limits: the windows skipped are needed after all.
        if (first && queries[i].minutes.length === 0 && hasMinuteLimits(this.policyOf(first.config))) first = undefined;
        try {
          results.set(input.tenantId, { outcomes: await this.evaluateWith(input, first) });
        } catch (error) {
          results.set(input.tenantId, { error });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(opts.concurrency ?? 16, inputs.length) }, worker));
    return results;
  }

  private queryOf(input: EvaluateInput): EvaluationQuery {
    const current = monthOf(input.now);
    const month = input.month > current ? input.month : current;
    const currentMinute = minuteOf(input.now);
    const minutes = [...new Set([currentMinute, ...input.minutes.filter((m) => m >= currentMinute)])].sort().slice(0, MAX_WINDOWS);
    return { tenantId: input.tenantId, month, prevMonth: previousMonth(month), minutes };
  }

  /**
   * The change mark of a tenant's quota inputs (`QuotaStore.changeBegins`): `begin` before the
   * first write of a change (once, however often called), `end` after the last, whatever happened,
   * when no write of ours is in flight any more. A crash between them (or a failed `end`) leaves
   * the mark open, which only means the tenant's inputs are read every time that month.
   */
  private changeMark(tenantId: string, months: readonly string[]) {
    let begun: boolean[] | undefined;
    return {
      begin: async () => {
        begun ??= (await this.deps.store.changeBegins?.(tenantId, months)) ?? [];
      },
      end: async () => {
        if (begun) await this.deps.store.changeEnds?.(tenantId, months, begun);
      },
    };
  }

  /** One evaluation; `first` is a snapshot already read for its first round. */
  private async evaluateWith(input: EvaluateInput, first?: EvaluationSnapshot): Promise<EnforcementOutcome[]> {
    const { tenantId, now } = input;
    const query = this.queryOf(input);
    const { month } = query;

    const own = new Map<string, { period: string; entry: OutboxEntry; breach: boolean }>();
    let snapshotStates: EnforcementState[] = [];
    let settled = false;
    // The change mark, made before the first write of a transition and closed after the last.
    const mark = this.changeMark(tenantId, changeMonths(month, now));
    try {
      for (let round = 0; round < MAX_ROUNDS && !settled; round++) {
        const snap = round === 0 && first ? first : await this.deps.store.loadForEvaluation(query);
        snapshotStates = [snap.prevState, snap.state].filter((s): s is EnforcementState => s !== undefined);
        if (round === 0) {
          const policy = this.policyOf(snap.config);
          this.noteTier(tenantId, policy.tier);
          this.deps.onUsage?.({ tenantId, tier: policy.tier, month, usedRatio: usedRatio(usageSnapshot(snap.monthTotals), policy) });
        }
        const plan = planTransitions({
          tenantId,
          month,
          now,
          policy: this.policyOf(snap.config),
          monthTotals: snap.monthTotals,
          minuteTotals: snap.minuteTotals,
          state: snap.state,
          prevState: snap.prevState,
        });
        settled = true;
        if (plan.length > 0) await mark.begin();
        for (const t of plan) {
          if ((await this.deps.store.apply(tenantId, t)) === "conflict") {
            // Someone changed the state since our read (or recorded this very transition):
            // re-read and re-plan rather than act on a stale view.
            settled = false;
            break;
          }
          own.set(t.entry.enforcementId, { period: t.period, entry: t.entry, breach: t.kind === "restrict" || (t.kind === "cross" && t.entry.detail.threshold === 1) });
        }
      }
    } finally {
      await mark.end();
    }
    if (!settled) throw new QuotaContentionError(`tenant ${tenantId}: state kept changing during ${MAX_ROUNDS} evaluation rounds`);

    // Entries left pending by an earlier failed or crashed publish, whose lease has run out.
    const { claimed: retries } = await claimExpired(this.deps.store, tenantId, snapshotStates, now, new Set(own.keys()));

    const batch = [
      ...[...own.values()].map((o) => ({ ...o, retry: false })),
      ...retries.map((r) => ({ ...r, breach: false, retry: true })),
    ];
    if (batch.length === 0) return [];
    const result = await this.publishAll(tenantId, batch);
    return batch.map(({ entry, retry, breach }) => ({
      enforcementId: entry.enforcementId,
      action: entry.detail.action,
      period: entry.detail.period,
      threshold: entry.detail.threshold,
      status: result.has(entry.enforcementId) ? (retry ? "republished" : "published") : "pending",
      breach,
    }));
  }

  private async publishAll(tenantId: string, batch: { period: string; entry: OutboxEntry }[]): Promise<Set<string>> {
    const held = batch.map(({ period, entry }) => ({ tenantId, period, entry }));
    const { published, failed, cause } = await publishHeld(this.deps.store, this.deps.publisher, held, this.clock);
    if (failed.length > 0) {
      const ids = failed.map((f) => f.enforcementId);
      throw new QuotaPublishError(`tenant ${tenantId}: ${ids.length} enforcement event(s) not published; they stay pending`, ids, { cause });
    }
    return published;
  }

  /**
   * Decision for the tenant's next call: one read of config + this and last month's state.
   * At a period rollover the restore of last month's restriction is due; it is recorded and
   * published here (once: the evaluation's conditional write) if no ingest did it yet.
   */
  async decision(tenantId: string, now = this.clock()): Promise<Decision & { pendingRestore?: boolean }> {
    const month = monthOf(now);
    const snap = await this.deps.store.loadForDecision({ tenantId, month, prevMonth: previousMonth(month) });
    const policy = this.policyOf(snap.config);
    let pendingRestore: boolean | undefined;
    if (snap.prevState?.restriction) {
      try {
        await this.evaluate({ tenantId, month, minutes: [], now });
      } catch (error) {
        // The decision is right either way (a new month starts unrestricted); the restore
        // stays pending in the outbox and is republished by the next evaluation or the sweeper.
        if (!(error instanceof QuotaPublishError || error instanceof QuotaContentionError)) throw error;
        pendingRestore = true;
      }
    }
    const d = decide({ tenantId, now, policy, state: snap.state });
    const u = usageSnapshot(snap.monthTotals);
    return {
      tenantId,
      tier: policy.tier,
      period: month,
      ...d,
      evaluatedAt: now.toISOString(),
      usage: { tokens: u.tokens, requests: u.requests, costUsd: u.costUsd },
      quota: { monthlyTokens: policy.monthlyTokens, monthlyUsd: policy.monthlyUsd, tokensPerMinute: policy.tokensPerMinute, requestsPerMinute: policy.requestsPerMinute },
      usedRatio: Math.round(usedRatio(u, policy) * 10_000) / 10_000,
      ...(pendingRestore ? { pendingRestore } : {}),
    };
  }

  async getConfig(tenantId: string): Promise<{ tenantId: string; configured: boolean; config?: TenantConfig; effective: TierPolicy }> {
    const config = await this.deps.store.getConfig(tenantId);
    return { tenantId, configured: config !== undefined, config, effective: this.policyOf(config) };
  }

  /**
   * Replaces a tenant's config, then evaluates the current month so a raised quota (or a
   * better tier) restores the tenant at once and a lowered one acts at once.
   */
  async putConfig(tenantId: string, body: unknown): Promise<{ config: TenantConfig; effective: TierPolicy; outcomes: EnforcementOutcome[] }> {
    const parsed = tenantConfigInputSchema.safeParse(body);
    if (!parsed.success) {
      const reasons = parsed.error.issues.map((i) => `${i.path.join(".") || "body"}: ${i.message}`);
      throw new QuotaConfigInvalidError(`invalid tenant config: ${reasons.join("; ")}`, reasons);
    }
    const now = this.clock();
    const config: TenantConfig = { ...(parsed.data as TenantConfigInput), tenantId, updatedAt: now.toISOString() };
    // Bracketed by the change mark: an ingest that holds the old config reads the new one at its next evaluation.
    const mark = this.changeMark(tenantId, changeMonths(monthOf(now), now));
    await mark.begin();
    try {
      await this.deps.store.putConfig(config);
    } finally {
      await mark.end();
    }
    const outcomes = await this.evaluate({ tenantId, month: monthOf(now), minutes: [], now });
    return { config, effective: this.policyOf(config), outcomes };
  }

  events(day: string, limit: number, cursor?: string): Promise<Page<EnforcementLogEntry>> {
    return this.deps.store.listLog(day, limit, cursor);
  }
}
