import { DEMO_SHADOW_SHARE, publishSimulatedAwsMetrics } from "./simulated-aws-metrics";
import { EventBridgeClient, PutEventsCommand, type PutEventsRequestEntry } from "@aws-sdk/client-eventbridge";
import { INVOCATION_DETAIL_TYPE, INVOCATION_SOURCES } from "../shared/events/invocation";
import { ENFORCEMENT_SOURCE } from "../shared/quota/events";
import type { RecentEvent } from "./bus";
import { summarizeAllocation, type AllocateResult } from "./jobs";
import { parseSchedule } from "./schedule";
import { ALLOCATE_SCHEDULE } from "../shared/runtime/schedules";
import type { LocalStack } from "./stack";
import { mulberry32 } from "../shared/util/random";
import { EndpointCatalog, hourCapacityMs, hourCostNanoUsd } from "../shared/allocation/endpoints";
import { config } from "../shared/runtime/config";
import { PriceCatalog } from "../shared/pricing/catalog";

/**
 * The demo scenario of `npm start`, as data: tiers (which models serve them), the tenant
 * list with per-tenant request volumes, token means from the seed's cost example, the
 * duplicate rate and the invalid events. Other scenarios (e.g. one that pushes an Advanced
 * tenant over its quota) are new data passed to {@link runDemo}, not new code.
 */
export type Tier = "basic" | "advanced" | "premium";

export interface DemoModel {
  provider: "bedrock" | "sagemaker";
  modelId: string;
  /** Relative share of the tier's requests. */
  weight: number;
  endpointName?: string;
  variantName?: string;
  /** SageMaker multi-adapter endpoint: each tenant is served by its own LoRA adapter. */
  adapterPerTenant?: boolean;
}

export interface DemoTier {
  label: string;
  /** Tenant id prefix: `basic-01`, `adv-01`, `prem-01`. */
  prefix: string;
  /** Share of the tenants in this tier. */
  tenantShare: number;
  /** Mean requests per tenant of this tier (before the volume profile). */
  requestsPerTenant: number;
  models: DemoModel[];
  /** UTC hours [from, to) the tier's users work in: its traffic of the past days falls there. */
  busyHoursUtc: [number, number];
  /** Weight of an hour outside them, relative to a busy hour (0: the endpoint is idle at night). */
  offHoursWeight: number;
}

export interface DemoTenant {
  tenantId: string;
  tier: Tier;
  requests: number;
}

export interface DemoInvalidEvent {
  label: string;
  /** Fields replaced in (or, with `undefined`, removed from) an otherwise valid detail. */
  patch: Record<string, unknown>;
}

export interface DemoScenario {
  tiers: Record<Tier, DemoTier>;
  tenants: DemoTenant[];
  /** Seed's cost example: 307 input / 533 output tokens per request; `spread` is the +- share. */
  tokens: { inputMean: number; outputMean: number; spread: number };
  /** Seed's mean processing time (4.4 s): the basis of fixed-cost allocation. */
  latencyMeanMs: number;
  /** Share of sent events that re-send an earlier event (same eventId): at-least-once delivery. */
  duplicateRate: number;
  /**
   * Finished days of traffic before today (event time, UTC), so the allocation job has
   * finished endpoint-hours to split and the charts have a time series. The window may start in
   * the previous month (on the 1st and 2nd it must): it stays well inside MAX_EVENT_AGE_DAYS.
   */
  days: number;
  /** Share of each tenant's requests (at least 2) sent as live traffic, in the minutes before the run (current month, current hour). */
  liveShare: number;
  invalid: DemoInvalidEvent[];
  /** PutEvents calls in flight (10 entries each). */
  parallelCalls: number;
  seed: number;
  /**
   * Tenant configs set through `PUT /tenants/{id}/config` before sending. Every tenant gets
   * its tier; a few get quotas tight enough for this demo's volume to cross them, so the run
   * shows a warning, a downgrade and a throttle. Multiples of the tenant's expected tokens.
   */
  quotaPlan: { tenantId: string; monthlyTokensOfExpected?: number }[];
}

export const MODELS = {
  sonnet: "anthropic.claude-3-5-sonnet-20240620-v1:0",
  haiku: "anthropic.claude-3-haiku-20240307-v1:0",
  loraEndpoint: "llama31-70b-lora",
} as const;

export const DEFAULT_TIERS: Record<Tier, DemoTier> = {
  basic: {
    label: "Basic",
    prefix: "basic",
    tenantShare: 1 / 3,
    requestsPerTenant: 20,
    // line 1: self-hosted Llama 3.1 70B with a LoRA adapter per tenant (fixed cost)
    models: [
      { provider: "sagemaker", modelId: MODELS.loraEndpoint, endpointName: MODELS.loraEndpoint, variantName: "AllTraffic", adapterPerTenant: true, weight: 1 },
    ],
    busyHoursUtc: [8, 18],
    offHoursWeight: 0,
  },
  advanced: {
    label: "Advanced",
    prefix: "adv",
    tenantShare: 1 / 3,
    requestsPerTenant: 50,
    // line 4, with some calls already on the mid-performance line 3
    models: [
      { provider: "bedrock", modelId: MODELS.sonnet, weight: 9 },
      { provider: "bedrock", modelId: MODELS.haiku, weight: 1 },
    ],
    busyHoursUtc: [7, 20],
    offHoursWeight: 0.1,
  },
  premium: {
    label: "Premium",
    prefix: "prem",
    tenantShare: 1 / 3,
    requestsPerTenant: 80,
    models: [{ provider: "bedrock", modelId: MODELS.sonnet, weight: 1 }],
    busyHoursUtc: [6, 22],
    offHoursWeight: 0.2,
  },
};

