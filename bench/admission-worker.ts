/**
 * One data-plane process of the admission bench (a child process; see bench/admission.ts).
 * Uses the real `MeteredBedrock` with its SDK client pointed at the fake Bedrock endpoint, and
 * either admission (hard / lease) against DynamoDB Local, or today's event-driven path (decision
 * endpoint of the local stack, usage events to its bus). Runs its share of the calls all at
 * once, reports per call what happened and how long admission took, then exits.
 */
import { Agent } from "node:http";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { BedrockRuntimeClient } from "@aws-sdk/client-bedrock-runtime";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoBudgetStore, DynamoPoolStore, DynamoUsageTruth, QuotaPolicySource } from "../shared/admission/adapters/dynamodb";
import { parseAdmissionConfig, type AdmissionConfigInput } from "../shared/admission/model";
import { Admission } from "../shared/admission/service";
import { AdmissionGate } from "../shared/dataplane/admission";
import { MeteredBedrock } from "../shared/dataplane/adapters/bedrock";
import { createUsageEmitter } from "../shared/dataplane/adapters/eventbridge";
import { CachedDecisionSource, HttpDecisionSource, allowAll } from "../shared/dataplane/decisions";
import { TenantThrottledError } from "../shared/dataplane/errors";
import type { UsageSink } from "../shared/dataplane/ports";
import { documentClient } from "../shared/storage/adapters/dynamodb";

export interface WorkerJob {
  mode: "hard" | "lease" | "lease-burst" | "lease-bounded" | "event";
  tenantId: string;
  modelId: string;
  calls: { text: string; maxTokens: number }[];
  dynamoEndpoint: string;
  tableName: string;
  bedrockUrl: string;
  stackUrl: string;
  busName: string;
  admission: AdmissionConfigInput;
  /** A tenant for one unmeasured call first (connections, JIT). */
  warmTenantId: string;
  /** One unmeasured call on the measured tenant first (it is live, not cold). */
  liveTenant: boolean;
  /**
   * The process' calls arrive evenly over this many ms (0: all in one tick). Every call is still
   * in flight when the last one arrives as long as a call outlasts the spread (the fake Bedrock
   * answers in seconds, as Bedrock does).
   */
  arrivalMs: number;
}

export interface WorkerReport {
  calls: { ok: boolean; refused: boolean; error?: string }[];
  /** Time admission took before each call of the burst (ms). */
  admitMs: number[];
  /** The same, of the calls admission let through, and of those it refused. */
  admittedMs: number[];
  refusedMs: number[];
  leaseWrites: number;
  /** How late this process' event loop ran during the burst (ms, p50 / p99 / max): CPU contention, not admission. */
  loopDelayMs: { p50: number; p99: number; max: number };
  /** Each call's arrival and end (wall clock, ms since the epoch): the parent counts the calls in flight at once. */
  spans: [number, number][];
}

const credentials = { accessKeyId: "local", secretAccessKey: "local" };
const region = "us-west-2";

