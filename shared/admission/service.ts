import { randomUUID } from "node:crypto";
import { ADMISSION_METRICS } from "../observability/metric-names";
import type { TierName, TierPolicy } from "../quota/tiers";
import { AdmissionContentionError, AdmissionRefusedError } from "./errors";
import {
  monthOfMs,
  poolBurnOf,
  poolDecide,
  poolFor,
  quotaTokensOf,
  secondsToMonthEnd,
  windowOf,
  TIER_RANK,
  type ActualUsage,
  type AdmissionConfig,
  type AdmissionMode,
  type BudgetLimits,
  type PoolConfig,
  type PoolUse,
  type Reservation,
} from "./model";
import { noAdmissionMetrics, type AdmissionMetrics, type BudgetKey, type BudgetStore, type PolicySource, type PoolDeltas, type PoolStore, type UsageTruth } from "./ports";

/** How long a take's "short" reading refuses calls without a round trip, and how long it still refuses them at once while a background take reads again. */
const SHORT_FRESH_MS = 100;
const SHORT_KNOWN_MS = 1_000;

/** What the wrapper knows about a call before making it. */
export interface AdmitRequest {
  tenantId: string;
  provider: "bedrock" | "sagemaker";
  /** Model as it will be called (after a decision's downgrade, if any). */
  modelId: string;
  /** Base model id (pricing / pool lookup). */
  baseModelId: string;
  inputTokens: number;
  maxOutputTokens: number;
  /** Cost of input + max output at the catalog price (nano-USD); 0 when not priced. */
  nanoUsd: number;
  /** The call may move to the tier's downgrade model instead of being refused (Bedrock only). */
  canDowngrade: boolean;
  /** The decision already downgraded this call: it runs on the cheaper model, outside the budget (tier rule). */
  alreadyDowngraded?: boolean;
}

/** An admitted call. Exactly one of `settle` / `release` should follow; a dead caller's grant expires. */
export interface AdmissionTicket {
  readonly reservation: Reservation;
  readonly mode: AdmissionMode | "none";
  /** The model to call instead (budget exhausted, tier downgrades); undefined = as asked. */
  readonly downgradeTo?: string;
  /** Bedrock service tier to request, when configured for the tenant's tier. */
  readonly serviceTier?: "priority" | "default" | "flex";
  /** The call's usage event id, known once the response started (streams): lets the ledger settle a dead caller's grant. */
  bind(eventId: string): void;
  /** The call finished: charge what it used, give the rest back. Never throws. */
  settle(usage: ActualUsage, eventId?: string): Promise<void>;
  /** The call failed before any usage: give everything back. Never throws. */
  release(): Promise<void>;
}

export interface AdmissionDeps {
  config: AdmissionConfig;
  budgets: BudgetStore;
  policies: PolicySource;
  truth: UsageTruth;
  pools?: PoolStore;
  metrics?: AdmissionMetrics;
  /** Identifies this process in grants (logs only). */
  holder?: string;
  clock?: () => number;
  logger?: { warn(message: string, extra?: Record<string, unknown>): void };
}

interface Lease {
  id: string;
  key: BudgetKey;
  tokens: number;
  nanoUsd: number;
  freeTokens: number;
  freeNanoUsd: number;
  spentTokens: number;
  spentNanoUsd: number;
  inflight: number;
  takenAt: number;
  expiresAt: number;
  /** No new call is drawn from it; given back once its calls are done. */
  retired: boolean;
  /**
   * The budget limits USD: a call must fit the lease's USD as well as its tokens. Without a USD
   * limit the lease's USD (lent in proportion to the call that took it) only keeps the books, and
   * a call of a costlier token mix must not wait for a take it does not need.
   */
  usdBounded: boolean;
  renewTimer?: ReturnType<typeof setInterval>;
  idleTimer?: ReturnType<typeof setTimeout>;
}

interface PoolEntry {
  tier: TierName;
  tokens: number;
  resolve: (hold: { pool: PoolConfig; window: number }) => void;
  reject: (error: unknown) => void;
}

interface TenantLeases {
  leases: Lease[];
  /** One take in flight per tenant and month: concurrent calls wait for it instead of taking leases of their own. */
  taking?: Promise<Lease | undefined>;
  /**
   * When (epoch ms) a take last found the budget short for calls of `shortAt` tokens or more. For
   * `SHORT_FRESH_MS` after it such a call is refused without asking the store; for `SHORT_KNOWN_MS`
   * it is still refused at once, while one take in the background reads the budget again.
   */
  shortSince?: number;
  shortAt?: number;
  shortRetry?: number;
  /** Reservations of this process' calls waiting for budget right now. */
  waitingTokens: number;
}