/** Per-tenant volume multipliers, cycled through the tenants of a tier: some heavy, some light. */
export const VOLUME_PROFILE = [1.6, 1.0, 0.6, 1.3, 0.4, 1.1, 0.9, 1.2, 0.8, 1.1];

export const DEFAULT_INVALID: DemoInvalidEvent[] = [
  { label: "tenant id with the key delimiter", patch: { tenantId: "a#b" } },
  { label: "negative token count", patch: { outputTokens: -533 } },
  { label: "token count as a string", patch: { inputTokens: "307" } },
  { label: "unknown provider", patch: { provider: "openai" } },
  { label: "missing modelId", patch: { modelId: undefined } },
  { label: "older than the dedupe window", patch: { occurredAt: "AGE:40d" } },
];

/** N tenants spread over the tiers by `tenantShare`, with volumes from the tier mean and the profile. */
export function defaultTenants(count: number, tiers: Record<Tier, DemoTier> = DEFAULT_TIERS): DemoTenant[] {
  const names = Object.keys(tiers) as Tier[];
  const shares = names.map((t) => tiers[t].tenantShare);
  const total = shares.reduce((a, b) => a + b, 0);
  // largest-remainder split, so the counts add up to `count`
  const exact = shares.map((s) => (s / total) * count);
  const counts = exact.map(Math.floor);
  const order = exact.map((e, i) => [e - Math.floor(e), i] as const).sort((a, b) => b[0] - a[0]);
  for (let k = 0; k < count - counts.reduce((a, b) => a + b, 0); k++) counts[order[k][1]]++;
  return names.flatMap((tier, i) =>
    Array.from({ length: counts[i] }, (_, n) => ({
      tenantId: `${tiers[tier].prefix}-${String(n + 1).padStart(2, "0")}`,
      tier,
      requests: Math.max(1, Math.round(tiers[tier].requestsPerTenant * VOLUME_PROFILE[n % VOLUME_PROFILE.length])),
    })),
  );
}

/** The default scenario for `--tenants N` and, optionally, about `--events N` distinct requests. */
export function demoScenario(opts: { tenants?: number; events?: number } = {}): DemoScenario {
  let tenants = defaultTenants(opts.tenants ?? 30);
  if (opts.events !== undefined) {
    const sum = tenants.reduce((a, t) => a + t.requests, 0);
    tenants = tenants.map((t) => ({ ...t, requests: Math.max(1, Math.round((t.requests * opts.events!) / sum)) }));
  }
  return {
    tiers: DEFAULT_TIERS,
    tenants,
    tokens: { inputMean: 307, outputMean: 533, spread: 0.15 },
    latencyMeanMs: 4400,
    duplicateRate: 0.03,
    days: 5,
    liveShare: 0.15,
    invalid: DEFAULT_INVALID,
    parallelCalls: 4,
    seed: 20241022,
    quotaPlan: demoQuotaPlan(tenants),
  };
}

/**
 * basic-01: quota at 60% of its traffic -> warning, then throttled; basic-02 at 115% -> warning
 * only; adv-01 at 60% -> warning, then downgraded to the mid model; prem-01 at 60% -> warnings
 * only (premium is never throttled or downgraded by quota). Everyone else keeps tier defaults.
 */
export function demoQuotaPlan(tenants: readonly DemoTenant[]): DemoScenario["quotaPlan"] {
  const tight: Record<string, number> = { "basic-01": 0.6, "basic-02": 1.15, "adv-01": 0.6, "prem-01": 0.6 };
  return tenants.map((t) => ({ tenantId: t.tenantId, monthlyTokensOfExpected: tight[t.tenantId] }));
}

export interface DemoEvent {
  detail: Record<string, unknown>;
  kind: "valid" | "duplicate" | "invalid";
}