async function run(job: WorkerJob): Promise<WorkerReport> {
  process.env.AWS_SDK_JS_SUPPRESS_NODE_DEPRECATION_WARNING ??= "1";
  const bedrock = new BedrockRuntimeClient({ endpoint: job.bedrockUrl, region, credentials, maxAttempts: 1 });
  // The SDK's default agent allows 50 sockets: a process with more calls in flight than that
  // queues inside the SDK, which is not admission's latency. A data plane running this many
  // concurrent calls per process raises it the same way.
  const dynamo = new DynamoDBClient({
    endpoint: job.dynamoEndpoint,
    region,
    credentials,
    maxAttempts: 3,
    requestHandler: { httpAgent: new Agent({ keepAlive: true, maxSockets: 512 }) },
  });
  const doc = documentClient(dynamo);
  if (process.env.ADMISSION_BENCH_DIAG) diagnose(doc);
  const admitMs: number[] = [];
  const admittedMs: number[] = [];
  const refusedMs: number[] = [];
  let leaseWrites = 0;
  let gate: AdmissionGate | undefined;
  let admission: Admission | undefined;
  if (job.mode !== "event") {
    admission = new Admission({
      config: parseAdmissionConfig(job.admission),
      budgets: new DynamoBudgetStore(doc, job.tableName),
      pools: new DynamoPoolStore(doc, job.tableName),
      truth: new DynamoUsageTruth(doc, job.tableName),
      policies: new QuotaPolicySource(doc, job.tableName),
      metrics: { count: (name, v) => void (name === "AdmissionLeaseTaken" || name === "AdmissionLeaseReturned" ? (leaseWrites += v) : undefined) },
      holder: `w${process.pid}`,
    });
    gate = new AdmissionGate({
      admission,
      onAdmitted: (ms, ok) => {
        admitMs.push(ms);
        (ok ? admittedMs : refusedMs).push(ms);
        if (process.env.ADMISSION_BENCH_DIAG && ms > 20) slow.push(`${ok ? "A" : "R"}${ms.toFixed(0)}@${(performance.now() - diagT0 - ms).toFixed(0)}`);
      },
    });
  }
  const emitter = job.mode === "event" ? createUsageEmitter({ clientConfig: { endpoint: job.stackUrl, region, credentials }, eventBusName: job.busName }) : undefined;
  const sink: UsageSink = emitter ?? { emit: () => true };
  const decisions = job.mode === "event" ? new CachedDecisionSource(new HttpDecisionSource({ baseUrl: job.stackUrl }), { ttlMs: 0 }) : allowAll;
  const wrapper = new MeteredBedrock({ client: bedrock, sink, decisions, admission: gate, logger: { warn: () => undefined, error: (m, e) => console.error(m, e) } });

  const one = async (tenantId: string, call: { text: string; maxTokens: number }) => {
    try {
      await wrapper.converse(
        { modelId: job.modelId, messages: [{ role: "user", content: [{ text: call.text }] }], inferenceConfig: { maxTokens: call.maxTokens } },
        { tenantId, feature: "bench" },
      );
      return { ok: true, refused: false };
    } catch (error) {
      if (error instanceof TenantThrottledError) return { ok: false, refused: true };
      return { ok: false, refused: false, error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) };
    }
  };

  // Warm-up (not measured): calls on another tenant, a few at once with prompts of the burst's
  // sizes, so the SDK's request path, the HTTP/2 sessions and the JIT are past their first use
  // (a process serving traffic is; its first calls are not what admission costs).
  await Promise.all(job.calls.slice(0, 10).map((c) => one(job.warmTenantId, { text: c.text, maxTokens: 16 })));
  // The tenant is live (a data plane serving it has called for it before): its policy is cached
  // and the month's budget item exists. A burst on a tenant no process has seen adds the cold
  // path (policy read, budget item created from the aggregates): about four round trips.
  if (job.liveTenant) await one(job.tenantId, { text: "warm up", maxTokens: 16 });
  leaseWrites = 0;
  admitMs.length = 0;
  admittedMs.length = 0;
  refusedMs.length = 0;
  // Ready: wait for the parent's go, so all workers start the burst together.
  await new Promise<void>((resolve) => {
    process.send?.({ ready: true });
    process.once("message", () => resolve());
  });
  diagT0 = performance.now();
  timeline.length = 0;
  slow.length = 0;
  if (process.env.ADMISSION_BENCH_DIAG) console.error(`[diag ${process.pid}] go at ${Date.now() % 100000}`);
  const loop = monitorEventLoopDelay({ resolution: 5 });
  loop.enable();
  if (process.env.ADMISSION_BENCH_DIAG === "raw") {
    const { GetCommand } = await import("@aws-sdk/lib-dynamodb");
    for (let i = 0; i < 8; i++) await doc.send(new GetCommand({ TableName: job.tableName, Key: { pk: "NOPE", sk: "NOPE" } }));
  }
  const spans: [number, number][] = [];
  const start = performance.now();
  const arrive = async (c: { text: string; maxTokens: number }, i: number) => {
    const at = job.arrivalMs > 0 ? (i * job.arrivalMs) / job.calls.length : 0;
    if (at > 0) await new Promise((r) => setTimeout(r, Math.max(0, at - (performance.now() - start))));
    const arrived = Date.now();
    try {
      return await one(job.tenantId, c);
    } finally {
      spans.push([arrived, Date.now()]);
    }
  };
  const calls = await Promise.all(job.calls.map(arrive));
  loop.disable();
  const loopDelayMs = { p50: loop.percentile(50) / 1e6, p99: loop.percentile(99) / 1e6, max: loop.max / 1e6 };
  if (process.env.ADMISSION_BENCH_DIAG) console.error(`[diag ${process.pid}] calls over 20 ms (A admitted / R refused, ms @ start): ${slow.join(" ")}`);
  if (process.env.ADMISSION_BENCH_DIAG) console.error(`[diag ${process.pid}] admit ms sorted: ${[...admitMs].sort((a, b) => a - b).filter((_, i) => i % 10 === 0).map((x) => x.toFixed(0)).join(" ")}`);
  await admission?.close();
  await emitter?.close();
  bedrock.destroy();
  dynamo.destroy();
  return { calls, admitMs, admittedMs, refusedMs, leaseWrites, loopDelayMs, spans };
}

