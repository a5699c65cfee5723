import { DEFAULT_TIERS, TIER_NAMES, type TierName, type TierPolicy } from "../../quota/tiers";
import { UNLIMITED, budgetLimitKey, openingBudget, type BudgetLimits, type BudgetState, type Grant } from "../model";
import type { BudgetKey, BudgetStore, CountedEvent, PolicySource, PoolDeltas, PoolStore, PoolWindow, TakeResult, UsageTruth } from "../ports";

/**
 * In-memory stores with the same semantics as the DynamoDB adapter (each method one atomic
 * step), for unit tests and single-process use. `delayMs` makes every call yield, so races
 * between concurrent callers interleave as they would over a network.
 */
interface MemBudget {
  limitKey: string;
  limitTokens: number;
  limitNanoUsd: number;
  usedTokens: number;
  usedNanoUsd: number;
  remainingTokens: number;
  remainingNanoUsd: number;
  heldTokens: number;
  heldNanoUsd: number;
  grants: Map<string, Grant>;
}

const lk = budgetLimitKey;

export class MemoryBudgetStore implements BudgetStore {
  readonly items = new Map<string, MemBudget>();
  writes = 0;
  constructor(private readonly opts: { delayMs?: number; now?: () => number } = {}) {}

  private async tick(): Promise<void> {
    await new Promise((r) => setTimeout(r, this.opts.delayMs ?? 0));
  }
  private k(key: BudgetKey) {
    return `${key.tenantId}|${key.month}`;
  }

  async take(key: BudgetKey, grant: Grant, limits: BudgetLimits, initialUse: () => Promise<{ tokens: number; nanoUsd: number }>): Promise<TakeResult> {
    await this.tick();
    let b = this.items.get(this.k(key));
    if (!b) {
      const used = await initialUse();
      b = this.items.get(this.k(key));
      if (!b) {
        b = { ...openingBudget(limits, used), grants: new Map() };
        this.items.set(this.k(key), b);
      }
    }
    if (b.limitKey !== lk(limits)) {
      const t = limits.tokens ?? UNLIMITED;
      const u = limits.nanoUsd ?? UNLIMITED;
      b.remainingTokens += t - b.limitTokens;
      b.remainingNanoUsd += u - b.limitNanoUsd;
      b.limitTokens = t;
      b.limitNanoUsd = u;
      b.limitKey = lk(limits);
    }
    this.writes++;
    if (b.remainingTokens < grant.tokens || b.remainingNanoUsd < grant.nanoUsd || b.grants.has(grant.id)) {
      const now = (this.opts.now ?? Date.now)();
      return {
        ok: false,
        remainingTokens: b.remainingTokens,
        remainingNanoUsd: b.remainingNanoUsd,
        outstandingGrants: b.grants.size,
        expiredGrants: [...b.grants.values()].filter((g) => g.expiresAt <= now).length,
      };
    }
    b.remainingTokens -= grant.tokens;
    b.remainingNanoUsd -= grant.nanoUsd;
    b.heldTokens += grant.tokens;
    b.heldNanoUsd += grant.nanoUsd;
    b.grants.set(grant.id, { ...grant });
    return { ok: true, remainingTokens: b.remainingTokens, remainingNanoUsd: b.remainingNanoUsd };
  }

  async giveBack(key: BudgetKey, grant: Pick<Grant, "id" | "tokens" | "nanoUsd">, spent: { tokens: number; nanoUsd: number }): Promise<boolean> {
    await this.tick();
    const b = this.items.get(this.k(key));
    this.writes++;
    if (!b || !b.grants.has(grant.id)) return false;
    b.grants.delete(grant.id);
    b.remainingTokens += grant.tokens - spent.tokens;
    b.remainingNanoUsd += grant.nanoUsd - spent.nanoUsd;
    b.usedTokens += spent.tokens;
    b.usedNanoUsd += spent.nanoUsd;
    b.heldTokens -= grant.tokens;
    b.heldNanoUsd -= grant.nanoUsd;
    return true;
  }

  async renew(key: BudgetKey, grantId: string, expiresAt: number): Promise<boolean> {
    await this.tick();
    const g = this.items.get(this.k(key))?.grants.get(grantId);
    this.writes++;
    if (!g) return false;
    g.expiresAt = expiresAt;
    return true;
  }