/** Builds the event stream (valid, duplicates interleaved, invalid ones spread through). */
export function buildDemoEvents(scenario: DemoScenario, now = new Date()): DemoEvent[] {
  const random = mulberry32(scenario.seed);
  const around = (mean: number) => Math.max(1, Math.round(mean * (1 + (random() * 2 - 1) * scenario.tokens.spread)));
  const runId = runIdOf(now);
  const window = demoWindow(scenario, now);
  const slots = hourSlots(window.start, now);

  // requests of all tenants, interleaved as real traffic would be
  const queue = scenario.tenants.flatMap((t) => Array.from({ length: t.requests }, () => t));
  shuffle(queue, random);
  // every tenant sends some live traffic (at least 2 requests): the current month's quotas see it
  const liveLeft = new Map(scenario.tenants.map((t) => [t.tenantId, Math.min(t.requests, Math.max(2, Math.round(t.requests * scenario.liveShare)))]));
  const valid: DemoEvent[] = queue.map((tenant, i) => {
    const tier = scenario.tiers[tenant.tier];
    const model = pickWeighted(tier.models, random);
    // live: within the last 5 minutes (but today); else an hour of the window the tier is busy in
    const live = (liveLeft.get(tenant.tenantId) ?? 0) > 0;
    if (live) liveLeft.set(tenant.tenantId, liveLeft.get(tenant.tenantId)! - 1);
    const at = live ? Math.max(window.todayStart, now.getTime() - Math.floor(random() * 300_000)) : pastTime(slots, tier, now, random);
    const occurredAt = new Date(at).toISOString();
    const detail: Record<string, unknown> = {
      eventId: `demo-${runId}-${i}`,
      tenantId: tenant.tenantId,
      occurredAt,
      provider: model.provider,
      modelId: model.modelId,
      inputTokens: around(scenario.tokens.inputMean),
      outputTokens: around(scenario.tokens.outputMean),
      latencyMs: around(scenario.latencyMeanMs),
      status: "success",
      tier: tenant.tier,
    };
    if (model.endpointName) detail.endpointName = model.endpointName;
    if (model.variantName) detail.variantName = model.variantName;
    if (model.adapterPerTenant) detail.adapterId = `${tenant.tenantId}-lora`;
    return { detail, kind: "valid" };
  });

  const out: DemoEvent[] = [...valid];
  const duplicates = Math.round((valid.length * scenario.duplicateRate) / (1 - scenario.duplicateRate));
  for (let i = 0; i < duplicates && valid.length; i++) {
    const original = valid[Math.floor(random() * valid.length)];
    out.splice(Math.floor(random() * (out.length + 1)), 0, { detail: { ...original.detail }, kind: "duplicate" });
  }
  scenario.invalid.forEach((bad, k) => {
    const detail: Record<string, unknown> = { ...valid[k % Math.max(1, valid.length)]?.detail, eventId: `demo-${runId}-invalid-${k}` };
    for (const [field, value] of Object.entries(bad.patch)) {
      if (value === undefined) delete detail[field];
      else if (typeof value === "string" && value.startsWith("AGE:")) detail[field] = new Date(now.getTime() - parseInt(value.slice(4), 10) * 86_400_000).toISOString();
      else detail[field] = value;
    }
    out.splice(Math.floor(((k + 1) * out.length) / (scenario.invalid.length + 1)), 0, { detail, kind: "invalid" });
  });
  return out;
}

/** The demo's traffic window: `days` finished days before today, and today up to now (UTC). */
export function demoWindow(scenario: Pick<DemoScenario, "days">, now: Date): { start: number; todayStart: number; from: string; to: string } {
  const todayStart = Date.parse(`${now.toISOString().slice(0, 10)}T00:00:00Z`);
  const start = todayStart - scenario.days * 86_400_000;
  return { start, todayStart, from: new Date(start).toISOString().slice(0, 10), to: now.toISOString().slice(0, 10) };
}

/** Start times (ms) of the hours from `start` to the one `now` falls in. */
function hourSlots(start: number, now: Date): number[] {
  const out: number[] = [];
  for (let h = start; h <= now.getTime(); h += 3_600_000) out.push(h);
  return out;
}

/** A time in one of the window's hours, drawn by the tier's hour weights (the running hour weighs what has passed of it). */
function pastTime(slots: readonly number[], tier: DemoTier, now: Date, random: () => number): number {
  const weightOf = (h: number) => {
    const hour = new Date(h).getUTCHours();
    const busy = hour >= tier.busyHoursUtc[0] && hour < tier.busyHoursUtc[1];
    const elapsed = Math.min(1, (now.getTime() - h) / 3_600_000);
    return (busy ? 1 : tier.offHoursWeight) * elapsed;
  };
  const weights = slots.map(weightOf);
  const total = weights.reduce((a, b) => a + b, 0);
  // a window with no busy hour for this tier (only possible with days = 0 at night): send it live
  if (total === 0) return now.getTime() - Math.floor(random() * 300_000);
  let x = random() * total;
  for (let i = 0; i < slots.length; i++) {
    x -= weights[i];
    if (x < 0) return Math.min(now.getTime(), slots[i] + Math.floor(random() * 3_600_000));
  }
  return Math.min(now.getTime(), slots[slots.length - 1]);
}

export interface TenantSummary {
  tenantId: string;
  tier: Tier;
  /** Current decision from GET /tenants/{id}/decision. */
  decision?: string;
  requests: number;
  inputTokens: number;
  outputTokens: number;
  costUsd: number;
  /** Fixed endpoint cost allocated so far (by the allocation job, per finished endpoint-hour). */
  allocatedCostUsd: number;
  unpricedRequests: number;
  /** The same, per model (Bedrock model id, or the SageMaker endpoint). */
  models: { modelId: string; requests: number; inputTokens: number; outputTokens: number; costUsd: number }[];
}

/** What the one allocation run after the demo's traffic did, and which of the demo's hours it could not cover yet. */
export interface DemoAllocation {
  /** The hours (yyyy-mm-ddTHH, UTC) the demo's SageMaker events fall in. */
  sagemakerHours: string[];
  /** Those of them still running when the job ran: they are allocated after they end. */
  openHours: string[];
  /** The last run's result (`functions/scheduled/allocate.ts`), or why a run failed. */
  run?: AllocateResult;
  /** Runs made (one per lookback window, oldest first, to cover the demo's days). */
  runs?: number;
  /** The last run's event time. */
  time?: string;
  error?: string;
}

