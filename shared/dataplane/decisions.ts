import { z } from "zod";
import { modelIdSchema } from "../events/invocation";
import { DecisionUnavailableError } from "./errors";
import { consoleLogger, type DataplaneLogger } from "./ports";

/** What the data plane should do with a tenant's next call. */
export const tenantDecisionSchema = z.object({
  tenantId: z.string().min(1),
  decision: z.enum(["allow", "downgrade", "throttle"]),
  targetModelId: modelIdSchema.optional(),
  retryAfterSeconds: z.number().nonnegative().optional(),
  tier: z.string().min(1).optional(),
  period: z.string().min(1).optional(),
  reason: z.string().optional(),
});
export type TenantDecision = z.infer<typeof tenantDecisionSchema>;

/** Port: the current decision for a tenant. */
export interface DecisionSource {
  get(tenantId: string): Promise<TenantDecision>;
}

/** Always allow: for callers that do not enforce quotas (and tests). */
export const allowAll: DecisionSource = { get: async (tenantId) => ({ tenantId, decision: "allow" }) };

export interface HttpDecisionSourceOptions {
  /** e.g. `https://api.example.com` or the local stack `http://127.0.0.1:4000`. */
  baseUrl: string;
  timeoutMs?: number;
  headers?: Record<string, string>;
  fetch?: typeof fetch;
}

/** GET `${baseUrl}/tenants/${tenantId}/decision` -> {@link TenantDecision}. */
export class HttpDecisionSource implements DecisionSource {
  private readonly fetch: typeof fetch;
  constructor(private readonly opts: HttpDecisionSourceOptions) {
    this.fetch = opts.fetch ?? globalThis.fetch;
  }

  async get(tenantId: string): Promise<TenantDecision> {
    const url = `${this.opts.baseUrl.replace(/\/+$/, "")}/tenants/${encodeURIComponent(tenantId)}/decision`;
    let response: Response;
    try {
      response = await this.fetch(url, {
        headers: { accept: "application/json", ...this.opts.headers },
        signal: AbortSignal.timeout(this.opts.timeoutMs ?? 1_000),
      });
    } catch (cause) {
      throw new DecisionUnavailableError(`decision request failed: ${describe(cause)}`, undefined, { cause });
    }
    if (!response.ok) {
      throw new DecisionUnavailableError(`decision endpoint answered ${response.status}`, response.status);
    }
    let json: unknown;
    try {
      json = await response.json();
    } catch (cause) {
      throw new DecisionUnavailableError("decision endpoint answered invalid JSON", response.status, { cause });
    }
    const parsed = tenantDecisionSchema.safeParse(json);
    if (!parsed.success || parsed.data.tenantId !== tenantId) {
      throw new DecisionUnavailableError(
        parsed.success ? `decision is for tenant '${parsed.data.tenantId}'` : "decision endpoint answered an unknown shape",
        response.status,
      );
    }
    return parsed.data;
  }
}

/**
 * The detail of an enforcement event (published by quota enforcement). Only the fields the
 * data plane needs; anything else in the detail is ignored.
 */
export const enforcementDetailSchema = z.object({
  tenantId: z.string().min(1),
  action: z.enum(["warning", "downgrade", "throttle", "restore"]),
  targetModelId: modelIdSchema.optional(),
  retryAfterSeconds: z.number().nonnegative().optional(),
  tier: z.string().min(1).optional(),
  period: z.string().min(1).optional(),
  // Loose on purpose (the publisher validates the contract): a value this version does not
  // know must not make the data plane drop the whole event.
  /** `minute` for a per-minute (rpm/tpm) limit, `month` for the monthly quota. */
  periodKind: z.string().optional(),
  /** A fraction of the monthly quota, or the per-minute limit crossed (`rpm`, `tpm`; `rate` on a restore). */
  threshold: z.union([z.number(), z.string()]).optional(),
  reason: z.string().optional(),
  /** When the quota service decided; `retryAfterSeconds` counts from here, not from arrival. */
  occurredAt: z.string().optional(),
});
export type EnforcementDetail = z.infer<typeof enforcementDetailSchema>;

