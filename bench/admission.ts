/**
 * `npm run bench -- --scenario admission --out FILE` (issue 12): admission before the call,
 * measured on the local stack (DynamoDB Local) with the real wrappers and a fake Bedrock endpoint.
 *
 * Caps: 8 data-plane worker processes (child processes) fire 1,000 concurrent Converse calls
 * for one tenant whose monthly budget is a third of what the calls use (each call a random
 * max_tokens and a random prompt size, usage as the fake reports it; the calls arrive over
 * `ARRIVAL_MS` and last seconds each, or all at once in the burst runs). Five runs: admission in
 * `hard` mode, in `lease` mode (the JSON's latency), `lease-burst` (each process' calls in one
 * tick), `lease-bounded` (the burst with the tier's `maxWaitMs`), and today's event-driven path
 * (decision endpoint + enforcement after ingest, no admission). Overshoot = tokens the fake served
 * the tenant beyond its budget.
 *
 * Pools: one account quota pool (TPM per window) on the fake endpoint, which throttles like
 * Bedrock; Basic tenants send 3x the pool's TPM while a Premium tenant sends at its floor (50%).
 * Premium's success rate with admission pools, and without them (the same load, no admission).
 * The pool window is 2 s instead of Bedrock's minute (TPM scaled to it) to keep the run short.
 */
