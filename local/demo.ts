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
  },
  premium: {
    label: "Premium",
    prefix: "prem",
    tenantShare: 1 / 3,
    requestsPerTenant: 80,
    models: [{ provider: "bedrock", modelId: MODELS.sonnet, weight: 1 }],
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
  const dayStart = Date.parse(`${now.toISOString().slice(0, 10)}T00:00:00Z`);
  const runId = runIdOf(now);

  // requests of all tenants, interleaved as real traffic would be
  const queue = scenario.tenants.flatMap((t) => Array.from({ length: t.requests }, () => t));
  shuffle(queue, random);
  const valid: DemoEvent[] = queue.map((tenant, i) => {
    const tier = scenario.tiers[tenant.tier];
    const model = pickWeighted(tier.models, random);
    // within the last 5 minutes, but today (the summary reads today's usage)
    const occurredAt = new Date(Math.max(dayStart, now.getTime() - Math.floor(random() * 300_000))).toISOString();
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
}

/** What the one allocation run after the demo's traffic did, and which of the demo's hours it could not cover yet. */
export interface DemoAllocation {
  /** The hours (yyyy-mm-ddTHH, UTC) the demo's SageMaker events fall in. */
  sagemakerHours: string[];
  /** Those of them still running when the job ran: they are allocated after they end. */
  openHours: string[];
  /** The job's result (`functions/scheduled/allocate.ts`), or why it could not run. */
  run?: AllocateResult;
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

  await applyQuotaPlan(stack, scenario);
  const enforcementBefore = stack.recentEvents({ source: ENFORCEMENT_SOURCE, limit: 10_000 }).length;

  const month = today(startedAt).slice(0, 7);
  // With --data, earlier runs' usage of today is already there: the exactness check uses the difference.
  const baseline = await readTenantUsage(stack, scenario.tenants, today(startedAt), today(startedAt));
  const before = { processed: processedMessages(stack), counted: await countedRequests(stack, month).catch(() => 0) };
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
    counted = (await countedRequests(stack, month).catch(() => before.counted)) - before.counted;
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
  const allocation = await allocateOnce(stack, events);

  const tenants = await readTenantUsage(stack, scenario.tenants, today(startedAt), today(new Date()));
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
  };
}

/**
 * Runs the hourly allocation job once, now, through the local stack (the same handler the
 * scheduler fires at :05). It allocates the previous hour and re-checks the lookback window, so
 * demo traffic of an hour that has ended gets its share of the endpoint's hour cost; traffic of
 * the running hour is left alone (allocating an unfinished hour would split it among whoever
 * came first), and the report says when it will be allocated.
 */
async function allocateOnce(stack: LocalStack, events: readonly DemoEvent[]): Promise<DemoAllocation> {
  const sagemakerHours = [...new Set(events.filter((e) => e.kind === "valid" && e.detail.provider === "sagemaker").map((e) => String(e.detail.occurredAt).slice(0, 13)))].sort();
  try {
    const res = await fetch(`${stack.url}/local/jobs/allocate`, { method: "POST" });
    const run = (await res.json()) as { ok?: boolean; time?: string; result?: DemoAllocation["run"]; error?: { name: string; message: string }; message?: string };
    const current = (run.time ?? new Date().toISOString()).slice(0, 13);
    const openHours = sagemakerHours.filter((h) => h >= current);
    if (!res.ok || !run.ok) return { sagemakerHours, openHours, error: run.error ? `${run.error.name}: ${run.error.message}` : `POST /local/jobs/allocate answered ${res.status}: ${run.message ?? ""}` };
    return { sagemakerHours, openHours, run: run.result };
  } catch (error) {
    return { sagemakerHours, openHours: sagemakerHours, error: error instanceof Error ? error.message : String(error) };
  }
}

async function applyQuotaPlan(stack: LocalStack, scenario: DemoScenario): Promise<void> {
  const perRequest = scenario.tokens.inputMean + scenario.tokens.outputMean;
  for (const plan of scenario.quotaPlan) {
    const tenant = scenario.tenants.find((t) => t.tenantId === plan.tenantId);
    if (!tenant) continue;
    const body: Record<string, unknown> = { tier: tenant.tier };
    if (plan.monthlyTokensOfExpected) body.monthlyTokens = Math.round(tenant.requests * perRequest * plan.monthlyTokensOfExpected);
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
  lines.push("", "Usage per tenant (read from GET /usage/{tenantId}):", fmt(header), widths.map((w) => "-".repeat(w)).join("  "));
  rows.forEach((r, i) => {
    if (i === rows.length - 1) lines.push(widths.map((w) => "-".repeat(w)).join("  "));
    lines.push(fmt(r));
  });
  const counted = result.countedThisRun;
  lines.push(...formatAllocation(result.allocation));
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

/** The fixed-cost lines under the table: what the allocation run did, and what waits for the hour to end. */
export function formatAllocation(a: DemoAllocation): string[] {
  const lines = ["", "Fixed cost (SageMaker endpoint-hours, shared by the allocation job functions/scheduled/allocate.handler, run once now):"];
  if (a.error || !a.run) {
    lines.push(`  the job failed: ${a.error ?? "no result"} (GET /local/jobs keeps the error)`);
    return lines;
  }
  lines.push(`  ${summarizeAllocation(a.run)}`);
  const done = a.sagemakerHours.filter((h) => !a.openHours.includes(h));
  if (done.length) lines.push(`  demo traffic of finished hour(s) ${done.join(", ")} is allocated: see 'fixed USD'`);
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

function processedMessages(stack: LocalStack): number {
  return stack.queues().reduce((a, q) => a + q.deleted, 0);
}

/** Requests counted this month over all tenants, from the billing route (one paginated read). */
async function countedRequests(stack: LocalStack, month: string): Promise<number> {
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
    const { totals } = (await res.json()) as { totals: Omit<TenantSummary, "tenantId" | "tier"> };
    out.push({
      tenantId: t.tenantId,
      tier: t.tier,
      requests: totals.requests,
      inputTokens: totals.inputTokens,
      outputTokens: totals.outputTokens,
      costUsd: totals.costUsd,
      allocatedCostUsd: totals.allocatedCostUsd ?? 0,
      unpricedRequests: totals.unpricedRequests,
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

