/**
 * One data-plane process of the admission bench (a child process; see bench/admission.ts).
 * Uses the real `MeteredBedrock` with its SDK client pointed at the fake Bedrock endpoint, and
 * either admission (hard / lease) against DynamoDB Local, or today's event-driven path (decision
 * endpoint of the local stack, usage events to its bus). Runs its share of the calls all at
 * once, reports per call what happened and how long admission took, then exits.
 */
import { Agent } from "node:http";
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
  mode: "hard" | "lease" | "event";
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
}

export interface WorkerReport {
  calls: { ok: boolean; refused: boolean; error?: string }[];
  /** Time admission took before each call of the burst (ms). */
  admitMs: number[];
  leaseWrites: number;
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
  const admitMs: number[] = [];
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
    gate = new AdmissionGate({ admission, onAdmitted: (ms) => admitMs.push(ms) });
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

  // Warm-up (not measured): one call on another tenant.
  await one(job.warmTenantId, { text: "warm up", maxTokens: 16 });
  leaseWrites = 0;
  admitMs.length = 0;
  // Ready: wait for the parent's go, so all workers start the burst together.
  await new Promise<void>((resolve) => {
    process.send?.({ ready: true });
    process.once("message", () => resolve());
  });
  const calls = await Promise.all(job.calls.map((c) => one(job.tenantId, c)));
  await admission?.close();
  await emitter?.close();
  bedrock.destroy();
  dynamo.destroy();
  return { calls, admitMs, leaseWrites };
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