/**
 * Admission before the call (issue 12). Per process: lends itself budget from the tenant's
 * month budget item (a hard grant per call, or a lease per chunk), checks the account quota
 * pool for the model, and settles with the real usage after the call.
 */
export class Admission {
  private readonly cfg: AdmissionConfig;
  private readonly metrics: AdmissionMetrics;
  private readonly holder: string;
  private readonly now: () => number;
  private readonly tenants = new Map<string, TenantLeases>();
  private readonly policyCache = new Map<string, { policy: TierPolicy; at: number }>();
  /** One policy read per tenant at a time: a burst of calls on a cold tenant waits for that one read. */
  private readonly policyReads = new Map<string, Promise<TierPolicy>>();
  /** Calls waiting to enter a pool, and the pools whose batch is being decided (one at a time per pool). */
  private readonly poolWaiting = new Map<string, PoolEntry[]>();
  /** Pool credit in hand, per pool and tier: reserved in the window ahead of this process' calls (`creditShare`). */
  private readonly poolCredit = new Map<string, { pool: PoolConfig; tier: TierName; window: number; tokens: number; requests: number }>();
  private readonly poolDraining = new Set<string>();
  private readonly pending = new Set<Promise<unknown>>();
  /** Closing: no background lease takes any more (they would outlive the give-back). */
  private closed = false;

  constructor(private readonly deps: AdmissionDeps) {
    this.cfg = deps.config;
    this.metrics = deps.metrics ?? noAdmissionMetrics;
    this.holder = deps.holder ?? `proc-${randomUUID().slice(0, 8)}`;
    this.now = deps.clock ?? Date.now;
  }

  /** The tenant's tier, from the same cached policy admission decides with (one read per tenant every 30 s). */
  async tierOf(tenantId: string): Promise<TierName> {
    return (await this.policy(tenantId)).tier;
  }

  /** The tier's default max_tokens, for a request that declares none. */
  async defaultMaxTokens(tenantId: string): Promise<number> {
    const policy = await this.policy(tenantId);
    return this.cfg.tiers[policy.tier]?.defaultMaxTokens ?? 1_024;
  }

  async admit(req: AdmitRequest): Promise<AdmissionTicket> {
    const policy = await this.policy(req.tenantId);
    const tier = policy.tier;
    const reservation: Reservation = {
      tenantId: req.tenantId,
      tier,
      provider: req.provider,
      modelId: req.modelId,
      inputTokens: req.inputTokens,
      maxOutputTokens: req.maxOutputTokens,
      quotaTokens: req.inputTokens + req.maxOutputTokens,
      nanoUsd: req.nanoUsd,
      poolTokens: req.inputTokens + req.maxOutputTokens,
    };
    const dims = { tier };

    // 1. The tenant's budget. Premium (atLimit: alert) is never refused on budget, and a call
    // the decision already downgraded runs on the cheaper model outside the budget (tier rules).
    let budget: { lease: Lease; tokens: number; nanoUsd: number } | undefined;
    let mode: AdmissionMode | "none" = "none";
    let modelId = req.modelId;
    let downgradeTo: string | undefined;
    const budgeted = policy.atLimit !== "alert" && !req.alreadyDowngraded && (policy.monthlyTokens !== undefined || policy.monthlyUsd !== undefined);
    if (budgeted) {
      mode = this.cfg.tiers[tier]?.mode ?? "hard";
      const got = await this.drawBudget(req.tenantId, policy, mode, reservation);
      if ("refused" in got) {
        if (policy.atLimit === "downgrade" && req.canDowngrade && policy.downgradeModelId && policy.downgradeModelId !== req.modelId) {
          downgradeTo = policy.downgradeModelId;
          modelId = downgradeTo;
          mode = "none";
          this.metrics.count(ADMISSION_METRICS.downgraded, 1, dims);
        } else {
          const reason = got.reason ?? "budget";
          this.metrics.count(ADMISSION_METRICS.refused, 1, { ...dims, reason });
          throw new AdmissionRefusedError(
            reason === "budget-wait"
              ? `tenant '${req.tenantId}': no budget in hand within the tier's maxWaitMs (a lease is being taken; retry)`
              : `tenant '${req.tenantId}': monthly budget exhausted`,
            req.tenantId,
            reason,
            got.retryAfterSeconds,
          );
        }
      } else {
        budget = { lease: got.lease, tokens: reservation.quotaTokens, nanoUsd: reservation.nanoUsd };
      }
    }

    // 2. The account quota pool of the model the call will run on.
    const pool = this.deps.pools ? poolFor(this.cfg.pools, modelId, downgradeTo ?? req.baseModelId) : undefined;
    let poolHold: { pool: PoolConfig; window: number } | undefined;
    if (pool) {
      try {
        poolHold = await this.enterPool(pool, tier, reservation.poolTokens);
      } catch (error) {
        if (budget) this.finishBudget(budget, 0, 0);
        if (error instanceof AdmissionRefusedError) {
          this.metrics.count(ADMISSION_METRICS.refused, 1, { ...dims, reason: error.reason });
          throw new AdmissionRefusedError(error.message, req.tenantId, error.reason, error.retryAfterSeconds);
        }
        throw error;
      }
    }

    let done = false;
    let eventId: string | undefined;
    const finish = async (usage: ActualUsage | undefined) => {
      if (done) return;
      done = true;
      try {
        if (budget) {
          const nano = usage ? (usage.nanoUsd ?? 0) : 0;
          this.finishBudget(budget, usage ? quotaTokensOf(usage) : 0, nano);
        }
        if (poolHold && this.deps.pools) {
          const burned = usage ? poolBurnOf(modelId, usage, this.cfg.burnRates) : 0;
          await this.deps.pools.adjust(poolHold.pool.id, poolHold.window, tier, burned - reservation.poolTokens, usage ? 0 : -1, this.poolTtl(poolHold.pool));
        }
      } catch (error) {
        this.deps.logger?.warn("admission settlement failed; the grant expires and is reclaimed", { tenantId: req.tenantId, error: String(error) });
      }
    };
    const lease = budget?.lease;
    return {
      reservation: { ...reservation, modelId },
      mode,
      downgradeTo,
      serviceTier: this.cfg.serviceTiers[tier],
      bind: (id: string) => {
        eventId = id;
        // A hard grant is the call's own: record the id on it so a dead caller's grant can be
        // settled from the ledger. A lease is shared by many calls; its usage reconciles instead.
        if (lease && mode === "hard") this.track(this.deps.budgets.bind(lease.key, lease.id, id));
      },
      settle: (usage: ActualUsage, id?: string) => {
        eventId = id ?? eventId;
        return this.track(finish(usage));
      },
      release: () => this.track(finish(undefined)),
    };
  }