export interface CachedDecisionSourceOptions {
  /** How long a fetched decision is used without asking again. Default 5 s. */
  ttlMs?: number;
  logger?: DataplaneLogger;
  now?: () => number;
}

interface Entry {
  decision: TenantDecision;
  fetchedAt: number;
  /** A fail-open placeholder, not a decision anybody made. */
  failOpen: boolean;
  /** A per-minute throttle from an enforcement event: the instant (epoch ms) its minute ends. */
  until?: number;
  /** The entry a per-minute throttle replaced, for stale-while-error once that minute is over. */
  previous?: Entry;
  /** `occurredAt` (epoch ms) of the enforcement event that set this entry. */
  eventAt?: number;
  /** Set by a monthly-quota event: a per-minute restore does not lift it. */
  monthly?: boolean;
}

/**
 * Caches decisions for a short TTL so the hot path rarely waits on HTTP.
 * - stale-while-error: when a refresh fails, the last known decision stays in force;
 * - fail open: with no decision known at all, the call is allowed (and that is logged), since
 *   an outage of the quota service must not take the product down;
 * - enforcement events refresh an entry at once instead of waiting out the TTL.
 * Concurrent calls for one tenant share one request.
 */
export class CachedDecisionSource implements DecisionSource {
  private readonly entries = new Map<string, Entry>();
  /** Bumped by every applied enforcement event; see `refresh`. */
  private readonly generations = new Map<string, number>();
  private readonly inflight = new Map<string, Promise<TenantDecision>>();
  private readonly ttlMs: number;
  private readonly logger: DataplaneLogger;
  private readonly now: () => number;

  constructor(
    private readonly inner: DecisionSource,
    opts: CachedDecisionSourceOptions = {},
  ) {
    this.ttlMs = opts.ttlMs ?? 5_000;
    this.logger = opts.logger ?? consoleLogger;
    this.now = opts.now ?? Date.now;
  }

  async get(tenantId: string): Promise<TenantDecision> {
    const entry = this.entries.get(tenantId);
    if (entry && this.now() - entry.fetchedAt < this.ttlMs && !this.lapsed(entry)) return entry.decision;
    let pending = this.inflight.get(tenantId);
    if (!pending) {
      pending = this.refresh(tenantId).finally(() => this.inflight.delete(tenantId));
      this.inflight.set(tenantId, pending);
    }
    return pending;
  }

  /**
   * Applies an enforcement event's detail (EventBridge `detail`). Returns false for a detail
   * that is not an enforcement event. A warning changes nothing about what calls may do.
   *
   * Events can arrive minutes late (the outbox sweeper republishes failed publishes). A
   * per-minute throttle holds only until `occurredAt + retryAfterSeconds` (the end of its
   * minute): one that arrives after that instant changes nothing, and one that arrives before
   * it is enforced until that instant at most, never for a TTL counted from arrival.
   * Monthly throttles, downgrades and restores apply as they arrive.
   */
  applyEnforcementEvent(detail: unknown): boolean {
    const parsed = enforcementDetailSchema.safeParse(detail);
    if (!parsed.success) {
      this.logger.warn("ignored an enforcement event that does not parse", { issues: parsed.error.issues.length });
      return false;
    }
    const d = parsed.data;
    if (d.action === "warning") return true;
    const until = d.action === "throttle" ? minuteThrottleEnd(d) : undefined;
    // A late throttle for a minute already over: applying it would throttle the tenant for a
    // whole TTL (and past it while the endpoint is down) for a limit that no longer holds.
    if (until !== undefined && this.now() >= until) return true;
    const current = this.entries.get(d.tenantId);
    const eventAt = d.occurredAt === undefined ? Number.NaN : Date.parse(d.occurredAt);
    // Events can arrive out of order (a republished one minutes late): one decided before the
    // event whose decision is in force says nothing new (a late restore must not lift a newer
    // throttle, a late throttle must not undo a newer restore).
    if (current?.eventAt !== undefined && eventAt < current.eventAt) return true;
    if (d.action === "restore" && isMinuteRestore(d)) {
      // The end of a per-minute throttle lifts only that throttle: a monthly restriction in
      // force (the decision before the minute throttle, or in force now) stays.
      const restored = current?.until !== undefined ? current.previous : current;
      if (restored?.monthly && restored.decision.decision !== "allow") {
        this.entries.set(d.tenantId, { ...restored, fetchedAt: this.now() });
        this.generations.set(d.tenantId, (this.generations.get(d.tenantId) ?? 0) + 1);
        return true;
      }
    }
    const base = { tenantId: d.tenantId, tier: d.tier, period: d.period, reason: d.reason };
    const decision: TenantDecision =
      d.action === "restore"
        ? { ...base, decision: "allow" }
        : d.action === "downgrade"
          ? { ...base, decision: "downgrade", targetModelId: d.targetModelId }
          : { ...base, decision: "throttle", retryAfterSeconds: d.retryAfterSeconds };
    const entry: Entry = { decision: stripUndefined(decision), fetchedAt: this.now(), failOpen: false };
    if (!Number.isNaN(eventAt)) entry.eventAt = eventAt;
    if (d.action !== "restore" && (d.periodKind === "month" || typeof d.threshold === "number")) entry.monthly = true;
    if (until !== undefined) {
      entry.until = until;
      entry.previous = current?.until !== undefined ? current.previous : current;
    }
    this.entries.set(d.tenantId, entry);
    this.generations.set(d.tenantId, (this.generations.get(d.tenantId) ?? 0) + 1);
    return true;
  }

