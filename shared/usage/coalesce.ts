import { periodsOf, type Periods } from "./periods";
import { originOf, type InvocationEventV1 } from "../events/invocation";
import {
  COUNTER_NAMES,
  addCounters,
  firstCounter,
  laterCounter,
  tenantDayTarget,
  zeroCounters,
  zeroSourceCounts,
  type AggregateTarget,
  type PricedEvent,
  type SourceCounts,
  type UsageCounters,
} from "./model";
import { limitTokens, type MinuteCounters } from "./minute-window";

/** One aggregate item's increment: the sum of every event of a chunk that lands on it. */
export interface AggregateDelta {
  target: AggregateTarget;
  counters: UsageCounters;
  /** Tenant-day items only: which path reported the calls (see `SourceCounts`). */
  sources?: SourceCounts;
  /**
   * Tenant-hour items only: the noisy-neighbour minute windows (by minute, yyyy-mm-ddThh:mm,
   * of event time) the events add to, written onto the same item (see minute-window.ts).
   */
  minutes?: Record<string, MinuteCounters>;
}

const periodsCache = new WeakMap<PricedEvent, Periods>();
const targetsCache = new WeakMap<PricedEvent, AggregateTarget[]>();

/** The event's periods (by event time), computed once per priced event. */
export function periodsOfEvent(e: PricedEvent): Periods {
  let p = periodsCache.get(e);
  if (!p) periodsCache.set(e, (p = periodsOf(e.event.occurredAt)));
  return p;
}

/** Every aggregate an event contributes to, by event time (computed once per priced event). */
export function targetsOf(e: PricedEvent): AggregateTarget[] {
  let targets = targetsCache.get(e);
  if (!targets) targetsCache.set(e, (targets = targetsFor(e)));
  return targets;
}

function targetsFor(e: PricedEvent): AggregateTarget[] {
  const { tenantId, modelId, endpointName, provider } = e.event;
  const p = periodsOfEvent(e);
  const targets: AggregateTarget[] = [
    { kind: "tenant", tenantId, granularity: "month", period: p.month },
    tenantDayTarget(tenantId, p.day),
    { kind: "tenant", tenantId, granularity: "hour", period: p.hour },
    { kind: "model", tenantId, granularity: "month", period: p.month, modelId },
    { kind: "model", tenantId, granularity: "day", period: p.day, modelId },
    // read by reconciliation (shared/reconciliation): per model and hour against AWS's own metrics
    { kind: "model", tenantId, granularity: "hour", period: p.hour, modelId },
  ];
  if (provider === "sagemaker") {
    targets.push({ kind: "endpoint", tenantId, endpointName: endpointName ?? modelId, hour: p.hour });
  }
  return targets;
}

/** Stable identity of an aggregate target (equal targets coalesce into one update). */
export function targetId(t: AggregateTarget): string {
  switch (t.kind) {
    case "tenant":
      return `t|${t.tenantId}|${t.granularity}|${t.period}`;
    case "model":
      return `m|${t.tenantId}|${t.granularity}|${t.period}|${t.modelId}`;
    case "endpoint":
      return `e|${t.endpointName}|${t.hour}|${t.tenantId}`;
  }
}

/**
 * Sums a set of events into one delta per aggregate item. A transaction may touch an item
 * only once, and one ADD per item per batch instead of one per event is what keeps a hot
 * tenant's items at a few writes per second.
 */
export function coalesce(events: readonly PricedEvent[]): AggregateDelta[] {
  return [...sum(events.map((event) => ({ event }))).values()];
}

/** One delta per aggregate item of the events (each but its `skip` items), by target id. */
function sum(items: readonly { event: PricedEvent; skip?: ReadonlySet<string> }[]): Map<string, AggregateDelta> {
  const byId = new Map<string, AggregateDelta>();
  for (const { event: e, skip } of items) {
    for (const target of targetsOf(e)) {
      const id = targetId(target);
      if (skip?.has(id)) continue;
      let delta = byId.get(id);
      if (!delta) {
        delta = { target, counters: zeroCounters() };
        byId.set(id, delta);
      }
      addCounters(delta.counters, e.counters);
      if (target.kind === "tenant" && target.granularity === "hour") {
        const m = ((delta.minutes ??= {})[periodsOfEvent(e).minute] ??= { requests: 0, tokens: 0 });
        m.requests += e.counters.requests;
        m.tokens += limitTokens(e.counters);
      }
    }
  }
  return byId;
}

/**
 * The deltas of a run: each event on each of its aggregate items except those in its `skip`
 * (items an earlier, dead holder's writes already reached), with which path reported it on
 * its tenant-day item (when that item is not skipped: it carries the count with the counters).
 */
export function coalesceCounting(items: readonly { event: PricedEvent; skip?: ReadonlySet<string> }[]): AggregateDelta[] {
  const byId = sum(items);
  for (const { event: e, skip } of items) {
    if (!e.source) continue;
    const id = targetId(tenantDayTarget(e.event.tenantId, periodsOfEvent(e).day));
    const d = byId.get(id);
    if (!d || skip?.has(id)) continue;
    addSources(d, e);
  }
  return [...byId.values()];
}

function addSources(d: AggregateDelta, e: PricedEvent): void {
  const s = (d.sources ??= zeroSourceCounts());
  s[firstCounter(originOf(e.source!))]++;
  if (e.crossSource && originOf(e.crossSource) !== originOf(e.source!)) s[laterCounter(originOf(e.crossSource))]++;
}

/** Adds one to a source counter of a tenant-day among `deltas` (a counter-free delta if the day has none). */
export function addSourceCount(deltas: AggregateDelta[], tenantId: string, day: string, counter: keyof SourceCounts): void {
  const target = tenantDayTarget(tenantId, day);
  const id = targetId(target);
  let d = deltas.find((x) => targetId(x.target) === id);
  if (!d) deltas.push((d = { target, counters: zeroCounters() }));
  (d.sources ??= zeroSourceCounts())[counter]++;
}

/**
 * Deltas that change already-counted events (an estimate replaced, a price added): coalesced,
 * without the minute windows (they only matter while their minute runs) and without items
 * whose counters do not change.
 */
export function correctionDeltas(events: readonly PricedEvent[]): AggregateDelta[] {
  return coalesce(events)
    .filter((d) => COUNTER_NAMES.some((c) => d.counters[c] !== 0))
    .map(({ minutes: _minutes, ...d }) => d);
}

/** The event fields its aggregate targets depend on, as a ledger entry recorded them. */
export function countedAt(e: Pick<InvocationEventV1, "occurredAt" | "provider" | "modelId" | "endpointName">) {
  return { occurredAt: e.occurredAt, provider: e.provider, modelId: e.modelId, endpointName: e.endpointName };
}