  /**
   * Settles or reclaims a tenant's expired grants (callers that died): a grant whose usage
   * event the ingest has counted is settled with the counted usage; one without an event id,
   * or whose event did not come within the grace period, is charged in full (never an
   * overshoot; `reconcile` and the aggregates stay the billing truth).
   */
  async sweep(tenantId: string, month = monthOfMs(this.now())): Promise<{ settled: number; charged: number; waiting: number }> {
    const key = { tenantId, month };
    const state = await this.deps.budgets.read(key);
    const out = { settled: 0, charged: 0, waiting: 0 };
    if (!state) return out;
    const now = this.now();
    for (const g of state.grants) {
      if (g.expiresAt > now) continue;
      if (g.eventId) {
        const counted = await this.deps.truth.counted(tenantId, g.eventId);
        if (counted) {
          const tokens = counted.inputTokens + counted.outputTokens + (counted.cacheWriteInputTokens ?? 0);
          if (await this.deps.budgets.giveBack(key, g, { tokens, nanoUsd: counted.costNanoUsd })) out.settled++;
          continue;
        }
        if (now < g.expiresAt + this.cfg.settleGraceSeconds * 1000) {
          out.waiting++;
          continue;
        }
      }
      if (await this.deps.budgets.giveBack(key, g, { tokens: g.tokens, nanoUsd: g.nanoUsd })) out.charged++;
    }
    if (out.settled + out.charged > 0) this.metrics.count(ADMISSION_METRICS.reclaimed, out.settled + out.charged);
    return out;
  }

  /** Raises the budget's used counter to the ingest aggregates (never lowers it); returns the drift added. */
  async reconcile(tenantId: string, month = monthOfMs(this.now())): Promise<number> {
    const truth = await this.deps.truth.monthUse(tenantId, month);
    const added = await this.deps.budgets.reconcile({ tenantId, month }, truth);
    if (added > 0) this.metrics.count(ADMISSION_METRICS.driftTokens, added);
    return added;
  }

