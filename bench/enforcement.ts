/**
 * Enforcement delay and overshoot on the local stack (DynamoDB Local in memory, the same
 * handlers Lambda runs, the ingest rule's own batch size and batching window).
 *
 * N tenants, each with a small monthly token quota (per-minute limits lifted, so only the
 * monthly quota acts), send invocation events at a fixed rate each through the real
 * EventBridge client (one PutEvents per call, as a wrapper flushing per call would). For
 * each tenant:
 * - delay = from the moment the PutEvents carrying the crossing event returned to the moment
 *   the `Tenant Throttled` / `Tenant Downgraded` event reached the local bus;
 * - overshoot = tokens the tenant sent past its quota until the decision endpoint, asked as soon
 *   as that event reached the bus, answered throttle/downgrade. This is a data plane that
 *   reacts at once (enforcement events applied with `applyEnforcementEvent`, or no decision
 *   cache); a decision cache of TTL T adds up to rate x T calls on top.
 *
 *   npx tsx bench/enforcement.ts --enforcement-only [--tenants 20] [--rates 5,20] [--quota-calls 30] [--runs 1]
 *       [--tier basic|advanced] [--batching-window-ms <ms>]
 */
import { EventBridgeClient, PutEventsCommand } from "@aws-sdk/client-eventbridge";
import os from "node:os";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { startLocalStack, type LocalStack } from "../local/stack";
import { INVOCATION_DETAIL_TYPE, INVOCATION_SCHEMA_VERSION, INVOCATION_SOURCES, type InvocationEventV1 } from "../shared/events/invocation";
import { ENFORCEMENT_DETAIL_TYPES } from "../shared/quota/events";
import { MODELS } from "../shared/quota/tiers";
import { percentile } from "./stats";

const IN = 307;
const OUT = 533;
const PER_CALL = IN + OUT;

export interface EnforcementBenchOptions {
  /** Tenants sending at once. Default 20. */
  tenants?: number;
  /** Requests per second per tenant. */
  ratePerTenant: number;
  /** Monthly quota in calls of 307 + 533 tokens (the quota is this x 840 tokens). Default 30. */
  quotaCalls?: number;
  /** basic -> Tenant Throttled, advanced -> Tenant Downgraded. Default basic. */
  tier?: "basic" | "advanced";
  /** Give up on a tenant this long after its crossing event. Default 20 s. */
  timeoutMs?: number;
  /** An already started stack (its `log` must be `hook.log`, see {@link enforcementLogHook}); default: one started and stopped here. */
  stack?: { stack: LocalStack; hook: EnforcementLogHook };
  /** Override the ingest rule's batching window (default: the rule's 1 s, as on AWS). */
  batchingWindowMs?: number;
  /** Prefix for tenant ids, so several measurements can share one stack. */
  tenantPrefix?: string;
  /**
   * Tenants start spread evenly over this many ms, so their crossings fall at different
   * points of the ingest batching window instead of all in one batch. Default 2,000.
   */
  spreadMs?: number;
}

export interface Distribution {
  n: number;
  median: number;
  p99: number;
  max: number;
}

export interface EnforcementBenchResult {
  tenants: number;
  ratePerTenant: number;
  /** Requests per second per tenant actually achieved up to the crossing (median over tenants). */
  achievedRate: number;
  quotaTokens: number;
  delayMs: Distribution;
  overshootTokens: Distribution;
  overshootCalls: Distribution;
  /** Tenants whose enforcement event never arrived within the timeout. */
  missing: number;
  /** Per-tenant values (for pooling several runs). */
  samples: { delayMs: number[]; overshootCalls: number[]; achievedRate: number[] };
  loadAverage: [number, number, number];
}

/** Receives the local stack's log lines; the `[enforcement]` ones are written as the bus receives the event. */
export interface EnforcementLogHook {
  log(line: string): void;
  waitFor(tenantId: string, detailType: string): Promise<number>;
}