process.once("message", (job: WorkerJob) => {
  run(job).then(
    (report) => process.send?.({ report }, () => process.exit(0)),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
});

const timeline: string[] = [];
const slow: string[] = [];
let diagT0 = performance.now();
/** `ADMISSION_BENCH_DIAG=1`: per DynamoDB command, round trips, SDK attempts and retry delay (stderr at exit). */
function diagnose(doc: { send: (...a: never[]) => Promise<unknown> }): void {
  const orig = doc.send.bind(doc) as (...a: unknown[]) => Promise<{ $metadata?: { attempts?: number; totalRetryDelay?: number } }>;
  const stats = new Map<string, { n: number; ms: number[]; attempts: number; retryDelay: number; errors: Map<string, number> }>();
  (doc as { send: unknown }).send = async (cmd: { constructor: { name: string } }, ...rest: unknown[]) => {
    const name = cmd.constructor.name;
    const s = stats.get(name) ?? { n: 0, ms: [] as number[], attempts: 0, retryDelay: 0, errors: new Map() };
    stats.set(name, s);
    const t = performance.now();
    timeline.push(`${name.replace("Command", "")}@${(t - diagT0).toFixed(0)}`);
    try {
      const out = await orig(cmd, ...rest);
      s.attempts += out.$metadata?.attempts ?? 1;
      s.retryDelay += out.$metadata?.totalRetryDelay ?? 0;
      return out;
    } catch (error) {
      const e = error as { name?: string; $metadata?: { attempts?: number; totalRetryDelay?: number } };
      s.attempts += e.$metadata?.attempts ?? 1;
      s.retryDelay += e.$metadata?.totalRetryDelay ?? 0;
      s.errors.set(e.name ?? "Error", (s.errors.get(e.name ?? "Error") ?? 0) + 1);
      throw error;
    } finally {
      s.n++;
      s.ms.push(performance.now() - t);
      timeline[timeline.length] = `  done ${name.replace("Command", "")}@${(performance.now() - diagT0).toFixed(0)}+${(performance.now() - t).toFixed(0)}`;
    }
  };
  process.once("exit", () => {
    console.error(`[diag ${process.pid}] timeline ${timeline.join(" ")}`);
    for (const [name, s] of stats) {
      const ms = s.ms.sort((a, b) => a - b);
      console.error(`[diag ${process.pid}] ${name}: ${s.n} sends, ${s.attempts} attempts, retry delay ${s.retryDelay} ms, ms p50 ${ms[Math.floor(ms.length / 2)].toFixed(1)} max ${ms[ms.length - 1].toFixed(1)}, errors ${JSON.stringify(Object.fromEntries(s.errors))}`);
    }
  });
}