  /** Gives every lease back (call on shutdown), after its calls settled. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.pending]);
    const all: Promise<unknown>[] = [];
    for (const t of this.tenants.values()) {
      // A copy: giving a lease back removes it from `t.leases` at once.
      for (const l of [...t.leases]) {
        l.retired = true;
        if (l.inflight === 0) all.push(this.giveBackLease(t, l));
      }
    }
    // Pool credit this process will not use goes back to its window (another process may).
    for (const c of this.poolCredit.values()) {
      if (this.deps.pools && c.window === windowOf(this.now(), c.pool.windowSeconds) && (c.tokens > 0 || c.requests > 0)) {
        all.push(this.deps.pools.adjust(c.pool.id, c.window, c.tier, -c.tokens, -c.requests, this.poolTtl(c.pool)));
      }
    }
    this.poolCredit.clear();
    await Promise.allSettled(all);
    await Promise.allSettled([...this.pending]);
  }

  // --- budget -------------------------------------------------------------------------------

  private async drawBudget(
    tenantId: string,
    policy: TierPolicy,
    mode: AdmissionMode,
    r: Reservation,
  ): Promise<{ lease: Lease } | { refused: true; retryAfterSeconds: number; reason?: "budget-wait" }> {
    const now = this.now();
    const key = { tenantId, month: monthOfMs(now) };
    const limits: BudgetLimits = { tokens: policy.monthlyTokens, nanoUsd: policy.monthlyUsd === undefined ? undefined : Math.round(policy.monthlyUsd * 1e9) };
    const slot = this.slot(key);
    if (mode === "hard") {
      // Hard: the call's own grant, exactly its reservation.
      if (this.refusedForNow(slot, r)) return { refused: true, retryAfterSeconds: slot.shortRetry ?? 1 };
      const res = await this.takeLease(key, limits, r.quotaTokens, r.nanoUsd);
      const lease = res.lease;
      if (!lease) {
        const retryAfterSeconds = this.retryAfter(res.outstanding ?? 0, now);
        // Calls as large or larger are refused without asking again for a moment.
        // Calls larger than what the take read as left are refused too (no round trip each).
        this.refuseForNow(slot, Math.min(r.quotaTokens, (res.remainingTokens ?? r.quotaTokens - 1) + 1), retryAfterSeconds);
        return { refused: true, retryAfterSeconds };
      }
      lease.retired = true;
      this.debit(lease, r);
      slot.leases.push(lease);
      return { lease };
    }
    const tierMode = this.cfg.tiers[policy.tier];
    const baseLease = tierMode?.leaseTokens ?? 20_000;
    const maxLease = Math.max(tierMode?.maxLeaseTokens ?? baseLease * 4, r.quotaTokens);
    slot.waitingTokens += r.quotaTokens;
    try {
      return await this.drawLease(slot, key, limits, r, baseLease, maxLease, now, tierMode?.maxWaitMs);
    } finally {
      slot.waitingTokens -= r.quotaTokens;
    }
  }

  private async drawLease(
    slot: TenantLeases,
    key: BudgetKey,
    limits: BudgetLimits,
    r: Reservation,
    baseLease: number,
    maxLease: number,
    now: number,
    maxWaitMs: number | undefined,
  ): Promise<{ lease: Lease } | { refused: true; retryAfterSeconds: number; reason?: "budget-wait" }> {
    // Calls of this process wait for one take at a time; each take either lends a lease (and
    // the loop goes on) or finds the budget short (and the call is refused). So it ends.
    const deadline = maxWaitMs === undefined ? undefined : this.now() + maxWaitMs;
    for (;;) {
      const fit = this.fit(slot, r, this.now());
      if (fit) {
        this.debit(fit, r);
        // Past half of a lease, the next one is taken in the background: a steady stream of calls
        // finds budget in hand instead of waiting for a round trip each time a lease runs out.
        // Not while the last reading (within 100 ms) found nothing left for a call like this.
        if (fit.freeTokens < fit.tokens / 2 && !this.otherRoom(slot, fit, r) && !this.refusedForNow(slot, r)) this.takeInBackground(slot, key, limits, r, baseLease, now);
        return { lease: fit };
      }
      if (this.refusedForNow(slot, r)) return { refused: true, retryAfterSeconds: slot.shortRetry ?? 1 };
      // Sized to what this process' calls are waiting for (a burst takes one lease, not a queue of them).
      const size = Math.min(maxLease, Math.max(baseLease, slot.waitingTokens, r.quotaTokens));
      if (this.knownShort(slot, r)) {
        // The budget was short for a call this size less than a second ago: refused at once on
        // that reading (with the retry-after it gave), while one take in the background
        // reads it again; the calls after that take see what it found. A refused burst waits
        // for no round trip, and the take rate stays one per process and moment.
        this.takeInBackground(slot, key, limits, r, size, now);
        return { refused: true, retryAfterSeconds: slot.shortRetry ?? 1 };
      }
      const taking = slot.taking ?? this.startTake(slot, key, limits, r, size, now);
      if (deadline !== undefined) {
        // The tier's admission latency bound (`maxWaitMs`): a call the budget in hand cannot
        // cover is refused (retry in a second) rather than wait longer for the store. The take
        // goes on, and the calls after it find its lease.
        const left = deadline - this.now();
        const timedOut = left <= 0 || (await raceTimeout(taking, left));
        if (timedOut) return { refused: true, retryAfterSeconds: 1, reason: "budget-wait" };
      }
      // A failed take (the store unreachable) fails the calls that waited for it. One that lent
      // nothing leaves `shortAt` set: the loop refuses the calls it cannot cover, and a smaller
      // call may still ask for what is left.
      await taking;
    }
  }

  /** A take no call waits for (the next lease ahead, or a fresh reading of a short budget): none while one is in flight or closing. */
  private takeInBackground(slot: TenantLeases, key: BudgetKey, limits: BudgetLimits, r: Reservation, leaseTokens: number, now: number): void {
    if (slot.taking || this.closed) return;
    void this.startTake(slot, key, limits, r, leaseTokens, now).catch((error: unknown) => {
      this.deps.logger?.warn("admission: background lease take failed", { tenantId: key.tenantId, error: String(error) });
    });
  }

