import type { UsageCounters } from "../../../shared/usage/model";
import { zeroCounters } from "../../../shared/usage/model";
import { limitTokens, type MinuteCounters } from "../../../shared/usage/minute-window";
import type { EnforcementEventDetail } from "../../../shared/quota/events";
import type { EnforcementState, OutboxEntry, TenantConfig, Transition } from "../../../shared/quota/model";
import type {
  DecisionSnapshot,
  EnforcementLogEntry,
  EnforcementPublisher,
  EvaluationSnapshot,
  Page,
  PendingOutboxIndex,
  PublishResult,
  QuotaStore,
} from "../../../shared/quota/ports";
import { ENFORCEMENT_DETAIL_TYPES } from "../../../shared/quota/events";

const clone = <T>(v: T): T => structuredClone(v);

/**
 * In-memory QuotaStore with the same once-only conditions as the DynamoDB adapter, and its
 * pending-outbox index (listed with each recorded entry, unlisted when the outbox empties).
 */
export class InMemoryQuotaStore implements QuotaStore, PendingOutboxIndex {
  readonly shards = 2;
  states = new Map<string, EnforcementState>();
  /** Keys (`tenant|period`) of states on the pending-outbox index. */
  indexed = new Set<string>();
  configs = new Map<string, TenantConfig>();
  months = new Map<string, UsageCounters>();
  /** Minute windows as the tenant-hour items keep them: requests and tokens only. */
  minutes = new Map<string, MinuteCounters>();
  log: EnforcementLogEntry[] = [];

  addUsage(tenantId: string, at: string, add: Partial<UsageCounters>): void {
    const monthKey = `${tenantId}|${at.slice(0, 7)}`;
    const c = this.months.get(monthKey) ?? zeroCounters();
    for (const [name, v] of Object.entries(add)) c[name as keyof UsageCounters] += v as number;
    this.months.set(monthKey, c);
    const minuteKey = `${tenantId}|${at.slice(0, 16)}`;
    const m = this.minutes.get(minuteKey) ?? { requests: 0, tokens: 0 };
    m.requests += add.requests ?? 0;
    m.tokens += limitTokens(add);
    this.minutes.set(minuteKey, m);
  }

  async loadForEvaluation(q: { tenantId: string; month: string; prevMonth: string; minutes: string[] }): Promise<EvaluationSnapshot> {
    const minuteTotals: Record<string, MinuteCounters> = {};
    for (const m of q.minutes) {
      const c = this.minutes.get(`${q.tenantId}|${m}`);
      if (c) minuteTotals[m] = clone(c);
    }
    return {
      config: clone(this.configs.get(q.tenantId)),
      monthTotals: clone(this.months.get(`${q.tenantId}|${q.month}`)),
      minuteTotals,
      state: clone(this.states.get(`${q.tenantId}|${q.month}`)),
      prevState: clone(this.states.get(`${q.tenantId}|${q.prevMonth}`)),
    };
  }

  async loadForDecision(q: { tenantId: string; month: string; prevMonth: string }): Promise<DecisionSnapshot> {
    const { config, monthTotals, state, prevState } = await this.loadForEvaluation({ ...q, minutes: [] });
    return { config, monthTotals, state, prevState };
  }

  async apply(tenantId: string, t: Transition): Promise<"applied" | "conflict"> {
    const k = `${tenantId}|${t.period}`;
    const s = this.states.get(k) ?? { tenantId, period: t.period, crossed: {}, outbox: {} };
    const at = t.entry.detail.occurredAt;
    switch (t.kind) {
      case "cross":
        if (s.crossed[t.key]) return "conflict";
        s.crossed[t.key] = at;
        break;
      case "restrict":
        if (s.crossed[t.key] || s.restriction) return "conflict";
        s.crossed[t.key] = at;
        s.restriction = clone(t.restriction);
        break;
      case "release":
        if (s.restriction?.enforcementId !== t.restrictionId) return "conflict";
        delete s.restriction;
        break;
      case "rate-throttle":
        if (t.newWindow) {
          if (s.rate && !(s.rate.minute < t.minute)) return "conflict";
          s.rate = clone(t.rate);
        } else {
          if (!s.rate || s.rate.minute !== t.minute || s.rate.keys.includes(t.limit)) return "conflict";
          s.rate.keys.push(t.limit);
        }
        break;
      case "rate-release":
        if (!s.rate || s.rate.minute !== t.minute || !s.rate.active) return "conflict";
        s.rate.active = false;
        break;
    }
    s.outbox[t.entry.enforcementId] = clone(t.entry);
    this.states.set(k, s);
    this.indexed.add(k);
    return "applied";
  }

