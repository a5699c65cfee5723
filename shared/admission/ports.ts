import type { TierPolicy } from "../quota/tiers";
import type { BudgetLimits, BudgetState, Grant, PoolUse } from "./model";
import type { TierName } from "../quota/tiers";

export interface BudgetKey {
  tenantId: string;
  /** yyyy-mm (UTC), the quota's period. */
  month: string;
}

export type TakeResult =
  /** `remaining*`: what the budget has left after this grant, where the store tells (no extra read). */
  | { ok: true; remainingTokens?: number; remainingNanoUsd?: number }
  | { ok: false; remainingTokens: number; remainingNanoUsd: number; outstandingGrants: number; expiredGrants: number };

/**
 * Port: the tenant's monthly budget, lent out as grants. Every method is one conditional
 * write (or one read), so concurrent processes can never lend the same budget twice.
 */
export interface BudgetStore {
  /**
   * Lends `grant` if the remaining budget covers it (tokens and USD), in one conditional
   * update. Creates the month's budget item first if absent: `limits`, and as already used
   * what `initialUse()` says (the ingest aggregates of the month so far).
   */
  take(
    key: BudgetKey,
    grant: Grant,
    limits: BudgetLimits, initialUse: () => Promise<{ tokens: number; nanoUsd: number }>): Promise<TakeResult>;
  /**
   * Gives a grant back: `spent` becomes used, the rest of the grant returns to the remaining
   * budget. Once per grant: false when it was already given back, settled or reclaimed.
   */
  giveBack(key: BudgetKey, grant: Pick<Grant, "id" | "tokens" | "nanoUsd">, spent: { tokens: number; nanoUsd: number }): Promise<boolean>;
  /** Extends a live grant's expiry; false when it no longer exists. */
  renew(key: BudgetKey, grantId: string, expiresAt: number): Promise<boolean>;
  /** Records the usage event id of a grant (a stream's request id), so the ledger can settle it. */
  bind(key: BudgetKey, grantId: string, eventId: string): Promise<boolean>;
  read(key: BudgetKey): Promise<BudgetState | undefined>;
  /** Raises `used` to at least the ingest's truth (never lowers it); returns the tokens added. */
  reconcile(key: BudgetKey, truth: { tokens: number; nanoUsd: number }): Promise<number>;
}

/** What the ingest counted for one event (its ledger entry, once its group committed). */
export interface CountedEvent {
  inputTokens: number;
  outputTokens: number;
  cacheWriteInputTokens?: number;
  costNanoUsd: number;
}

/** Port: the ingest's side, read only. Billing truth stays there. */
export interface UsageTruth {
  /** Quota tokens and cost (pay-per-token + allocated) of the tenant's month so far. */
  monthUse(tenantId: string, month: string): Promise<{ tokens: number; nanoUsd: number }>;
  /** The event's counted usage, if the ingest has counted it (ledger entry of a committed group). */
  counted(tenantId: string, eventId: string): Promise<CountedEvent | undefined>;
}

export interface PoolWindow {
  use: PoolUse;
  version: number;
}

/** Tokens and requests to add per tier (tiers absent: nothing). */
export type PoolDeltas = Partial<Record<TierName, { tokens: number; requests: number }>>;

/** Port: the account quota pool's per-window use per tier. */
export interface PoolStore {
  read(poolId: string, window: number): Promise<PoolWindow>;
  /**
   * Adds to the tiers' use only if the window is still at `version` (nobody changed it since our
   * read): one write for every call of a process decided on that read.
   */
  add(poolId: string, window: number, deltas: PoolDeltas, version: number, ttlSeconds: number): Promise<boolean>;
  /** Settles a reservation: adds `deltaTokens` (negative returns tokens) to the tier, unconditionally. */
  adjust(poolId: string, window: number, tier: TierName, deltaTokens: number, deltaRequests: number, ttlSeconds: number): Promise<void>;
}

/** Port: the tenant's effective quota policy (tier + overrides), e.g. the CONFIG item over the tier catalog. */
export interface PolicySource {
  policy(tenantId: string): Promise<TierPolicy>;
}

/** Counters for refusals, downgrades, leases (EMF names in shared/observability). */
export interface AdmissionMetrics {
  count(name: string, value: number, dimensions?: Record<string, string>): void;
}

export const noAdmissionMetrics: AdmissionMetrics = { count: () => undefined };
