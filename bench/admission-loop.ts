/**
 * `npx tsx bench/admission-loop.ts`: where the admission bench's burst latency goes, in one process.
 * 125 concurrent Converse calls through the real `MeteredBedrock` + `AdmissionGate` (what one of the
 * bench's 8 workers runs), the budget store an in-memory one whose takes take 1 s (so no call waits
 * for a store answer), the tier's maxWaitMs 15, the SDK pointed at a closed port. Two cases:
 *  - nothing in hand: every call waits 15 ms and is refused (admission alone);
 *  - a lease in hand for about 20 calls: those go on to the SDK at once, the rest are refused at 15 ms.
 * Prints when a 0 ms timer ran after the burst started (how long the event loop was busy) and the
 * admission latency (the gate's own measure, as in the bench) of the refused calls.
 */
import { BedrockRuntimeClient } from "@aws-sdk/client-bedrock-runtime";
import { MemoryBudgetStore, MemoryPoolStore, MemoryUsageTruth, StaticPolicySource } from "../shared/admission/adapters/memory";
import { parseAdmissionConfig } from "../shared/admission/model";
import { Admission } from "../shared/admission/service";
import { AdmissionGate } from "../shared/dataplane/admission";
import { MeteredBedrock } from "../shared/dataplane/adapters/bedrock";
import { allowAll } from "../shared/dataplane/decisions";
import { DEFAULT_TIERS, type TierPolicy } from "../shared/quota/tiers";
import { percentile } from "./stats";

const CALLS = 125;
const MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0";

async function burst(withLease: boolean) {
  process.env.AWS_SDK_JS_SUPPRESS_NODE_DEPRECATION_WARNING ??= "1";
  const bedrock = new BedrockRuntimeClient({ endpoint: "http://127.0.0.1:9", region: "us-west-2", credentials: { accessKeyId: "l", secretAccessKey: "l" }, maxAttempts: 1 });
  const admission = new Admission({
    config: parseAdmissionConfig({ leaseIdleMs: 60_000, tiers: { basic: { mode: "lease", leaseTokens: 30_000, maxLeaseTokens: 30_000, defaultMaxTokens: 1_024, maxWaitMs: 15 } } }),
    budgets: new MemoryBudgetStore({ delayMs: 1_000 }),
    pools: new MemoryPoolStore(),
    truth: new MemoryUsageTruth(),
    policies: new StaticPolicySource({}, { ...DEFAULT_TIERS.basic, monthlyTokens: 1e9 } as TierPolicy),
  });
  const refusedMs: number[] = [];
  let admitted = 0;
  const gate = new AdmissionGate({ admission, onAdmitted: (ms, ok) => (ok ? admitted++ : refusedMs.push(ms)) });
  const wrapper = new MeteredBedrock({ client: bedrock, sink: { emit: () => true }, decisions: allowAll, admission: gate, logger: { warn: () => undefined, error: () => undefined } });
  const text = "the tenant asked about invoices quotas models ".repeat(48); // ~2,200 characters, the bench's mean prompt
  const one = () => wrapper.converse({ modelId: MODEL, messages: [{ role: "user", content: [{ text }] }], inferenceConfig: { maxTokens: 500 } }, { tenantId: "t" }).then(() => undefined, () => undefined);
  // Warm-up (JIT, policy cache); with a lease: wait for the take it started (1 s) so ~20 calls' worth is in hand.
  await Promise.all(Array.from({ length: 3 }, one));
  if (withLease) await new Promise((r) => setTimeout(r, 1_200));
  refusedMs.length = 0;
  admitted = 0;
  const t0 = performance.now();
  let timerAt = NaN;
  const calls = Array.from({ length: CALLS }, one);
  setTimeout(() => (timerAt = performance.now() - t0), 0);
  await Promise.all(calls);
  bedrock.destroy();
  console.log(
    `${withLease ? "lease in hand " : "nothing in hand"}: ${admitted} calls went on to the SDK, ${refusedMs.length} refused; ` +
      `a 0 ms timer ran ${timerAt.toFixed(1)} ms after the burst started; refused calls' admission p50 ${percentile(refusedMs, 0.5).toFixed(1)} ms, p99 ${percentile(refusedMs, 0.99).toFixed(1)} ms`,
  );
  process.exitCode = 0;
}

await burst(false);
await burst(true);
process.exit(0);