  async claim(tenantId: string, period: string, id: string, seen: string, lease: string): Promise<boolean> {
    const e = this.states.get(`${tenantId}|${period}`)?.outbox[id];
    if (!e || e.leaseUntil !== seen) return false;
    e.leaseUntil = lease;
    return true;
  }

  async release(tenantId: string, period: string, id: string, lease: string): Promise<void> {
    const e = this.states.get(`${tenantId}|${period}`)?.outbox[id];
    if (e && e.leaseUntil === lease) e.leaseUntil = new Date(0).toISOString();
  }

  async markPublished(tenantId: string, period: string, entry: OutboxEntry, publishedAt: string): Promise<void> {
    this.log.push({ day: entry.detail.occurredAt.slice(0, 10), detailType: ENFORCEMENT_DETAIL_TYPES[entry.detail.action], detail: clone(entry.detail), publishedAt });
    const k = `${tenantId}|${period}`;
    const s = this.states.get(k);
    if (!s) return;
    delete s.outbox[entry.enforcementId];
    if (Object.keys(s.outbox).length === 0) await this.unindex(tenantId, period);
  }

  /**
   * Shard by the tenant id's length (deterministic; tests choose ids to spread them). The cursor
   * is the last key returned, as DynamoDB's LastEvaluatedKey: items unlisted meanwhile shift nothing.
   */
  async listPending(shard: number, limit: number, cursor?: string): Promise<Page<EnforcementState>> {
    const keys = [...this.indexed].filter((k) => k.split("|")[0].length % this.shards === shard && (cursor === undefined || k > cursor)).sort();
    const page = keys.slice(0, limit);
    const items = page.flatMap((k) => (this.states.has(k) ? [clone(this.states.get(k)!)] : []));
    return { items, cursor: keys.length > limit ? page.at(-1) : undefined };
  }

  async unindex(tenantId: string, period: string): Promise<void> {
    const k = `${tenantId}|${period}`;
    if (Object.keys(this.states.get(k)?.outbox ?? {}).length === 0) this.indexed.delete(k);
  }

  async getConfig(tenantId: string) {
    return clone(this.configs.get(tenantId));
  }
  async putConfig(c: TenantConfig) {
    this.configs.set(c.tenantId, clone(c));
  }
  async listLog(day: string): Promise<Page<EnforcementLogEntry>> {
    return { items: this.log.filter((l) => l.day === day) };
  }
}

/**
 * Publisher that records what it accepted; `failNext` makes the next calls throw, `refuse`
 * makes the bus refuse those enforcementIds (a per-entry PutEvents failure).
 */
export class RecordingPublisher implements EnforcementPublisher {
  published: EnforcementEventDetail[] = [];
  failNext = 0;
  refuse = new Set<string>();
  /** Entries per publish call, in call order. */
  calls: number[] = [];
  async publish(details: readonly EnforcementEventDetail[]): Promise<PublishResult> {
    this.calls.push(details.length);
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error("bus unavailable");
    }
    const accepted = details.filter((d) => !this.refuse.has(d.enforcementId));
    this.published.push(...accepted.map(clone));
    return {
      published: accepted.map((d) => d.enforcementId),
      failed: details.filter((d) => this.refuse.has(d.enforcementId)).map((d) => ({ enforcementId: d.enforcementId, reason: "InternalFailure: refused" })),
    };
  }
  actions(): string[] {
    return this.published.map((d) => `${d.action}@${d.threshold}`);
  }
}