export function enforcementLogHook(): EnforcementLogHook {
  const seen = new Map<string, number>();
  const waiters = new Map<string, (t: number) => void>();
  return {
    log(line) {
      if (!line.startsWith("[enforcement] ")) {
        if (process.env.BENCH_VERBOSE) console.log(line);
        return;
      }
      const at = performance.now();
      const m = /^\[enforcement\] (.+?) tenant=(\S+)/.exec(line);
      if (!m) return;
      const key = `${m[2]}|${m[1]}`;
      if (seen.has(key)) return;
      seen.set(key, at);
      waiters.get(key)?.(at);
    },
    waitFor(tenantId, detailType) {
      const key = `${tenantId}|${detailType}`;
      const at = seen.get(key);
      if (at !== undefined) return Promise.resolve(at);
      return new Promise((resolve) => waiters.set(key, resolve));
    },
  };
}

export async function measureEnforcementDelay(opts: EnforcementBenchOptions): Promise<EnforcementBenchResult> {
  const tenants = opts.tenants ?? 20;
  const quotaCalls = opts.quotaCalls ?? 30;
  const quotaTokens = quotaCalls * PER_CALL;
  const tier = opts.tier ?? "basic";
  const detailType = tier === "basic" ? ENFORCEMENT_DETAIL_TYPES.throttle : ENFORCEMENT_DETAIL_TYPES.downgrade;
  const timeoutMs = opts.timeoutMs ?? 20_000;
  const intervalMs = 1000 / opts.ratePerTenant;
  const prefix = opts.tenantPrefix ?? `bench-r${opts.ratePerTenant}-${Date.now().toString(36)}`;

  const owned = opts.stack ? undefined : await startBenchStack(opts.batchingWindowMs);
  // A stack started here is warmed first, so handler module loading is not measured.
  if (owned) await warmUp(owned);
  const { stack, hook } = opts.stack ?? owned!;
  const eb = new EventBridgeClient({
    endpoint: stack.url,
    region: stack.region,
    credentials: { accessKeyId: "local", secretAccessKey: "local" },
    maxAttempts: 3,
  });
  try {
    const ids = Array.from({ length: tenants }, (_, i) => `${prefix}-t${String(i).padStart(2, "0")}`);
    for (const tenantId of ids) {
      // Per-minute limits lifted: only the monthly quota may act, so the event measured is the monthly one.
      await request(stack, "PUT", `/tenants/${tenantId}/config`, {
        tier,
        monthlyTokens: quotaTokens,
        requestsPerMinute: 1_000_000,
        tokensPerMinute: 1_000_000_000,
      });
    }
    const start = performance.now() + 100;
    const perTenant = await Promise.all(
      ids.map((tenantId, i) =>
        runTenant({ stack, eb, hook, tenantId, tier, detailType, quotaCalls, intervalMs, timeoutMs, startAt: start + (i * (opts.spreadMs ?? 2_000)) / tenants }),
      ),
    );
    const done = perTenant.filter((r): r is TenantRun & { delayMs: number; overshootCalls: number } => r.delayMs !== undefined);
    return {
      tenants,
      ratePerTenant: opts.ratePerTenant,
      achievedRate: median(perTenant.map((r) => r.achievedRate)),
      quotaTokens,
      delayMs: distribution(done.map((r) => r.delayMs)),
      overshootTokens: distribution(done.map((r) => r.overshootCalls * PER_CALL)),
      overshootCalls: distribution(done.map((r) => r.overshootCalls)),
      missing: perTenant.length - done.length,
      samples: { delayMs: done.map((r) => r.delayMs), overshootCalls: done.map((r) => r.overshootCalls), achievedRate: perTenant.map((r) => r.achievedRate) },
      loadAverage: os.loadavg() as [number, number, number],
    };
  } finally {
    eb.destroy();
    await owned?.stack.stop();
  }
}

export async function startBenchStack(batchingWindowMs?: number): Promise<{ stack: LocalStack; hook: EnforcementLogHook }> {
  process.env.AWS_SDK_JS_SUPPRESS_NODE_DEPRECATION_WARNING ??= "1";
  const hook = enforcementLogHook();
  const stack = await startLocalStack({
    port: 0,
    tableName: `bench-enforcement-${Date.now().toString(36)}`,
    log: hook.log,
    handlerLogs: "quiet",
    batchingWindowMs,
    recentEvents: 50,
  });
  return { stack, hook };
}

interface TenantRun {
  achievedRate: number;
  delayMs?: number;
  overshootCalls?: number;
}