  /** True for a per-minute throttle whose minute has ended. */
  private lapsed(entry: Entry): boolean {
    return entry.until !== undefined && this.now() >= entry.until;
  }

  invalidate(tenantId?: string): void {
    if (tenantId === undefined) this.entries.clear();
    else this.entries.delete(tenantId);
  }

  private async refresh(tenantId: string): Promise<TenantDecision> {
    const generation = this.generations.get(tenantId) ?? 0;
    try {
      const decision = await this.inner.get(tenantId);
      // An enforcement event applied while this request was in flight is newer than the
      // answer (which may have been computed before the event): keep the event's decision,
      // or a throttle could be undone for a whole TTL by a slow "allow".
      // A per-minute throttle whose minute ended meanwhile no longer holds, so the answer wins.
      const current = this.entries.get(tenantId);
      if ((this.generations.get(tenantId) ?? 0) !== generation && current && !this.lapsed(current)) return current.decision;
      this.entries.set(tenantId, { decision, fetchedAt: this.now(), failOpen: false });
      return decision;
    } catch (error) {
      const current = this.entries.get(tenantId);
      // A per-minute throttle that has ended is not kept: what was in force before it is.
      const last = current && this.lapsed(current) ? current.previous : current;
      if (last) {
        // Keep enforcing the last known decision; try again after another TTL.
        this.entries.set(tenantId, { ...last, fetchedAt: this.now() });
        this.logger.warn("decision refresh failed; keeping the last decision", {
          tenantId,
          decision: last.decision.decision,
          failOpen: last.failOpen,
          error: describe(error),
        });
        return last.decision;
      }
      const decision: TenantDecision = { tenantId, decision: "allow", reason: "fail-open: decision unavailable" };
      // Cached like a real answer for one TTL, so an outage is not hammered once per call.
      this.entries.set(tenantId, { decision, fetchedAt: this.now(), failOpen: true });
      this.logger.warn("no decision available; failing open to allow", { tenantId, error: describe(error) });
      return decision;
    }
  }
}

/**
 * The instant (epoch ms) a per-minute (rpm/tpm) throttle ends: `occurredAt + retryAfterSeconds`.
 * Undefined for a monthly throttle, or when the detail lacks either field (then it applies as
 * it arrives, as before).
 */
function minuteThrottleEnd(d: EnforcementDetail): number | undefined {
  const perMinute = d.periodKind === "minute" || d.threshold === "rpm" || d.threshold === "tpm";
  if (!perMinute || d.retryAfterSeconds === undefined || d.occurredAt === undefined) return undefined;
  const at = Date.parse(d.occurredAt);
  return Number.isNaN(at) ? undefined : at + d.retryAfterSeconds * 1000;
}

/** The restore that ends a per-minute (rpm/tpm) throttle. */
function isMinuteRestore(d: EnforcementDetail): boolean {
  return d.periodKind === "minute" || d.threshold === "rate";
}

function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