  /** A call of `r`'s size is refused without asking the store: within the moment `refuseForNow` set, and as large as its bound. */
  private refusedForNow(slot: TenantLeases, r: Reservation): boolean {
    return this.shortFor(slot, r, SHORT_FRESH_MS);
  }

  /** A call of `r`'s size the last take (less than a second ago) found no room for. */
  private knownShort(slot: TenantLeases, r: Reservation): boolean {
    return this.shortFor(slot, r, SHORT_KNOWN_MS);
  }

  private shortFor(slot: TenantLeases, r: Reservation, withinMs: number): boolean {
    return slot.shortSince !== undefined && this.now() < slot.shortSince + withinMs && r.quotaTokens >= slot.shortAt!;
  }

  /**
   * For the next 100 ms, calls of `atLeast` tokens or more (that no lease in hand covers) are
   * refused without a round trip; for the next second, refused at once while a take in the
   * background reads the budget again (`knownShort`).
   */
  private refuseForNow(slot: TenantLeases, atLeast: number, retryAfterSeconds: number): void {
    slot.shortSince = this.now();
    slot.shortAt = atLeast;
    slot.shortRetry = retryAfterSeconds;
  }

  /** Another lease of the slot (not `l`) that still has room for a call like `r`. */
  private otherRoom(slot: TenantLeases, l: Lease, r: Reservation): boolean {
    return slot.leases.some((o) => o !== l && !o.retired && o.freeTokens >= r.quotaTokens);
  }

  /**
   * One take for the tenant's slot (at most one in flight per process and tenant): lends a lease
   * of `leaseTokens` (or what is left, when that still covers a call like `r`), or records that
   * the budget is short. Resolves with the lease, or undefined when the budget could not lend.
   */
  private startTake(slot: TenantLeases, key: BudgetKey, limits: BudgetLimits, r: Reservation, leaseTokens: number, now: number): Promise<Lease | undefined> {
    const taking = (async () => {
      // USD is lent in proportion: the lease covers leaseTokens worth of calls like this one.
      const nano = r.quotaTokens > 0 ? Math.ceil((r.nanoUsd * leaseTokens) / r.quotaTokens) : r.nanoUsd;
      const first = await this.takeLease(key, limits, leaseTokens, nano);
      let took = first.lease;
      let tookLeft = first.lease ? first.remainingTokens : undefined;
      const outstanding = first.outstanding ?? 0;
      const left = first.remainingTokens ?? r.quotaTokens - 1;
      if (!took && first.remainingTokens !== undefined && first.remainingTokens >= r.quotaTokens) {
        // Less than a lease is left: lend what is left (at least this call), so the budget is used to the end.
        const tokens = Math.min(first.remainingTokens, leaseTokens);
        const rest = await this.takeLease(key, limits, tokens, Math.min(first.remainingNanoUsd ?? nano, Math.ceil((r.nanoUsd * tokens) / Math.max(1, r.quotaTokens))));
        took = rest.lease;
        tookLeft = rest.lease ? rest.remainingTokens : undefined;
      }
      if (took) {
        slot.shortSince = undefined;
        if (tookLeft !== undefined) {
          // What the budget has left after this take (returned by the write): a call that fits
          // none of this process' leases (checked first) nor what is left is refused at once for a
          // moment, instead of each waiting for a take that must fail. Other processes giving
          // budget back are seen after the moment (100 ms), as with any refusal.
          this.refuseForNow(slot, tookLeft + 1, this.retryAfter(1, now));
        }
        for (const l of slot.leases) l.retired = l.retired || l.freeTokens < r.quotaTokens;
        slot.leases.push(took);
        for (const l of [...slot.leases]) if (l !== took && l.retired && l.inflight === 0) this.track(this.giveBackLease(slot, l));
      } else {
        // The budget cannot cover this call now: calls as large or larger are refused without
        // asking again for a moment (a lease given back elsewhere may change that soon).
        // The take read what is left: calls larger than that cannot fit either, so they are
        // refused without one more round trip each (a burst would otherwise queue its refusals).
        this.refuseForNow(slot, Math.min(r.quotaTokens, left + 1), this.retryAfter(outstanding, now));
      }
      return took;
    })();
    const tracked = taking.finally(() => {
      if (slot.taking === tracked) slot.taking = undefined;
    });
    slot.taking = tracked;
    // close() waits for takes in flight too (a background one above all): a lease landing after
    // the give-back would stay out until it expired, and then be charged in full.
    const settled = tracked.then(
      () => undefined,
      () => undefined,
    );
    this.pending.add(settled);
    void settled.finally(() => this.pending.delete(settled));
    return tracked;
  }