async function runTenant(p: {
  stack: LocalStack;
  eb: EventBridgeClient;
  hook: EnforcementLogHook;
  tenantId: string;
  tier: "basic" | "advanced";
  detailType: string;
  quotaCalls: number;
  intervalMs: number;
  timeoutMs: number;
  startAt: number;
}): Promise<TenantRun> {
  let stopped = false;
  let sentBeforeStop = 0;
  let crossingAcceptedAt: number | undefined;
  let crossingResolve!: () => void;
  const crossed = new Promise<void>((r) => (crossingResolve = r));
  const maxCalls = p.quotaCalls + Math.ceil(p.timeoutMs / p.intervalMs);
  const inflight: Promise<void>[] = [];

  // The sender keeps the schedule (absolute times), whatever one PutEvents takes.
  const sender = (async () => {
    for (let i = 1; i <= maxCalls && !stopped; i++) {
      const due = p.startAt + (i - 1) * p.intervalMs;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      if (stopped) break;
      sentBeforeStop = i;
      const detail = eventFor(p.tenantId, p.tier, i);
      const put = p.eb
        .send(
          new PutEventsCommand({
            Entries: [{ Source: detail.provider === "bedrock" ? INVOCATION_SOURCES.bedrock : INVOCATION_SOURCES.sagemaker, DetailType: INVOCATION_DETAIL_TYPE, Detail: JSON.stringify(detail), EventBusName: p.stack.busName }],
          }),
        )
        .then((out) => {
          if ((out.FailedEntryCount ?? 0) > 0) throw new Error(`PutEvents rejected event ${i} of ${p.tenantId}: ${JSON.stringify(out.Entries)}`);
          if (i === p.quotaCalls) {
            crossingAcceptedAt = performance.now();
            crossingResolve();
          }
        });
      inflight.push(put);
    }
  })();

  await crossed;
  const achievedRate = p.quotaCalls > 1 ? ((p.quotaCalls - 1) * 1000) / (crossingAcceptedAt! - p.startAt) : NaN;
  const timeout = sleep(p.timeoutMs).then(() => undefined);
  const busAt = await Promise.race([p.hook.waitFor(p.tenantId, p.detailType), timeout]);
  let result: TenantRun = { achievedRate };
  if (busAt !== undefined) {
    // The enforcement event is published after the transition is recorded, so the decision
    // endpoint already answers throttle/downgrade; the loop only guards against a regression.
    for (let attempt = 0; attempt < 200; attempt++) {
      const d = (await request(p.stack, "GET", `/tenants/${p.tenantId}/decision`)) as { decision: string };
      if (d.decision !== "allow") break;
      await sleep(10);
    }
    result = { achievedRate, delayMs: busAt - crossingAcceptedAt!, overshootCalls: Math.max(0, sentBeforeStop - p.quotaCalls) };
  }
  stopped = true;
  await sender;
  await Promise.all(inflight);
  return result;
}

function eventFor(tenantId: string, tier: "basic" | "advanced", i: number): InvocationEventV1 {
  const base: Omit<InvocationEventV1, "provider" | "modelId"> = {
    eventId: `${tenantId}-${i}`,
    tenantId,
    occurredAt: new Date().toISOString(),
    inputTokens: IN,
    outputTokens: OUT,
    tier,
    schemaVersion: INVOCATION_SCHEMA_VERSION,
  };
  return tier === "basic"
    ? { ...base, provider: "sagemaker", modelId: MODELS.basicEndpoint, endpointName: MODELS.basicEndpoint, adapterId: `${tenantId}-lora`, latencyMs: 900 }
    : { ...base, provider: "bedrock", modelId: MODELS.highPerformance };
}