export interface DemoResult {
  sent: number;
  distinctValid: number;
  duplicatesSent: number;
  invalidSent: number;
  rejectedByBus: number;
  seconds: number;
  /** Requests the usage API gained during this run (equals distinctValid when exactly once). */
  countedThisRun: number;
  tenants: TenantSummary[];
  quarantine: { reason: string; count: number; messages: string[] }[];
  /** Enforcement events the quota loop published during the run (from the local bus). */
  enforcement: { detailType: string; tenantId: string; summary: string }[];
  allocation: DemoAllocation;
  /** Days (UTC) the demo's traffic falls in; the per-tenant figures cover them. */
  window: { from: string; to: string };
  fixedCost: FixedCostSummary[];
}

/** One fixed-cost endpoint over the demo window's finished hours. */
export interface FixedCostSummary {
  endpointName: string;
  tier: string;
  hourCostUsd: number;
  /** Finished hours of the window (up to the hour the last allocation run covered). */
  hours: number;
  /** Of them, hours some tenant used: their whole cost is split among those tenants. */
  usedHours: number;
  /** Cost of the finished hours nobody used: idle, charged to no tenant. */
  idleHoursCostUsd: number;
  /** Inference time / capacity (instances x 3600 s x concurrency) over the used hours. */
  usedHoursUtilization: number;
  /** What the tenants' aggregates received (GET /usage totals.allocatedCostUsd). */
  allocatedUsd: number;
  tenants: number;
}

export interface DemoIo {
  /** Progress output (the `\r` line); e.g. process.stdout.write. */
  write(text: string): void;
}

/**
 * Sends the scenario through the local stack's PutEvents endpoint with the real AWS SDK
 * client, waits for the pipeline to drain, then reads the results back over HTTP from the
 * usage API (the same handlers billing jobs call), not from memory.
 */
export async function runDemo(stack: LocalStack, scenario: DemoScenario, io: DemoIo): Promise<DemoResult> {
  const startedAt = new Date();
  const events = buildDemoEvents(scenario, startedAt);
  const runId = runIdOf(startedAt);
  const client = new EventBridgeClient({
    endpoint: stack.url,
    region: stack.region,
    credentials: { accessKeyId: "local", secretAccessKey: "local" },
  });
  const calls: { entries: PutEventsRequestEntry[] }[] = [];
  for (let i = 0; i < events.length; i += 10) {
    calls.push({
      entries: events.slice(i, i + 10).map((e) => ({
        Source: e.detail.provider === "sagemaker" ? INVOCATION_SOURCES.sagemaker : INVOCATION_SOURCES.bedrock,
        DetailType: INVOCATION_DETAIL_TYPE,
        Detail: JSON.stringify(e.detail),
        EventBusName: stack.busName,
      })),
    });
  }

  const window = demoWindow(scenario, startedAt);
  const months = [...new Set([window.from.slice(0, 7), window.to.slice(0, 7)])];
  await applyQuotaPlan(stack, scenario, events, window.to.slice(0, 7));
  const enforcementBefore = stack.recentEvents({ source: ENFORCEMENT_SOURCE, limit: 10_000 }).length;

  // With --data, earlier runs' usage of the window is already there: the exactness check uses the difference.
  const baseline = await readTenantUsage(stack, scenario.tenants, window.from, window.to);
  const before = { processed: processedMessages(stack), counted: await countedRequests(stack, months).catch(() => 0) };
  let sent = 0;
  let rejectedByBus = 0;
  let quarantined = 0;
  let counted = 0;
  const t0 = Date.now();
  let duplicates = 0;
  // counted and quarantined come from the API as chunks commit; acknowledged messages only
  // when a whole batch completes. Their difference (the duplicates the ledger dropped) is
  // only meaningful when no batch is in flight, so it is refreshed at those points only.
  const progress = () => {
    const ingested = counted + quarantined + duplicates;
    const secs = Math.max(0.001, (Date.now() - t0) / 1000);
    io.write(
      `\r  sent ${sent}/${events.length}  ingested ${ingested}  counted ${counted}  duplicates ${duplicates}` +
        `  quarantined ${quarantined}  ${Math.round(ingested / secs)} events/s   `,
    );
  };
  let polling = true;
  const poll = async () => {
    const idle = () => stack.queues().every((q) => q.inFlight === 0);
    const processed = processedMessages(stack) - before.processed;
    const idleBefore = idle();
    quarantined = (await readQuarantine(stack, today(startedAt), runId).catch(() => [])).length;
    counted = (await countedRequests(stack, months).catch(() => before.counted)) - before.counted;
    if (idleBefore && idle() && processed === processedMessages(stack) - before.processed) {
      duplicates = Math.max(0, processed - counted - quarantined);
    }
  };
  const poller = (async () => {
    while (polling) {
      await poll();
      progress();
      await sleep(500);
    }
  })();

  let next = 0;
  await Promise.all(
    Array.from({ length: scenario.parallelCalls }, async () => {
      while (next < calls.length) {
        const call = calls[next++];
        const out = await client.send(new PutEventsCommand({ Entries: call.entries }));
        rejectedByBus += out.FailedEntryCount ?? 0;
        sent += call.entries.length;
      }
    }),
  );
  client.destroy();
  await stack.drain();
  publishSimulatedAwsMetrics(stack.cloudwatch, events.map((e) => e.detail), { shadowShare: DEMO_SHADOW_SHARE }); // what AWS/Bedrock would show, 2% shadow usage (issue 15)
  polling = false;
  await poller;
  await poll();
  const quarantine = await readQuarantine(stack, today(startedAt), runId);
  progress();
  io.write("\n");
  const allocation = await allocateWindow(stack, events, window.start, new Date());

  const tenants = await readTenantUsage(stack, scenario.tenants, window.from, today(new Date()));
  for (const t of tenants) t.decision = await readDecision(stack, t.tenantId);
  const enforcement = stack
    .recentEvents({ source: ENFORCEMENT_SOURCE, limit: 10_000 })
    .slice(enforcementBefore)
    .map((e) => describeEnforcement(e));
  const byReason = new Map<string, string[]>();
  for (const q of quarantine) byReason.set(q.reason, [...(byReason.get(q.reason) ?? []), q.message]);

  return {
    sent: events.length,
    distinctValid: events.filter((e) => e.kind === "valid").length,
    duplicatesSent: events.filter((e) => e.kind === "duplicate").length,
    invalidSent: events.filter((e) => e.kind === "invalid").length,
    rejectedByBus,
    seconds: (Date.now() - t0) / 1000,
    tenants,
    countedThisRun: tenants.reduce((a, t) => a + t.requests, 0) - baseline.reduce((a, t) => a + t.requests, 0),
    quarantine: [...byReason.entries()].map(([reason, messages]) => ({ reason, count: messages.length, messages })),
    enforcement,
    allocation,
    window: { from: window.from, to: today(new Date()) },
    fixedCost: fixedCostOf(events, window.start, allocation.time ?? new Date().toISOString(), tenants, scenario),
  };
}