  private fit(slot: TenantLeases, r: Reservation, now: number): Lease | undefined {
    for (const l of slot.leases) {
      // Past half its life a lease lends no more: it is given back soon, and renewed only for calls in flight.
      if (!l.retired && now - l.takenAt > (this.cfg.leaseSeconds * 1000) / 2) l.retired = true;
      if (!l.retired && l.freeTokens >= r.quotaTokens && (!l.usdBounded || l.freeNanoUsd >= r.nanoUsd)) return l;
    }
    return undefined;
  }

  private debit(l: Lease, r: Reservation): void {
    l.freeTokens -= r.quotaTokens;
    l.freeNanoUsd -= r.nanoUsd;
    l.inflight++;
    if (l.idleTimer) clearTimeout(l.idleTimer);
    l.idleTimer = undefined;
    if (!l.renewTimer) {
      const every = Math.max(100, (this.cfg.leaseSeconds * 1000) / 2);
      l.renewTimer = setInterval(() => {
        l.expiresAt = this.now() + this.cfg.leaseSeconds * 1000;
        this.track(this.deps.budgets.renew(l.key, l.id, l.expiresAt));
      }, every);
      l.renewTimer.unref?.();
    }
  }

  private finishBudget(b: { lease: Lease; tokens: number; nanoUsd: number }, spentTokens: number, spentNanoUsd: number): void {
    const l = b.lease;
    l.inflight--;
    l.spentTokens += spentTokens;
    l.spentNanoUsd += spentNanoUsd;
    l.freeTokens += b.tokens - spentTokens;
    l.freeNanoUsd += b.nanoUsd - spentNanoUsd;
    if (l.inflight > 0) return;
    if (l.renewTimer) clearInterval(l.renewTimer);
    l.renewTimer = undefined;
    const slot = this.slot(l.key);
    if (l.retired) {
      this.track(this.giveBackLease(slot, l));
      return;
    }
    l.idleTimer = setTimeout(() => {
      if (l.inflight === 0) {
        l.retired = true;
        this.track(this.giveBackLease(slot, l));
      }
    }, this.cfg.leaseIdleMs);
    l.idleTimer.unref?.();
  }

  private async giveBackLease(slot: TenantLeases, l: Lease): Promise<void> {
    const i = slot.leases.indexOf(l);
    if (i < 0) return;
    slot.leases.splice(i, 1);
    if (l.idleTimer) clearTimeout(l.idleTimer);
    if (l.renewTimer) clearInterval(l.renewTimer);
    const ok = await this.deps.budgets.giveBack(l.key, l, { tokens: l.spentTokens, nanoUsd: l.spentNanoUsd });
    // What it did not spend is back in the budget: calls refused a moment ago for being larger
    // than what was left may fit by that much more (a settled call's room in a lease still in
    // hand is found by the lease itself).
    if (ok && slot.shortAt !== undefined) slot.shortAt += Math.max(0, l.tokens - l.spentTokens);
    if (!ok) {
      // Reclaimed as expired meanwhile (charged in full): nothing was lent twice.
      this.deps.logger?.warn("grant already reclaimed when given back", { tenantId: l.key.tenantId, grantId: l.id });
    }
    this.metrics.count(ADMISSION_METRICS.leaseReturned, 1);
  }

  private async takeLease(
    key: BudgetKey,
    limits: BudgetLimits,
    tokens: number,
    nanoUsd: number,
  ): Promise<{ lease?: Lease; remainingTokens?: number; remainingNanoUsd?: number; outstanding?: number }> {
    const now = this.now();
    const id = `${this.holder}.${randomUUID().slice(0, 12)}`;
    const expiresAt = now + this.cfg.leaseSeconds * 1000;
    const grant = { id, tokens, nanoUsd, expiresAt, holder: this.holder };
    const initialUse = () => this.deps.truth.monthUse(key.tenantId, key.month);
    let res = await this.deps.budgets.take(key, grant, limits, initialUse);
    if (!res.ok && res.outstandingGrants > 0 && res.expiredGrants > 0) {
      // Budget held by grants of callers that died: settle or reclaim them, then once more.
      const swept = await this.sweep(key.tenantId, key.month);
      if (swept.settled + swept.charged > 0) res = await this.deps.budgets.take(key, grant, limits, initialUse);
    }
    if (!res.ok) return { remainingTokens: res.remainingTokens, remainingNanoUsd: res.remainingNanoUsd, outstanding: res.outstandingGrants };
    this.metrics.count(ADMISSION_METRICS.leaseTaken, 1);
    return {
      remainingTokens: res.remainingTokens,
      remainingNanoUsd: res.remainingNanoUsd,
      lease: { id, key, tokens, nanoUsd, freeTokens: tokens, freeNanoUsd: nanoUsd, spentTokens: 0, spentNanoUsd: 0, inflight: 0, takenAt: now, expiresAt, retired: false, usdBounded: limits.nanoUsd !== undefined },
    };
  }