  async bind(key: BudgetKey, grantId: string, eventId: string): Promise<boolean> {
    await this.tick();
    const g = this.items.get(this.k(key))?.grants.get(grantId);
    this.writes++;
    if (!g) return false;
    g.eventId = eventId;
    return true;
  }

  async read(key: BudgetKey): Promise<BudgetState | undefined> {
    await this.tick();
    const b = this.items.get(this.k(key));
    if (!b) return undefined;
    return {
      tenantId: key.tenantId,
      month: key.month,
      ...(b.limitTokens < UNLIMITED ? { limitTokens: b.limitTokens } : {}),
      ...(b.limitNanoUsd < UNLIMITED ? { limitNanoUsd: b.limitNanoUsd } : {}),
      usedTokens: b.usedTokens,
      usedNanoUsd: b.usedNanoUsd,
      remainingTokens: b.remainingTokens,
      remainingNanoUsd: b.remainingNanoUsd,
      grants: [...b.grants.values()].map((g) => ({ ...g })),
    };
  }

  async reconcile(key: BudgetKey, truth: { tokens: number; nanoUsd: number }): Promise<number> {
    await this.tick();
    const b = this.items.get(this.k(key));
    if (!b) return 0;
    const gapT = Math.max(0, truth.tokens - (b.usedTokens + b.heldTokens));
    const gapU = Math.max(0, truth.nanoUsd - (b.usedNanoUsd + b.heldNanoUsd));
    b.usedTokens += gapT;
    b.remainingTokens -= gapT;
    b.usedNanoUsd += gapU;
    b.remainingNanoUsd -= gapU;
    if (gapT || gapU) this.writes++;
    return gapT;
  }
}

export class MemoryPoolStore implements PoolStore {
  private readonly windows = new Map<string, { tokens: Record<TierName, number>; requests: Record<TierName, number>; version: number }>();
  constructor(private readonly opts: { delayMs?: number } = {}) {}

  private async tick(): Promise<void> {
    await new Promise((r) => setTimeout(r, this.opts.delayMs ?? 0));
  }
  private get(poolId: string, window: number) {
    const k = `${poolId}|${window}`;
    let w = this.windows.get(k);
    if (!w) {
      const zero = () => Object.fromEntries(TIER_NAMES.map((t) => [t, 0])) as Record<TierName, number>;
      w = { tokens: zero(), requests: zero(), version: 0 };
      this.windows.set(k, w);
    }
    return w;
  }

  async read(poolId: string, window: number): Promise<PoolWindow> {
    await this.tick();
    const w = this.get(poolId, window);
    return { use: { tokens: { ...w.tokens }, requests: { ...w.requests } }, version: w.version };
  }

  /** Conditional writes of windows (the admission write rate). */
  adds = 0;

  async add(poolId: string, window: number, deltas: PoolDeltas, version: number): Promise<boolean> {
    await this.tick();
    this.adds++;
    const w = this.get(poolId, window);
    if (w.version !== version) return false;
    for (const [tier, d] of Object.entries(deltas) as [TierName, { tokens: number; requests: number }][]) {
      w.tokens[tier] += d.tokens;
      w.requests[tier] += d.requests;
    }
    w.version++;
    return true;
  }

  async adjust(poolId: string, window: number, tier: TierName, deltaTokens: number, deltaRequests: number): Promise<void> {
    await this.tick();
    const w = this.get(poolId, window);
    w.tokens[tier] += deltaTokens;
    w.requests[tier] += deltaRequests;
    w.version++;
  }
}

/** Truth the tests control: month use and counted events. */
export class MemoryUsageTruth implements UsageTruth {
  readonly months = new Map<string, { tokens: number; nanoUsd: number }>();
  readonly events = new Map<string, CountedEvent>();
  async monthUse(tenantId: string, month: string) {
    return this.months.get(`${tenantId}|${month}`) ?? { tokens: 0, nanoUsd: 0 };
  }
  async counted(tenantId: string, eventId: string) {
    return this.events.get(`${tenantId}|${eventId}`);
  }
}

/** Fixed policies per tenant (default: the tier catalog's `basic`). */
export class StaticPolicySource implements PolicySource {
  constructor(private readonly policies: Record<string, TierPolicy> = {}, private readonly fallback: TierPolicy = DEFAULT_TIERS.basic) {}
  async policy(tenantId: string): Promise<TierPolicy> {
    return this.policies[tenantId] ?? this.fallback;
  }
}