/**
 * Runs the hourly allocation job (the same handler the scheduler fires at :05) through the
 * local stack as the scheduler would have over the demo's days: once per lookback window
 * (`ALLOCATION_LOOKBACK_HOURS`, 24 by default), oldest first, the last one now. Each run splits
 * the finished endpoint-hours of its window; traffic of the running hour is left alone
 * (allocating an unfinished hour would split it among whoever came first), and the report
 * says when it will be allocated.
 */
async function allocateWindow(stack: LocalStack, events: readonly DemoEvent[], windowStart: number, now: Date): Promise<DemoAllocation> {
  const sagemakerHours = [...new Set(events.filter((e) => e.kind === "valid" && e.detail.provider === "sagemaker").map((e) => String(e.detail.occurredAt).slice(0, 13)))].sort();
  const stepMs = config().ALLOCATION_LOOKBACK_HOURS * 3_600_000;
  const times: string[] = [];
  for (let t = windowStart + stepMs + 5 * 60_000; t < now.getTime(); t += stepMs) times.push(new Date(t).toISOString());
  times.push(now.toISOString());
  let runs = 0;
  let last: DemoAllocation["run"];
  let time = now.toISOString();
  for (const at of times) {
    try {
      const res = await fetch(`${stack.url}/local/jobs/allocate?time=${encodeURIComponent(at)}`, { method: "POST" });
      const run = (await res.json()) as { ok?: boolean; time?: string; result?: DemoAllocation["run"]; error?: { name: string; message: string }; message?: string };
      if (!res.ok || !run.ok) {
        const error = run.error ? `${run.error.name}: ${run.error.message}` : `POST /local/jobs/allocate answered ${res.status}: ${run.message ?? ""}`;
        return { sagemakerHours, openHours: sagemakerHours.filter((h) => h >= at.slice(0, 13)), runs, error };
      }
      runs++;
      last = run.result;
      time = run.time ?? at;
    } catch (error) {
      return { sagemakerHours, openHours: sagemakerHours.filter((h) => h >= at.slice(0, 13)), runs, error: error instanceof Error ? error.message : String(error) };
    }
  }
  return { sagemakerHours, openHours: sagemakerHours.filter((h) => h >= time.slice(0, 13)), run: last, runs, time };
}

/**
 * The fixed-cost endpoints over the window's finished hours: cost, hours used and idle, and the
 * utilisation of the used hours, from the demo's own events and the endpoint catalog; what the
 * tenants were charged is read back from the usage API.
 */
function fixedCostOf(events: readonly DemoEvent[], windowStart: number, lastRunTime: string, tenants: readonly TenantSummary[], scenario: DemoScenario): FixedCostSummary[] {
  const finishedBefore = Date.parse(`${lastRunTime.slice(0, 13)}:00:00Z`);
  const hours = Math.max(0, Math.round((finishedBefore - windowStart) / 3_600_000));
  const catalog = EndpointCatalog.fromJson(config().ENDPOINT_CATALOG_JSON);
  return catalog.list().map((endpoint) => {
    const used = events.filter((e) => e.kind === "valid" && e.detail.endpointName === endpoint.endpointName && Date.parse(String(e.detail.occurredAt)) < finishedBefore);
    const usedHours = new Set(used.map((e) => String(e.detail.occurredAt).slice(0, 13))).size;
    const inferenceMs = used.reduce((a, e) => a + Number(e.detail.latencyMs ?? 0), 0);
    const hourCostUsd = hourCostNanoUsd(endpoint) / 1e9;
    const onIt = new Set(used.map((e) => String(e.detail.tenantId)));
    const servedTiers = Object.entries(scenario.tiers).filter(([, t]) => t.models.some((m) => m.endpointName === endpoint.endpointName)).map(([k]) => k);
    return {
      endpointName: endpoint.endpointName,
      tier: endpoint.tier,
      hourCostUsd,
      hours,
      usedHours,
      idleHoursCostUsd: (hours - usedHours) * hourCostUsd,
      usedHoursUtilization: usedHours ? inferenceMs / (usedHours * hourCapacityMs(endpoint)) : 0,
      allocatedUsd: tenants.filter((t) => servedTiers.includes(t.tier) && onIt.has(t.tenantId)).reduce((a, t) => a + t.allocatedCostUsd, 0),
      tenants: onIt.size,
    };
  });
}