import { fork, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import os from "node:os";
import { BedrockRuntimeClient } from "@aws-sdk/client-bedrock-runtime";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { startLocalStack, type LocalStack } from "../local/stack";
import { startDynamoLocal } from "../local/dynamodb-local";
import { DynamoBudgetStore, DynamoPoolStore, DynamoUsageTruth, QuotaPolicySource } from "../shared/admission/adapters/dynamodb";
import { parseAdmissionConfig, type AdmissionConfigInput } from "../shared/admission/model";
import { Admission } from "../shared/admission/service";
import { AdmissionGate } from "../shared/dataplane/admission";
import { MeteredBedrock } from "../shared/dataplane/adapters/bedrock";
import { allowAll } from "../shared/dataplane/decisions";
import { documentClient } from "../shared/storage/adapters/dynamodb";
import { startFakeBedrock, fakeUsage } from "./admission-fake-bedrock";
import type { WorkerJob, WorkerReport } from "./admission-worker";
import { mulberry32 as prng } from "../shared/util/random";
import { percentile } from "./stats";

const MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0";
const WORKERS = 8;
const CALLS = Number(process.env.ADMISSION_BENCH_CALLS ?? 1_000);
const LEASE = { leaseTokens: 10_000, maxLeaseTokens: 40_000 };
/** The `lease-bounded` run: the same leases with the tier's `maxWaitMs` (the latency bound, paid in refusals). */
const BOUNDED_WAIT_MS = 15;
/** `ADMISSION_BENCH_MODES=lease` runs only the named caps runs, `pools` only the pools runs (diagnosis); the JSON needs all. */
const ALL_MODES = "hard,lease,lease-burst,lease-bounded,event";
const MODES_ASKED = (process.env.ADMISSION_BENCH_MODES ?? ALL_MODES).split(",");
const POOLS_ONLY = MODES_ASKED.length === 1 && MODES_ASKED[0] === "pools";
const MODES = (POOLS_ONLY ? [] : MODES_ASKED) as CapsRun["mode"][];
/**
 * The 1,000 calls arrive evenly over this many ms (125 per process, 200 calls/s in all), and each
 * lasts seconds, as a Bedrock call does: without admission about 970 of them are in flight at
 * once (the `event` run counts them). 200 calls/s is what this 2-core machine carries: the SDK's
 * request building and signing, the fake endpoint and DynamoDB Local share the two cores, and at
 * 500 or 1,000 calls/s every process' callbacks wait for CPU (`ADMISSION_BENCH_ARRIVAL_MS=1000`
 * shows it). `lease-burst` and `lease-bounded` start each process' 125 calls in one tick: the
 * worst case, reported beside it.
 */
const ARRIVAL_MS = Number(process.env.ADMISSION_BENCH_ARRIVAL_MS ?? 5_000);
/** The fake Bedrock: time to first byte and per output token, about what Claude Sonnet answers in. */
const FAKE_LATENCY = { baseLatencyMs: 500, msPerOutputToken: 15 };
const here = dirname(fileURLToPath(import.meta.url));

export interface AdmissionBenchResult {
  hardCapOvershootTokens: number;
  leaseOvershootTokens: number;
  leaseOvershootBoundTokens: number;
  eventDrivenOvershootTokens: number;
  addedLatencyMsP50: number;
  addedLatencyMsP99: number;
  premiumSuccessRate: number;
  premiumSuccessRateWithoutPools: number;
  requests: number;
}


const WORDS = "the tenant asked about invoices quotas models latency billing throughput adapters endpoints regions tokens cache prompt answer summary report".split(" ");
function text(rand: () => number, chars: number): string {
  let s = "";
  while (s.length < chars) s += WORDS[Math.floor(rand() * WORDS.length)] + " ";
  return s.slice(0, chars);
}

/** The most spans open at one instant (an end at the same ms as a start counts as before it). */
export function peakConcurrency(spans: [number, number][]): number {
  const edges = spans.flatMap(([a, b]) => [[a, 1] as const, [b, -1] as const]).sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  let open = 0;
  let peak = 0;
  for (const [, d] of edges) peak = Math.max(peak, (open += d));
  return peak;
}


async function putConfig(stack: LocalStack, tenantId: string, body: unknown): Promise<void> {
  const res = await fetch(`${stack.url}/tenants/${tenantId}/config`, { method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`PUT config ${tenantId}: ${res.status} ${await res.text()}`);
}

async function runWorkers(jobs: WorkerJob[]): Promise<WorkerReport[]> {
  const children: ChildProcess[] = [];
  try {
    const reports = jobs.map((job) => {
      const child = fork(join(here, "admission-worker.ts"), [], { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
      children.push(child);
      const ready = new Promise<void>((resolve, reject) => {
        child.once("message", (m: { ready?: boolean }) => (m.ready ? resolve() : reject(new Error("worker: unexpected message"))));
        child.once("exit", (code) => reject(new Error(`worker exited early with ${code}`)));
      });
      child.send(job);
      return { child, ready };
    });
    await Promise.all(reports.map((r) => r.ready));
    const done = reports.map(
      (r) =>
        new Promise<WorkerReport>((resolve, reject) => {
          r.child.once("message", (m: { report?: WorkerReport }) => (m.report ? resolve(m.report) : reject(new Error("worker: no report"))));
          r.child.once("exit", (code) => (code === 0 ? undefined : reject(new Error(`worker exited with ${code}`))));
        }),
    );
    if (process.env.BENCH_VERBOSE) console.log("  workers ready");
    for (const r of reports) r.child.send({ go: true });
    return await Promise.all(done);
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill();
  }
}

interface CapsRun {
  mode: "hard" | "lease" | "lease-burst" | "lease-bounded" | "event";
  arrivalMs: number;
  /** The most calls in flight at once, over all processes. */
  peakInFlight: number;
  servedTokens: number;
  overshootTokens: number;
  admitted: number;
  refused: number;
  errors: number;
  admitMs: number[];
  admittedMs: number[];
  refusedMs: number[];
  leaseWrites: number;
  /** The workers' event-loop delay during the burst (ms): the largest p99 and max of the 8. */
  loopDelayMs: { p99: number; max: number };
  wallMs: number;
}

async function capsRun(p: { stack: LocalStack; bedrockUrl: string; served: Map<string, { tokens: number }>; mode: CapsRun["mode"]; calls: { text: string; maxTokens: number }[]; budget: number; stamp: string }): Promise<CapsRun> {
  const tenantId = `adm-${p.mode}-${p.stamp}`;
  const arrivalMs = p.mode === "lease-burst" || p.mode === "lease-bounded" ? 0 : ARRIVAL_MS;
  const warmTenantId = `warm-${p.mode}-${p.stamp}`;
  for (const t of [tenantId, warmTenantId]) {
    // Basic tier (throttle at 100%) with the per-minute limits lifted: only the monthly budget acts.
    await putConfig(p.stack, t, { tier: "basic", monthlyTokens: t === tenantId ? p.budget : 1_000_000_000, requestsPerMinute: 1_000_000, tokensPerMinute: 1_000_000_000 });
  }
  const admission: AdmissionConfigInput = {
    tiers: {
      basic:
        p.mode === "hard"
          ? { mode: "hard", leaseTokens: 1, defaultMaxTokens: 1_024 }
          : { mode: "lease", ...LEASE, defaultMaxTokens: 1_024, ...(p.mode === "lease-bounded" ? { maxWaitMs: BOUNDED_WAIT_MS } : {}) },
    },
  };
  const jobs: WorkerJob[] = Array.from({ length: WORKERS }, (_, w) => ({
    mode: p.mode,
    tenantId,
    warmTenantId,
    liveTenant: process.env.ADMISSION_BENCH_COLD !== "1",
    modelId: MODEL,
    calls: p.calls.filter((_, i) => i % WORKERS === w),
    dynamoEndpoint: p.stack.dynamoEndpoint,
    tableName: p.stack.tableName,
    bedrockUrl: p.bedrockUrl,
    stackUrl: p.stack.url,
    busName: p.stack.busName,
    admission,
    arrivalMs,
  }));
  const t0 = performance.now();
  const reports = await runWorkers(jobs);
  const wallMs = performance.now() - t0;
  if (p.mode === "event") await p.stack.drain({ timeoutMs: 120_000 });
  const calls = reports.flatMap((r) => r.calls);
  const errors = calls.filter((c) => !c.ok && !c.refused);
  if (errors.length > 0) console.log(`  ${p.mode}: ${errors.length} calls failed, e.g. ${errors[0].error}`);
  const servedTokens = p.served.get(tenantId)?.tokens ?? 0;
  return {
    mode: p.mode,
    arrivalMs,
    peakInFlight: peakConcurrency(reports.flatMap((r) => r.spans)),
    servedTokens,
    overshootTokens: Math.max(0, servedTokens - p.budget),
    admitted: calls.filter((c) => c.ok).length,
    refused: calls.filter((c) => c.refused).length,
    errors: errors.length,
    admitMs: reports.flatMap((r) => r.admitMs),
    admittedMs: reports.flatMap((r) => r.admittedMs),
    refusedMs: reports.flatMap((r) => r.refusedMs),
    loopDelayMs: { p99: Math.max(...reports.map((r) => r.loopDelayMs.p99)), max: Math.max(...reports.map((r) => r.loopDelayMs.max)) },
    leaseWrites: reports.reduce((s, r) => s + r.leaseWrites, 0),
    wallMs,
  };
}

interface PoolsRun {
  premiumSent: number;
  premiumOk: number;
  basicSent: number;
  basicOk: number;
  /** Admission's time per call with pools on (ms), Premium's and Basic's. */
  premiumAdmitMs: number[];
  basicAdmitMs: number[];
}

/** The pools run with credit: each round also reserves this share of the window for its tier ahead of its next calls. */
const POOL_CREDIT_SHARE = 0.1;

async function poolsRun(p: { stack: LocalStack; withPools: boolean; stamp: string; windows: number; creditShare?: number }): Promise<PoolsRun> {
  const windowSeconds = 2;
  const tpm = 1_800_000; // 60,000 tokens per 2 s window
  const fake = await startFakeBedrock({ quota: { tpm, rpm: 1_000_000, windowSeconds }, baseLatencyMs: 40, msPerOutputToken: 0.1 });
  const dynamo = new DynamoDBClient({ endpoint: p.stack.dynamoEndpoint, region: "us-west-2", credentials: { accessKeyId: "local", secretAccessKey: "local" } });
  const doc = documentClient(dynamo);
  const bedrock = new BedrockRuntimeClient({ endpoint: fake.url, region: "us-west-2", credentials: { accessKeyId: "local", secretAccessKey: "local" }, maxAttempts: 1 });
  const tag = p.withPools ? (p.creditShare ? "credit" : "on") : "off";
  const basics = Array.from({ length: 4 }, (_, i) => `pool-basic${i}-${tag}-${p.stamp}`);
  const premium = `pool-premium-${tag}-${p.stamp}`;
  for (const t of basics) await putConfig(p.stack, t, { tier: "basic", monthlyTokens: 1_000_000_000, requestsPerMinute: 1_000_000, tokensPerMinute: 1_000_000_000 });
  await putConfig(p.stack, premium, { tier: "premium" });
  let admission: Admission | undefined;
  if (p.withPools) {
    admission = new Admission({
      config: parseAdmissionConfig({
        tiers: { basic: { mode: "lease", leaseTokens: 50_000, defaultMaxTokens: 1_024 } },
        pools: [{ id: `sonnet-bench-${tag}-${p.stamp}@us-west-2`, models: [MODEL], scope: "us-west-2", tpm, rpm: 1_000_000, windowSeconds, creditShare: p.creditShare ?? 0 }],
      }),
      budgets: new DynamoBudgetStore(doc, p.stack.tableName),
      pools: new DynamoPoolStore(doc, p.stack.tableName),
      truth: new DynamoUsageTruth(doc, p.stack.tableName),
      policies: new QuotaPolicySource(doc, p.stack.tableName),
    });
  }
  const premiumAdmitMs: number[] = [];
  const basicAdmitMs: number[] = [];
  // One wrapper per tier (the same admission): each gate times its tier's calls.
  const wrapperTiming = (into: number[]) =>
    new MeteredBedrock({
      client: bedrock,
      sink: { emit: () => true },
      decisions: allowAll,
      admission: admission ? new AdmissionGate({ admission, onAdmitted: (ms) => void into.push(ms) }) : undefined,
      logger: { warn: () => undefined, error: () => undefined },
    });
  const wrappers = { premium: wrapperTiming(premiumAdmitMs), basic: wrapperTiming(basicAdmitMs) };
  // Every call: a 2,000-char prompt and max_tokens 976: the fake reserves 507 + 976 = 1,483 tokens at its start.
  const prompt = text(prng(7), 2_000);
  const perCall = fakeUsage(prompt, 976).inputTokens + 976;
  const windowMs = windowSeconds * 1000;
  const capacity = (tpm * windowSeconds) / 60;
  const premiumPerWindow = Math.floor((0.5 * capacity) / perCall); // Premium at its floor (50%)
  const basicPerWindow = Math.ceil((3 * capacity) / perCall); // Basic at 3x the pool
  const run: PoolsRun = { premiumSent: 0, premiumOk: 0, basicSent: 0, basicOk: 0, premiumAdmitMs, basicAdmitMs };
  const call = async (tenantId: string, isPremium: boolean) => {
    if (isPremium) run.premiumSent++;
    else run.basicSent++;
    try {
      await (isPremium ? wrappers.premium : wrappers.basic).converse({ modelId: MODEL, messages: [{ role: "user", content: [{ text: prompt }] }], inferenceConfig: { maxTokens: 976 } }, { tenantId });
      if (isPremium) run.premiumOk++;
      else run.basicOk++;
    } catch {
      // refused by admission or throttled by the fake Bedrock: a failed call either way
    }
  };
  // Start at the beginning of a window so every window gets the same load.
  await new Promise((r) => setTimeout(r, windowMs - (Date.now() % windowMs) + 5));
  const start = performance.now();
  const inflight: Promise<void>[] = [];
  const schedule = (n: number, fn: (i: number) => void) => {
    for (let i = 0; i < n; i++) {
      const at = ((i + 0.5) * windowMs * p.windows) / n;
      inflight.push(new Promise<void>((r) => setTimeout(() => r(fn(i)), at - (performance.now() - start))));
    }
  };
  const tasks: Promise<void>[] = [];
  schedule(premiumPerWindow * p.windows, () => void tasks.push(call(premium, true)));
  schedule(basicPerWindow * p.windows, (i) => void tasks.push(call(basics[i % basics.length], false)));
  await Promise.all(inflight);
  await Promise.all(tasks);
  await admission?.close();
  bedrock.destroy();
  dynamo.destroy();
  await fake.stop();
  return run;
}

export async function runAdmissionBench(opts: { out: string; log?: (line: string) => void }): Promise<AdmissionBenchResult> {
  const log = opts.log ?? ((l: string) => console.log(l));
  process.env.AWS_SDK_JS_SUPPRESS_NODE_DEPRECATION_WARNING ??= "1";
  const stamp = Date.now().toString(36);
  const dynamo = await startDynamoLocal();
  const stack = await startLocalStack({ port: 0, dynamoEndpoint: dynamo.endpoint, tableName: `bench-admission-${stamp}`, handlerLogs: "quiet", log: () => undefined, recentEvents: 10 });
  const fake = await startFakeBedrock(FAKE_LATENCY);
  try {
    const rand = prng(12);
    const calls = Array.from({ length: CALLS }, () => ({ text: text(rand, 400 + Math.floor(rand() * 3_600)), maxTokens: 128 + Math.floor(rand() * 897) }));
    const demand = calls.reduce((s, c) => {
      const u = fakeUsage(c.text, c.maxTokens);
      return s + u.inputTokens + u.outputTokens;
    }, 0);
    const budget = Math.floor(demand / 3);
    const warm = await warmStore(stack);
    log(`DynamoDB Local warmed: ${warm.requests} conditional updates of one item from 8 concurrent loops, last 500 p50 ${warm.p50.toFixed(1)} ms (its JVM compiles its hot paths in the first thousands of requests; DynamoDB has no such phase)`);
    log(`machine: ${os.cpus().length} x ${os.cpus()[0]?.model ?? "cpu"}, Node ${process.version}, DynamoDB Local, load average at start ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}, ${new Date().toISOString()}`);
    log(`caps: ${WORKERS} worker processes, ${CALLS} concurrent calls for one tenant arriving over ${ARRIVAL_MS} ms (lease-burst, lease-bounded: in one tick per process); the calls use ${demand} tokens, budget ${budget} (1/3); fake Bedrock ${FAKE_LATENCY.baseLatencyMs} ms + ${FAKE_LATENCY.msPerOutputToken} ms per output token`);
    const runs: CapsRun[] = [];
    for (const mode of MODES) {
      runs.push(await capsRun({ stack, bedrockUrl: fake.url, served: fake.served, mode, calls, budget, stamp }));
      const r = runs.at(-1)!;
      log(`  ${mode}: served ${r.servedTokens} tokens (${r.admitted} calls), refused ${r.refused}, overshoot ${r.overshootTokens}, ${r.leaseWrites} grant writes, ${r.peakInFlight} calls in flight at most, ${r.wallMs.toFixed(0)} ms, worker event-loop delay p99 ${r.loopDelayMs.p99.toFixed(0)} ms (max ${r.loopDelayMs.max.toFixed(0)}), admission ms p50 ${percentile(r.admitMs, 0.5)?.toFixed(2)} p99 ${percentile(r.admitMs, 0.99)?.toFixed(2)}`);
    }
    if (MODES.join() !== ALL_MODES && !POOLS_ONLY) {
      for (const r of runs) log(`  ${r.mode}: admission ms p50 ${percentile(r.admitMs, 0.5)?.toFixed(2)} p90 ${percentile(r.admitMs, 0.9)?.toFixed(2)} p99 ${percentile(r.admitMs, 0.99)?.toFixed(2)} max ${percentile(r.admitMs, 1)?.toFixed(2)}; admitted p50 ${percentile(r.admittedMs, 0.5)?.toFixed(2)} p99 ${percentile(r.admittedMs, 0.99)?.toFixed(2)}; refused p50 ${percentile(r.refusedMs, 0.5)?.toFixed(2)} p99 ${percentile(r.refusedMs, 0.99)?.toFixed(2)}`);
      throw new Error(`ADMISSION_BENCH_MODES=${MODES.join()}: a diagnosis run; no JSON written (it needs ${ALL_MODES})`);
    }
    log(`pools: 4 Basic tenants at 3x the pool's TPM, 1 Premium tenant at its 50% floor, 2 s windows x 4`);
    const off = await poolsRun({ stack, withPools: false, stamp, windows: 4 });
    const on = await poolsRun({ stack, withPools: true, stamp, windows: 4 });
    const credit = await poolsRun({ stack, withPools: true, stamp, windows: 4, creditShare: POOL_CREDIT_SHARE });
    log(`  without pools: premium ${off.premiumOk}/${off.premiumSent}, basic ${off.basicOk}/${off.basicSent}`);
    log(`  with pools:    premium ${on.premiumOk}/${on.premiumSent}, basic ${on.basicOk}/${on.basicSent}; admission ms p50 / p99: premium ${percentile(on.premiumAdmitMs, 0.5).toFixed(2)} / ${percentile(on.premiumAdmitMs, 0.99).toFixed(2)}, basic ${percentile(on.basicAdmitMs, 0.5).toFixed(2)} / ${percentile(on.basicAdmitMs, 0.99).toFixed(2)}`);
    log(`  with pools and ${POOL_CREDIT_SHARE} credit: premium ${credit.premiumOk}/${credit.premiumSent}, basic ${credit.basicOk}/${credit.basicSent}; admission ms p50 / p99: premium ${percentile(credit.premiumAdmitMs, 0.5).toFixed(2)} / ${percentile(credit.premiumAdmitMs, 0.99).toFixed(2)}, basic ${percentile(credit.basicAdmitMs, 0.5).toFixed(2)} / ${percentile(credit.basicAdmitMs, 0.99).toFixed(2)}`);
    if (POOLS_ONLY) throw new Error("ADMISSION_BENCH_MODES=pools: a diagnosis run; no JSON written");
    const [hard, lease, burst, bounded, event] = runs;
    const result: AdmissionBenchResult = {
      hardCapOvershootTokens: hard.overshootTokens,
      leaseOvershootTokens: lease.overshootTokens,
      // Per process at most one lease as large as maxLeaseTokens plus one taken ahead (leaseTokens).
      leaseOvershootBoundTokens: WORKERS * (LEASE.maxLeaseTokens + LEASE.leaseTokens),
      eventDrivenOvershootTokens: event.overshootTokens,
      addedLatencyMsP50: round2(percentile(lease.admitMs, 0.5)),
      addedLatencyMsP99: round2(percentile(lease.admitMs, 0.99)),
      premiumSuccessRate: round4(on.premiumOk / on.premiumSent),
      premiumSuccessRateWithoutPools: round4(off.premiumOk / off.premiumSent),
      requests: CALLS,
    };
    log("");
    log(formatTable(result, { hard, lease, burst, bounded }, on, credit));
    writeFileSync(opts.out, JSON.stringify({ admission: result }, null, 2) + "\n");
    log(`\nwritten: ${opts.out}`);
    return result;
  } finally {
    await fake.stop();
    await stack.stop();
    await dynamo.stop();
  }
}

/**
 * DynamoDB Local is a JVM: its first few thousand requests run interpreted and are 2-5x slower
 * (an UpdateItem of one item from 8 loops: p50 ~100 ms in the first 200, ~22 ms after 4,000).
 * The service it stands in for has no such phase, so the bench measures after it.
 */
async function warmStore(stack: LocalStack): Promise<{ requests: number; p50: number }> {
  const dynamo = new DynamoDBClient({ endpoint: stack.dynamoEndpoint, region: "us-west-2", credentials: { accessKeyId: "local", secretAccessKey: "local" } });
  const doc = documentClient(dynamo);
  const { UpdateCommand, GetCommand } = await import("@aws-sdk/lib-dynamodb");
  const total = 4_000;
  let sent = 0;
  const last: number[] = [];
  await Promise.all(
    Array.from({ length: 8 }, async (_, w) => {
      while (sent < total) {
        const i = sent++;
        const t = performance.now();
        await doc.send(
          new UpdateCommand({
            TableName: stack.tableName,
            Key: { pk: "BENCH#WARMUP", sk: "BUDGET" },
            UpdateExpression: "ADD used :n SET #w = :w",
            ConditionExpression: "attribute_not_exists(used) OR used < :max",
            ExpressionAttributeNames: { "#w": `w${w}` },
            ExpressionAttributeValues: { ":n": 1, ":w": i, ":max": 1e12 },
            ReturnValues: "UPDATED_NEW",
          }),
        );
        if (i % 4 === 0) await doc.send(new GetCommand({ TableName: stack.tableName, Key: { pk: "BENCH#WARMUP", sk: "BUDGET" }, ConsistentRead: true }));
        if (i >= total - 500) last.push(performance.now() - t);
      }
    }),
  );
  dynamo.destroy();
  return { requests: total, p50: percentile(last, 0.5) };
}

const round2 = (x: number) => Math.round(x * 100) / 100;
const round4 = (x: number) => Math.round(x * 10_000) / 10_000;

function formatTable(r: AdmissionBenchResult, runs: { hard: CapsRun; lease: CapsRun; burst: CapsRun; bounded: CapsRun }, pools: PoolsRun, credit: PoolsRun): string {
  const ms = (xs: number[]) => (xs.length === 0 ? "-" : `${percentile(xs, 0.5).toFixed(2)} / ${percentile(xs, 0.99).toFixed(2)}`);
  const rows: [string, string][] = [
    ["hardCapOvershootTokens", String(r.hardCapOvershootTokens)],
    ["leaseOvershootTokens", String(r.leaseOvershootTokens)],
    ["leaseOvershootBoundTokens", String(r.leaseOvershootBoundTokens)],
    ["eventDrivenOvershootTokens", String(r.eventDrivenOvershootTokens)],
    [`addedLatencyMsP50 (lease, every call, arrivals over ${runs.lease.arrivalMs} ms)`, r.addedLatencyMsP50.toFixed(2)],
    [`addedLatencyMsP99 (lease, every call, arrivals over ${runs.lease.arrivalMs} ms)`, r.addedLatencyMsP99.toFixed(2)],
    ["  lease: calls in flight at once (most)", String(runs.lease.peakInFlight)],
    ["  lease: admitted / refused calls p50 / p99", `${ms(runs.lease.admittedMs)}  |  ${ms(runs.lease.refusedMs)}`],
    ["  lease: calls served / refused", `${runs.lease.admitted} / ${runs.lease.refused}`],
    ["  lease: workers' event-loop delay p99 / max (CPU)", `${runs.lease.loopDelayMs.p99.toFixed(0)} / ${runs.lease.loopDelayMs.max.toFixed(0)}`],
    ["  lease-burst (125 per process in one tick): every call p50 / p99", ms(runs.burst.admitMs)],
    ["  lease-burst: admitted / refused calls p50 / p99", `${ms(runs.burst.admittedMs)}  |  ${ms(runs.burst.refusedMs)}`],
    ["  lease-burst: workers' event-loop delay p99 / max (CPU)", `${runs.burst.loopDelayMs.p99.toFixed(0)} / ${runs.burst.loopDelayMs.max.toFixed(0)}`],
    [`  lease-burst, maxWaitMs ${BOUNDED_WAIT_MS}: every call p50 / p99`, ms(runs.bounded.admitMs)],
    [`  lease, maxWaitMs ${BOUNDED_WAIT_MS}: calls served / refused, overshoot`, `${runs.bounded.admitted} / ${runs.bounded.refused}, ${runs.bounded.overshootTokens}`],
    ["  hard: every call p50 / p99", ms(runs.hard.admitMs)],
    ["premiumSuccessRate", r.premiumSuccessRate.toFixed(4)],
    ["  with pools: admission p50 / p99, premium | basic (a round trip per round)", `${ms(pools.premiumAdmitMs)}  |  ${ms(pools.basicAdmitMs)}`],
    [`  with pools, creditShare ${POOL_CREDIT_SHARE}: premium success, admission p50 / p99 premium | basic`, `${(credit.premiumOk / credit.premiumSent).toFixed(4)}, ${ms(credit.premiumAdmitMs)}  |  ${ms(credit.basicAdmitMs)}`],
    ["premiumSuccessRateWithoutPools", r.premiumSuccessRateWithoutPools.toFixed(4)],
    ["requests (per caps run)", String(r.requests)],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  return ["figure".padEnd(w) + "  value", ...rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`)].join("\n");
}