  /** While grants are out, budget may come back soon; otherwise it comes back with the month. */
  private retryAfter(outstandingGrants: number, now: number): number {
    if (outstandingGrants > 0) return Math.max(1, Math.ceil(this.cfg.leaseIdleMs / 1000));
    return secondsToMonthEnd(now);
  }

  private slot(key: BudgetKey): TenantLeases {
    const k = `${key.tenantId}|${key.month}`;
    let s = this.tenants.get(k);
    if (!s) {
      s = { leases: [], waitingTokens: 0 };
      this.tenants.set(k, s);
    }
    return s;
  }

  // --- pools --------------------------------------------------------------------------------

  private poolTtl(pool: PoolConfig): number {
    return Math.ceil(pool.windowSeconds * 3);
  }

  /**
   * Enters the account quota pool. Calls of this process wait together: while one read-decide-write
   * of the window is in flight, the calls that arrive queue, and the next round decides all of them
   * on one read and adds them with one conditional write (`ver` unchanged since the read). So a
   * burst costs a round trip per batch, not per call.
   */
  private enterPool(pool: PoolConfig, tier: TierName, tokens: number): Promise<{ pool: PoolConfig; window: number }> {
    const window = this.fromCredit(pool, tier, tokens);
    // Reserved in this window by an earlier round: the call is admitted without a round trip.
    if (window !== undefined) return Promise.resolve({ pool, window });
    return new Promise((resolve, reject) => {
      const waiting = this.poolWaiting.get(pool.id) ?? [];
      waiting.push({ tier, tokens, resolve, reject });
      this.poolWaiting.set(pool.id, waiting);
      if (!this.poolDraining.has(pool.id)) void this.drainPool(pool);
    });
  }

  /** Takes a call's reservation from the tier's pool credit of the current window; the window, or undefined when it does not fit. */
  private fromCredit(pool: PoolConfig, tier: TierName, tokens: number): number | undefined {
    const credit = this.poolCredit.get(`${pool.id}|${tier}`);
    if (!credit || credit.window !== windowOf(this.now(), pool.windowSeconds) || credit.tokens < tokens || credit.requests < 1) return undefined;
    credit.tokens -= tokens;
    credit.requests -= 1;
    return credit.window;
  }

  private async drainPool(pool: PoolConfig): Promise<void> {
    this.poolDraining.add(pool.id);
    try {
      for (;;) {
        const queued = this.poolWaiting.get(pool.id);
        if (!queued || queued.length === 0) return;
        this.poolWaiting.delete(pool.id);
        // Calls that queued behind the round that took credit draw from it first.
        const batch = queued.filter((e) => {
          const window = this.fromCredit(pool, e.tier, e.tokens);
          if (window !== undefined) e.resolve({ pool, window });
          return window === undefined;
        });
        if (batch.length === 0) continue;
        try {
          await this.decidePoolBatch(pool, batch);
        } catch (error) {
          for (const e of batch) e.reject(error);
        }
      }
    } finally {
      this.poolDraining.delete(pool.id);
    }
  }