/**
 * Tiers and tight quotas. Quotas are monthly and only the current month is enforced, so a
 * tight quota is a multiple of the tokens the tenant sends in the current month (the window
 * may start in the previous one).
 */
async function applyQuotaPlan(stack: LocalStack, scenario: DemoScenario, events: readonly DemoEvent[], month: string): Promise<void> {
  const monthTokens = new Map<string, number>();
  for (const e of events) {
    if (e.kind !== "valid" || !String(e.detail.occurredAt).startsWith(month)) continue;
    const id = String(e.detail.tenantId);
    monthTokens.set(id, (monthTokens.get(id) ?? 0) + Number(e.detail.inputTokens) + Number(e.detail.outputTokens));
  }
  for (const plan of scenario.quotaPlan) {
    const tenant = scenario.tenants.find((t) => t.tenantId === plan.tenantId);
    if (!tenant) continue;
    const body: Record<string, unknown> = { tier: tenant.tier };
    if (plan.monthlyTokensOfExpected) body.monthlyTokens = Math.max(1, Math.round((monthTokens.get(tenant.tenantId) ?? 0) * plan.monthlyTokensOfExpected));
    const res = await fetch(`${stack.url}/tenants/${encodeURIComponent(tenant.tenantId)}/config`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`PUT /tenants/${tenant.tenantId}/config answered ${res.status}: ${await res.text()}`);
  }
}

async function readDecision(stack: LocalStack, tenantId: string): Promise<string> {
  const res = await fetch(`${stack.url}/tenants/${encodeURIComponent(tenantId)}/decision`);
  if (!res.ok) return `(${res.status})`;
  const d = (await res.json()) as { decision: string; targetModelId?: string; retryAfterSeconds?: number };
  if (d.decision === "downgrade") return `downgrade -> ${d.targetModelId ?? "?"}`;
  if (d.decision === "throttle") return `throttle (retry in ${d.retryAfterSeconds ?? "?"} s)`;
  return d.decision;
}

function describeEnforcement(e: RecentEvent) {
  const detailType = e.envelope["detail-type"];
  const d = (e.envelope.detail ?? {}) as { tenantId?: string; usage?: { tokens?: number }; quota?: { monthlyTokens?: number }; threshold?: unknown; targetModelId?: string; period?: string };
  const usage = d.usage?.tokens !== undefined ? `usage ${d.usage.tokens.toLocaleString("en-US")}` : "";
  const quota = d.quota?.monthlyTokens !== undefined ? ` / quota ${d.quota.monthlyTokens.toLocaleString("en-US")} tokens` : "";
  const instead = d.targetModelId ? ` -> ${d.targetModelId}` : "";
  return { detailType, tenantId: String(d.tenantId ?? "?"), summary: `threshold ${JSON.stringify(d.threshold)} period ${d.period ?? "?"} ${usage}${quota}${instead}` };
}