async function request(stack: LocalStack, method: "GET" | "PUT", path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`${stack.url}${path}`, {
    method,
    headers: body === undefined ? undefined : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path} -> ${res.status}: ${text}`);
  return JSON.parse(text) as unknown;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Median of the finite values (NaN when there are none). */
export function median(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Nearest-rank percentile (with 20 samples, p99 is the largest). */
function distribution(xs: number[]): Distribution {
  const s = [...xs].sort((a, b) => a - b);
  return { n: s.length, median: median(s), p99: percentile(s, 0.99), max: s.at(-1) ?? NaN };
}

/** One result over several runs of the same rate: the per-tenant samples pooled. */
export function poolResults(runs: EnforcementBenchResult[]): EnforcementBenchResult {
  const delayMs = runs.flatMap((r) => r.samples.delayMs);
  const overshootCalls = runs.flatMap((r) => r.samples.overshootCalls);
  const achievedRate = runs.flatMap((r) => r.samples.achievedRate);
  return {
    ...runs[0],
    tenants: runs.reduce((n, r) => n + r.tenants, 0),
    achievedRate: median(achievedRate),
    delayMs: distribution(delayMs),
    overshootTokens: distribution(overshootCalls.map((c) => c * PER_CALL)),
    overshootCalls: distribution(overshootCalls),
    missing: runs.reduce((n, r) => n + r.missing, 0),
    samples: { delayMs, overshootCalls, achievedRate },
    loadAverage: runs.at(-1)!.loadAverage,
  };
}

/** Warm the handlers (module load, SDK clients, first DynamoDB calls) so the first run does not pay for it. */
export async function warmUp(bench: { stack: LocalStack; hook: EnforcementLogHook }): Promise<void> {
  const r = await measureEnforcementDelay({ tenants: 2, ratePerTenant: 20, quotaCalls: 3, stack: bench, tenantPrefix: `warm-${Date.now().toString(36)}`, spreadMs: 0 });
  if (r.missing > 0) throw new Error("warm-up: the enforcement event never arrived");
  await bench.stack.drain({ timeoutMs: 60_000 });
}

export function formatEnforcementTable(results: EnforcementBenchResult[]): string {
  const header = ["rate/tenant", "achieved", "samples", "quota tok", "delay med ms", "delay p99 ms", "overshoot med tok", "overshoot p99 tok", "overshoot med calls", "missing"];
  const rows = results.map((r) => [
    `${r.ratePerTenant}/s`,
    `${r.achievedRate.toFixed(1)}/s`,
    String(r.delayMs.n),
    String(r.quotaTokens),
    r.delayMs.median.toFixed(0),
    r.delayMs.p99.toFixed(0),
    String(r.overshootTokens.median),
    String(r.overshootTokens.p99),
    String(r.overshootCalls.median),
    String(r.missing),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i])).join("  ");
  return [line(header), ...rows.map(line)].join("\n");
}

async function main(argv: string[]): Promise<number> {
  const get = (name: string) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const tenants = Number(get("tenants") ?? 20);
  const rates = (get("rates") ?? "5,20").split(",").map(Number);
  const quotaCalls = Number(get("quota-calls") ?? 30);
  const runs = Number(get("runs") ?? 1);
  const tier = (get("tier") ?? "basic") as "basic" | "advanced";
  const window = get("batching-window-ms");
  const batchingWindowMs = window === undefined ? undefined : Number(window);

  const cpus = os.cpus();
  console.log(`machine: ${cpus.length} x ${cpus[0]?.model ?? "cpu"}, Node ${process.version}, load average before: ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`);
  console.log(
    `workload: ${tenants} tenants (${tier}), quota ${quotaCalls} calls x ${PER_CALL} tokens, 1 event per PutEvents, ` +
      `tenants start spread over 2 s, ingest batching window ${batchingWindowMs ?? "rule default (1000)"} ms, ${runs} run(s) per rate after a warm-up\n`,
  );
  const bench = await startBenchStack(batchingWindowMs);
  const results: EnforcementBenchResult[] = [];
  const perRunLines: string[] = [];
  try {
    await warmUp(bench);
    for (const rate of rates) {
      const perRun: EnforcementBenchResult[] = [];
      for (let run = 0; run < runs; run++) {
        perRun.push(await measureEnforcementDelay({ tenants, ratePerTenant: rate, quotaCalls, tier, stack: bench, tenantPrefix: `b-r${rate}-run${run}` }));
        await bench.stack.drain({ timeoutMs: 60_000 });
        const last = perRun.at(-1)!;
        perRunLines.push(`  ${rate}/s run ${run + 1}: delay median ${last.delayMs.median.toFixed(0)} ms, p99 ${last.delayMs.p99.toFixed(0)} ms; overshoot median ${last.overshootCalls.median} calls; load ${last.loadAverage[0].toFixed(2)}`);
      }
      results.push(poolResults(perRun));
    }
  } finally {
    await bench.stack.stop();
  }
  console.log(perRunLines.join("\n") + "\n");
  console.log(formatEnforcementTable(results));
  console.log("(samples pooled over runs; p99 is nearest-rank, so with fewer than 100 samples it is the largest)");
  console.log(`\nload average after: ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`);
  return results.some((r) => r.missing > 0) ? 1 : 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}