  /**
   * One read and (when anything is admitted) one conditional write for a batch of calls: decided
   * higher tier first (Premium, Advanced, Basic; arrival order within a tier), each on the window
   * as the calls before it in the batch left it, with the same rule as a single call (`poolDecide`).
   * A write that loses the race (another process changed the window) decides the whole batch again.
   */
  private async decidePoolBatch(pool: PoolConfig, batch: PoolEntry[]): Promise<void> {
    const store = this.deps.pools!;
    const order = [...batch].sort((a, b) => TIER_RANK[b.tier] - TIER_RANK[a.tier]);
    for (let attempt = 0; attempt < 50; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, Math.random() * Math.min(50, 2 * attempt)));
      const now = this.now();
      const window = windowOf(now, pool.windowSeconds);
      const st = await store.read(pool.id, window);
      const use = { tokens: { ...st.use.tokens }, requests: { ...st.use.requests } };
      const deltas: PoolDeltas = {};
      // Counted on the window as this round leaves it (later decisions see it) and written with it.
      const reserve = (tier: TierName, tokens: number, requests: number) => {
        use.tokens[tier] = (use.tokens[tier] ?? 0) + tokens;
        use.requests[tier] = (use.requests[tier] ?? 0) + requests;
        const d = (deltas[tier] ??= { tokens: 0, requests: 0 });
        d.tokens += tokens;
        d.requests += requests;
      };
      const admitted: PoolEntry[] = [];
      const refused: { e: PoolEntry; reason: "shed" | "saturated" }[] = [];
      for (const e of order) {
        const verdict = poolDecide(pool, use, e.tier, e.tokens, 1);
        if (!verdict.admit) {
          refused.push({ e, reason: verdict.reason });
          continue;
        }
        reserve(e.tier, e.tokens, 1);
        admitted.push(e);
      }
      // Credit for the tiers admitted this round (highest first, each on the window as the rest left it).
      const credits: { tier: TierName; tokens: number; requests: number }[] = [];
      if (pool.creditShare > 0) {
        for (const tier of [...new Set(admitted.map((e) => e.tier))]) {
          const callTokens = Math.max(1, ...admitted.filter((e) => e.tier === tier).map((e) => e.tokens));
          const credit = creditFor(pool, use, tier, callTokens);
          if (!credit) continue;
          reserve(tier, credit.tokens, credit.requests);
          credits.push({ tier, ...credit });
        }
      }
      if (admitted.length > 0 && !(await store.add(pool.id, window, deltas, st.version, this.poolTtl(pool)))) continue;
      for (const c of credits) {
        // Credit of an earlier window is void: this one replaces it. Credit of this window adds up.
        const key = `${pool.id}|${c.tier}`;
        const held = this.poolCredit.get(key);
        if (held && held.window === window) {
          held.tokens += c.tokens;
          held.requests += c.requests;
        } else this.poolCredit.set(key, { pool, tier: c.tier, window, tokens: c.tokens, requests: c.requests });
      }
      for (const e of admitted) e.resolve({ pool, window });
      const retryAfterSeconds = Math.max(1, Math.ceil(window + pool.windowSeconds - now / 1000));
      for (const { e, reason } of refused) {
        if (reason === "shed") this.metrics.count(ADMISSION_METRICS.shed, 1, { tier: e.tier, pool: pool.id });
        e.reject(
          new AdmissionRefusedError(
            `pool ${pool.id}: ${reason === "shed" ? `${e.tier} shed near saturation` : "saturated"}`,
            "",
            reason === "shed" ? "pool-shed" : "pool-saturated",
            retryAfterSeconds,
          ),
        );
      }
      return;
    }
    throw new AdmissionContentionError(`pool ${pool.id}: window kept changing`);
  }

  // --- misc ---------------------------------------------------------------------------------

  private async policy(tenantId: string): Promise<TierPolicy> {
    const hit = this.policyCache.get(tenantId);
    if (hit && this.now() - hit.at < 30_000) return hit.policy;
    let read = this.policyReads.get(tenantId);
    if (!read) {
      read = this.deps.policies.policy(tenantId).then(
        (policy) => {
          this.policyCache.set(tenantId, { policy, at: this.now() });
          return policy;
        },
      );
      this.policyReads.set(tenantId, read);
      const forget = () => void this.policyReads.delete(tenantId);
      read.then(forget, forget);
    }
    return read;
  }

  private track<T>(p: Promise<T>): Promise<void> {
    const q = p.then(
      () => undefined,
      (error: unknown) => this.deps.logger?.warn("admission background write failed", { error: String(error) }),
    );
    this.pending.add(q);
    void q.finally(() => this.pending.delete(q));
    return q;
  }
}

/**
 * A tier's pool credit for the rest of the window as `use` stands: the pool's `creditShare` of
 * the window, or as much of it (halved until the pool rule admits it) as still holds one call of
 * `callTokens`; undefined when not even that fits.
 */
function creditFor(pool: PoolConfig, use: PoolUse, tier: TierName, callTokens: number): { tokens: number; requests: number } | undefined {
  const cap = Math.floor((pool.tpm * pool.windowSeconds) / 60);
  const capRequests = Math.max(1, Math.floor((pool.rpm * pool.windowSeconds) / 60));
  for (let want = Math.floor(pool.creditShare * cap); want >= callTokens; want = Math.floor(want / 2)) {
    const requests = Math.min(Math.ceil(want / callTokens), Math.max(1, Math.floor(pool.creditShare * capRequests)));
    if (poolDecide(pool, use, tier, want, requests).admit) return { tokens: want, requests };
  }
  return undefined;
}

/** Waits for `p` at most `ms`: true when the time ran out first (`p` goes on; its rejection is not lost to the caller that awaits it). */
async function raceTimeout(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<true>((resolve) => {
    timer = setTimeout(() => resolve(true), ms);
  });
  try {
    return await Promise.race([p.then(() => false as const, () => false as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