/** The end-of-demo report: per-tenant table, totals, quarantine. */
export function formatDemoResult(result: DemoResult, scenario: DemoScenario): string {
  const lines: string[] = [];
  const num = (n: number) => n.toLocaleString("en-US");
  const usd = (n: number) => `$${n.toFixed(4)}`;
  const header = ["tenant", "tier", "requests", "input tok", "output tok", "API USD", "fixed USD", "decision"];
  const onFixedCost = (t: TenantSummary) => scenario.tiers[t.tier].models.some((m) => m.endpointName);
  const rows = result.tenants.map((t) => [
    t.tenantId,
    scenario.tiers[t.tier].label,
    num(t.requests),
    num(t.inputTokens),
    num(t.outputTokens),
    usd(t.costUsd),
    t.allocatedCostUsd > 0 ? usd(t.allocatedCostUsd) : onFixedCost(t) ? "pending" : "-",
    t.decision ?? "",
  ]);
  const sum = (k: "requests" | "inputTokens" | "outputTokens" | "costUsd" | "allocatedCostUsd") => result.tenants.reduce((a, t) => a + t[k], 0);
  rows.push(["TOTAL", "", num(sum("requests")), num(sum("inputTokens")), num(sum("outputTokens")), usd(sum("costUsd")), usd(sum("allocatedCostUsd")), ""]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const fmt = (r: string[]) => r.map((c, i) => (i < 2 || i === 7 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ");
  lines.push("", `Usage per tenant, ${result.window.from} .. ${result.window.to} UTC (read from GET /usage/{tenantId}):`, fmt(header), widths.map((w) => "-".repeat(w)).join("  "));
  rows.forEach((r, i) => {
    if (i === rows.length - 1) lines.push(widths.map((w) => "-".repeat(w)).join("  "));
    lines.push(fmt(r));
  });
  const counted = result.countedThisRun;
  lines.push(...formatAllocation(result.allocation), ...formatFixedCost(result.fixedCost), ...formatLines(result, scenario));
  lines.push(
    "",
    `Sent ${num(result.sent)} events in ${result.seconds.toFixed(1)} s: ${num(result.distinctValid)} distinct valid, ` +
      `${num(result.duplicatesSent)} duplicates (same eventId re-sent), ${num(result.invalidSent)} invalid; ${result.rejectedByBus} refused by the bus.`,
    `Counted ${num(counted)} requests: ${counted === result.distinctValid ? "each distinct valid event exactly once" : `MISMATCH, expected ${num(result.distinctValid)}`}.`,
    "",
    `Quarantined ${result.quarantine.reduce((a, q) => a + q.count, 0)} (GET /quarantine):`,
    ...result.quarantine.flatMap((q) => [`  ${q.reason} x${q.count}`, ...q.messages.map((m) => `    - ${m}`)]),
    "",
    `Enforcement events published (${result.enforcement.length}, GET /enforcement/events, /local/events?source=genai.metering.quota):`,
    ...result.enforcement.map((e) => `  ${e.detailType.padEnd(20)} ${e.tenantId.padEnd(9)} ${e.summary}`),
  );
  return lines.join("\n");
}

/** The fixed-cost lines under the table: what the allocation runs did, and what waits for the hour to end. */
export function formatAllocation(a: DemoAllocation): string[] {
  const runs = a.runs && a.runs > 1 ? `run ${a.runs} times, one per lookback window of the demo's days, the last now` : "run once now";
  const lines = ["", `Fixed cost (SageMaker endpoint-hours, shared by the allocation job functions/scheduled/allocate.handler, ${runs}):`];
  if (a.error || !a.run) {
    lines.push(`  the job failed: ${a.error ?? "no result"} (GET /local/jobs keeps the error)`);
    return lines;
  }
  lines.push(`  last run: ${summarizeAllocation(a.run)}`);
  const done = a.sagemakerHours.filter((h) => !a.openHours.includes(h));
  if (done.length) lines.push(`  demo traffic of ${done.length} finished hour(s), ${done[0]} .. ${done[done.length - 1]}, is allocated: see 'fixed USD'`);
  if (a.openHours.length) {
    const lastHourEnds = new Date(Date.parse(`${a.openHours[a.openHours.length - 1]}:00:00Z`) + 3_600_000);
    const next = parseSchedule(ALLOCATE_SCHEDULE).next(lastHourEnds).toISOString().slice(11, 16);
    lines.push(
      `  demo traffic of hour ${a.openHours.join(", ")} (UTC) is 'pending': that hour is still running, and an hour is split only after it ends;`,
      `  the scheduler allocates it at ${next} UTC while this stack runs (or run it then: POST /local/jobs/allocate)`,
    );
  }
  return lines;
}

/** Each fixed-cost endpoint over the window: what its finished hours cost, who paid, what stood idle. */
export function formatFixedCost(endpoints: readonly FixedCostSummary[]): string[] {
  const usd = (n: number) => `$${n.toFixed(2)}`;
  return endpoints.map((e) => {
    const cost = e.hours * e.hourCostUsd;
    const used = e.usedHours
      ? `${e.usedHours} used (${usd(e.usedHours * e.hourCostUsd)}, split among ${e.tenants} tenant(s), who were charged ${usd(e.allocatedUsd)}; ${(e.usedHoursUtilization * 100).toFixed(2)}% of their capacity busy)`
      : "none used";
    return `  ${e.endpointName} (${e.tier}, ${usd(e.hourCostUsd)}/h): ${e.hours} finished hours cost ${usd(cost)}: ${used}; ${e.hours - e.usedHours} idle (${usd(e.idleHoursCostUsd)}, charged to nobody)`;
  });
}

/**
 * The seed's three lines side by side, per tenant: Advanced/Premium on Bedrock Sonnet (line 4),
 * the mid model an Advanced tenant is downgraded to (Haiku, line 3), and Basic on the shared
 * LoRA endpoint (line 1, fixed cost split by the allocation job).
 */
export function formatLines(result: DemoResult, scenario: DemoScenario): string[] {
  const sonnet = new PriceCatalog();
  const priceOn = (modelId: string, m: { inputTokens: number; outputTokens: number }) =>
    sonnet.price({ provider: "bedrock", modelId, occurredAt: `${result.window.to}T00:00:00Z`, inputTokens: m.inputTokens, outputTokens: m.outputTokens }, "us-west-2").costNanoUsd / 1e9;
  const onModel = (modelId: string) => result.tenants.flatMap((t) => t.models.filter((m) => m.modelId === modelId).map((m) => ({ t, m })));
  const rows: string[][] = [];
  const add = (label: string, list: { t: TenantSummary; m: TenantSummary["models"][number] }[], cost: (x: { t: TenantSummary; m: TenantSummary["models"][number] }) => number) => {
    const tenants = new Set(list.map((x) => x.t.tenantId)).size;
    const requests = list.reduce((a, x) => a + x.m.requests, 0);
    const total = list.reduce((a, x) => a + cost(x), 0);
    rows.push([label, String(tenants), requests.toLocaleString("en-US"), `$${total.toFixed(4)}`, tenants ? `$${(total / tenants).toFixed(4)}` : "-", requests ? `$${(total / requests).toFixed(6)}` : "-"]);
    return { requests, total };
  };
  const s = add("4  Bedrock Claude 3.5 Sonnet (pay per token)", onModel(MODELS.sonnet), (x) => x.m.costUsd);
  add("3  Bedrock Claude 3 Haiku (the downgrade target)", onModel(MODELS.haiku), (x) => x.m.costUsd);
  add("1  SageMaker llama31-70b-lora (fixed, shared)", onModel(MODELS.loraEndpoint), (x) => x.t.allocatedCostUsd);
  const onHaiku = onModel(MODELS.sonnet).reduce((a, x) => a + priceOn(MODELS.haiku, x.m), 0);
  const header = ["line", "tenants", "requests", "cost USD", "per tenant", "per request"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const fmt = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ");
  const downgraded = result.enforcement.filter((e) => e.detailType === "Tenant Downgraded").map((e) => e.tenantId);
  const lora = result.fixedCost.find((e) => e.endpointName === MODELS.loraEndpoint);
  const out = [
    "",
    `The seed's three lines, per tenant (${result.window.from} .. ${result.window.to}; ${scenario.tokens.inputMean}/${scenario.tokens.outputMean} tokens a request):`,
    `  ${fmt(header)}`,
    `  ${widths.map((w) => "-".repeat(w)).join("  ")}`,
    ...rows.map((r) => `  ${fmt(r)}`),
  ];
  if (s.total > 0) {
    out.push(
      `  the same Sonnet traffic on Haiku would cost $${onHaiku.toFixed(4)} (${(s.total / Math.max(onHaiku, 1e-12)).toFixed(1)}x less): what a downgrade saves` +
        (downgraded.length ? `; downgraded in this run: ${[...new Set(downgraded)].join(", ")}` : ""),
    );
  }
  if (lora?.usedHours) {
    out.push(
      `  the LoRA endpoint costs per hour, not per token: at this demo's volume its used hours were ${(lora.usedHoursUtilization * 100).toFixed(2)}% busy; at the seed's`,
      `  volume (30M requests a year, 4.18 of 5 sequences busy) its $${Math.round((lora.hourCostUsd * 8760) / 1000)}K a year is $${((lora.hourCostUsd * 8760) / 30e6).toFixed(5)} a request.`,
    );
  }
  return out;
}

function processedMessages(stack: LocalStack): number {
  return stack.queues().reduce((a, q) => a + q.deleted, 0);
}

/** Requests counted in these months over all tenants, from the billing route (paginated reads). */
async function countedRequests(stack: LocalStack, months: readonly string[]): Promise<number> {
  let total = 0;
  for (const month of months) total += await countedInMonth(stack, month);
  return total;
}

async function countedInMonth(stack: LocalStack, month: string): Promise<number> {
  let total = 0;
  let cursor: string | undefined;
  do {
    const res = await fetch(`${stack.url}/billing/${month}?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    if (!res.ok) throw new Error(`GET /billing/${month} answered ${res.status}`);
    const page = (await res.json()) as { tenants: { totals: { requests: number } }[]; cursor?: string };
    total += page.tenants.reduce((a, t) => a + t.totals.requests, 0);
    cursor = page.cursor;
  } while (cursor);
  return total;
}

async function readTenantUsage(stack: LocalStack, tenants: readonly DemoTenant[], from: string, to: string): Promise<TenantSummary[]> {
  const out: TenantSummary[] = [];
  for (const t of tenants) {
    const res = await fetch(`${stack.url}/usage/${encodeURIComponent(t.tenantId)}?from=${from}&to=${to}&granularity=day`);
    if (!res.ok) throw new Error(`GET /usage/${t.tenantId} answered ${res.status}: ${await res.text()}`);
    type Totals = Omit<TenantSummary, "tenantId" | "tier" | "models">;
    const { totals, models = [] } = (await res.json()) as { totals: Totals; models?: { modelId: string; totals: Totals }[] };
    out.push({
      tenantId: t.tenantId,
      tier: t.tier,
      requests: totals.requests,
      inputTokens: totals.inputTokens,
      outputTokens: totals.outputTokens,
      costUsd: totals.costUsd,
      allocatedCostUsd: totals.allocatedCostUsd ?? 0,
      unpricedRequests: totals.unpricedRequests,
      models: models.map((m) => ({ modelId: m.modelId, requests: m.totals.requests, inputTokens: m.totals.inputTokens, outputTokens: m.totals.outputTokens, costUsd: m.totals.costUsd })),
    });
  }
  return out;
}

/** Quarantined records of this run (by the run's eventId prefix), so persisted data from earlier runs does not count. */
async function readQuarantine(stack: LocalStack, day: string, runId: string): Promise<{ reason: string; message: string }[]> {
  const items: { reason: string; message: string; eventId?: string }[] = [];
  let cursor: string | undefined;
  do {
    const res = await fetch(`${stack.url}/quarantine?day=${day}&limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    if (!res.ok) throw new Error(`GET /quarantine answered ${res.status}`);
    const page = (await res.json()) as { items: { reason: string; message: string; eventId?: string }[]; cursor?: string };
    items.push(...page.items);
    cursor = page.cursor;
  } while (cursor);
  return items.filter((q) => q.eventId?.startsWith(`demo-${runId}-`));
}

const runIdOf = (d: Date) => d.getTime().toString(36);
const today = (d: Date) => d.toISOString().slice(0, 10);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function pickWeighted<T extends { weight: number }>(items: readonly T[], random: () => number): T {
  const total = items.reduce((a, i) => a + i.weight, 0);
  let x = random() * total;
  for (const item of items) {
    x -= item.weight;
    if (x < 0) return item;
  }
  return items[items.length - 1];
}

function shuffle<T>(list: T[], random: () => number): void {
  for (let i = list.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [list[i], list[j]] = [list[j], list[i]];
  }
}

