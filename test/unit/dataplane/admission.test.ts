import { BedrockRuntimeClient, ConverseCommand, InvokeModelCommand } from "@aws-sdk/client-bedrock-runtime";
import { SageMakerRuntimeClient, InvokeEndpointCommand } from "@aws-sdk/client-sagemaker-runtime";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, it } from "vitest";
import { MemoryBudgetStore, MemoryPoolStore, MemoryUsageTruth, StaticPolicySource } from "../../../shared/admission/adapters/memory";
import { parseAdmissionConfig } from "../../../shared/admission/model";
import { Admission } from "../../../shared/admission/service";
import { AdmissionGate } from "../../../shared/dataplane/admission";
import { MeteredBedrock } from "../../../shared/dataplane/adapters/bedrock";
import { MeteredSageMaker } from "../../../shared/dataplane/adapters/sagemaker";
import { DataplaneConfigurationError, DataplaneRequestInvalidError, TenantThrottledError } from "../../../shared/dataplane/errors";
import { PriceCatalog } from "../../../shared/pricing/catalog";
import { DEFAULT_TIERS, type TierPolicy } from "../../../shared/quota/tiers";
import { CollectingSink, bytes, quietLogger } from "./fakes";

const SONNET = "anthropic.claude-3-5-sonnet-20240620-v1:0";
const HAIKU = "anthropic.claude-3-haiku-20240307-v1:0";
const bedrock = mockClient(BedrockRuntimeClient);
const sagemaker = mockClient(SageMakerRuntimeClient);
beforeEach(() => {
  bedrock.reset();
  sagemaker.reset();
});

function gate(policy: Partial<TierPolicy>, opts: { requireMaxTokens?: boolean } = {}) {
  const budgets = new MemoryBudgetStore();
  const admission = new Admission({
    config: parseAdmissionConfig({ tiers: { basic: { mode: "hard", leaseTokens: 1, defaultMaxTokens: 300 }, advanced: { mode: "hard", leaseTokens: 1, defaultMaxTokens: 300 } } }),
    budgets,
    pools: new MemoryPoolStore(),
    truth: new MemoryUsageTruth(),
    policies: new StaticPolicySource({}, { ...DEFAULT_TIERS.basic, ...policy } as TierPolicy),
  });
  return { budgets, admission, gate: new AdmissionGate({ admission, requireMaxTokens: opts.requireMaxTokens }) };
}

const month = new Date().toISOString().slice(0, 7);
const ask = (maxTokens?: number) => ({
  modelId: SONNET,
  messages: [{ role: "user" as const, content: [{ text: "Summarise the invoice." }] }],
  ...(maxTokens ? { inferenceConfig: { maxTokens } } : {}),
});

describe("MeteredBedrock with admission", () => {
  it("reserves before the call, writes the tier's max_tokens into a request without one, and settles with the real usage", async () => {
    const g = gate({ monthlyTokens: 100_000 });
    bedrock.on(ConverseCommand).resolves({ $metadata: { requestId: "r-1" }, output: { message: { role: "assistant", content: [{ text: "ok" }] } }, usage: { inputTokens: 20, outputTokens: 5, totalTokens: 25 } });
    const w = new MeteredBedrock({ client: new BedrockRuntimeClient({ region: "us-west-2" }), sink: new CollectingSink(), admission: g.gate, logger: quietLogger });
    await w.converse(ask(), { tenantId: "t1" });
    expect(bedrock.commandCalls(ConverseCommand)[0].args[0].input.inferenceConfig?.maxTokens).toBe(300);
    await new Promise((r) => setTimeout(r, 20));
    expect(await g.budgets.read({ tenantId: "t1", month })).toMatchObject({ usedTokens: 25, remainingTokens: 100_000 - 25, grants: [] });
  });

  it("refuses an exhausted Basic tenant with TenantThrottledError before calling the model", async () => {
    const g = gate({ monthlyTokens: 100 });
    const w = new MeteredBedrock({ client: new BedrockRuntimeClient({ region: "us-west-2" }), sink: new CollectingSink(), admission: g.gate, logger: quietLogger });
    const error = await w.converse(ask(500), { tenantId: "t1" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TenantThrottledError);
    expect((error as TenantThrottledError).retryAfterSeconds).toBeGreaterThan(0);
    expect(bedrock.commandCalls(ConverseCommand)).toHaveLength(0);
    expect(w.stats.throttled).toBe(1);
  });

  it("downgrades an exhausted Advanced tenant to the tier's model and records what was asked for", async () => {
    const g = gate({ ...DEFAULT_TIERS.advanced, monthlyTokens: 100 });
    bedrock.on(ConverseCommand).resolves({ $metadata: { requestId: "r-2" }, output: { message: { role: "assistant", content: [{ text: "ok" }] } }, usage: { inputTokens: 20, outputTokens: 5, totalTokens: 25 } });
    const sink = new CollectingSink();
    const w = new MeteredBedrock({ client: new BedrockRuntimeClient({ region: "us-west-2" }), sink, admission: g.gate, logger: quietLogger });
    await w.converse(ask(500), { tenantId: "t2" });
    expect(bedrock.commandCalls(ConverseCommand)[0].args[0].input.modelId).toBe(HAIKU);
    expect(sink.events[0]).toMatchObject({ modelId: HAIKU, requestedModelId: SONNET });
    expect(w.stats.downgraded).toBe(1);
  });

  it("gives the reservation back when the call fails", async () => {
    const g = gate({ monthlyTokens: 100_000 });
    bedrock.on(ConverseCommand).rejects(new Error("ServiceUnavailable"));
    const w = new MeteredBedrock({ client: new BedrockRuntimeClient({ region: "us-west-2" }), sink: new CollectingSink(), admission: g.gate, logger: quietLogger });
    await expect(w.converse(ask(500), { tenantId: "t1" })).rejects.toThrow("ServiceUnavailable");
    await new Promise((r) => setTimeout(r, 20));
    expect(await g.budgets.read({ tenantId: "t1", month })).toMatchObject({ usedTokens: 0, remainingTokens: 100_000, grants: [] });
  });

  it("InvokeModel: reads max_tokens from the family's body, or refuses a body it cannot bound when max_tokens is required", async () => {
    const g = gate({ monthlyTokens: 100_000 }, { requireMaxTokens: true });
    const w = new MeteredBedrock({ client: new BedrockRuntimeClient({ region: "us-west-2" }), sink: new CollectingSink(), admission: g.gate, logger: quietLogger });
    await expect(w.invokeModel({ modelId: SONNET, body: JSON.stringify({ messages: [] }) }, { tenantId: "t1" })).rejects.toBeInstanceOf(DataplaneRequestInvalidError);
    bedrock.on(InvokeModelCommand).resolves({ $metadata: { requestId: "r-3" }, body: bytes({ usage: { input_tokens: 10, output_tokens: 4 }, content: [] }) as never });
    await w.invokeModel({ modelId: SONNET, body: JSON.stringify({ max_tokens: 64, messages: [{ role: "user", content: "hi" }] }) }, { tenantId: "t1" });
    await new Promise((r) => setTimeout(r, 20));
    expect((await g.budgets.read({ tenantId: "t1", month }))?.usedTokens).toBe(14);
  });
});

describe("MeteredSageMaker with admission", () => {
  it("adds max_new_tokens to an LMI body without one and refuses past the budget", async () => {
    const g = gate({ monthlyTokens: 400 });
    sagemaker.on(InvokeEndpointCommand).resolves({ $metadata: { requestId: "s-1" }, Body: bytes({ generated_text: "x", details: { generated_tokens: 3, prompt_tokens: 9 } }) as never });
    const w = new MeteredSageMaker({ client: new SageMakerRuntimeClient({ region: "us-west-2" }), sink: new CollectingSink(), admission: g.gate, logger: quietLogger });
    await w.invokeEndpoint({ EndpointName: "llama31-70b-lora", ContentType: "application/json", Body: JSON.stringify({ inputs: "hello" }) }, { tenantId: "t3" });
    const body = sagemaker.commandCalls(InvokeEndpointCommand)[0].args[0].input.Body;
    const sent = JSON.parse(typeof body === "string" ? body : new TextDecoder().decode(body as Uint8Array));
    expect(sent.parameters.max_new_tokens).toBe(300);
    await expect(
      w.invokeEndpoint({ EndpointName: "llama31-70b-lora", ContentType: "application/json", Body: JSON.stringify({ inputs: "hello", parameters: { max_new_tokens: 390 } }) }, { tenantId: "t3" }),
    ).rejects.toBeInstanceOf(TenantThrottledError);
  });
});

describe("AdmissionGate: a tier's calls to the global profile (profileScopes)", () => {
  const SONNET45 = "anthropic.claude-sonnet-4-5-20250929-v1:0"; // the catalog has a global price for it
  const tiers: Record<string, TierPolicy> = { prem: DEFAULT_TIERS.premium, basic: { ...DEFAULT_TIERS.basic, monthlyTokens: 1_000_000 } };
  function profiledGate(opts: { prices?: PriceCatalog; serviceTiers?: Record<string, "priority" | "flex"> } = {}) {
    const admission = new Admission({
      config: parseAdmissionConfig({}),
      budgets: new MemoryBudgetStore(),
      truth: new MemoryUsageTruth(),
      policies: new StaticPolicySource(tiers),
    });
    const tierOf = async (tenantId: string) => tiers[tenantId].tier;
    return new AdmissionGate({ admission, profileScopes: { premium: "global" }, tierOf, prices: opts.prices, serviceTiers: opts.serviceTiers });
  }
  const converse = async (gate: AdmissionGate, tenantId: string, modelId: string) => {
    bedrock.on(ConverseCommand).resolves({ $metadata: { requestId: `r-${tenantId}-${modelId}` }, output: { message: { role: "assistant", content: [{ text: "ok" }] } }, usage: { inputTokens: 20, outputTokens: 5, totalTokens: 25 } });
    const sink = new CollectingSink();
    const w = new MeteredBedrock({ client: new BedrockRuntimeClient({ region: "us-west-2" }), sink, admission: gate, logger: quietLogger });
    await w.converse({ ...ask(100), modelId }, { tenantId });
    return { sent: bedrock.commandCalls(ConverseCommand).at(-1)!.args[0].input.modelId, event: sink.events[0] };
  };

  it("sends a Premium call of a model with a global price to its global. profile, priced as global; other tiers stay", async () => {
    const gate = profiledGate();
    const prem = await converse(gate, "prem", SONNET45);
    expect(prem.sent).toBe(`global.${SONNET45}`);
    // the usage event names the profile, and is not a downgrade
    expect(prem.event).toMatchObject({ modelId: `global.${SONNET45}` });
    expect(prem.event.requestedModelId).toBeUndefined();
    expect(gate.prices.find(prem.sent!, gate.region, new Date().toISOString())?.scope).toBe("global");

    const basic = await converse(gate, "basic", SONNET45);
    expect(basic.sent).toBe(SONNET45);
  });

  it("keeps a model whose catalog row is not of global scope in-region (its '*' row says nothing of a profile)", async () => {
    const gate = profiledGate();
    expect(await converse(gate, "prem", SONNET)).toMatchObject({ sent: SONNET });
  });

  it("moves it once the catalog has a global row for it; a '*' row is not enough", async () => {
    const row = { modelId: SONNET, region: "*", effectiveFrom: "2024-01-01", inputPer1k: 0.003, outputPer1k: 0.015 };
    const star = new PriceCatalog([row]);
    expect(star.find(`global.${SONNET}`, "us-west-2", new Date().toISOString())).toBeDefined(); // priced, but no profile listed
    expect(await converse(profiledGate({ prices: star }), "prem", SONNET)).toMatchObject({ sent: SONNET });
    const global = new PriceCatalog([row, { ...row, scope: "global" }]);
    expect(await converse(profiledGate({ prices: global }), "prem", SONNET)).toMatchObject({ sent: `global.${SONNET}` });
  });

  it("asks for the price of the tier's service tier: no priority row for the global profile, no move", async () => {
    expect(await converse(profiledGate({ serviceTiers: { premium: "priority" } }), "prem", SONNET45)).toMatchObject({ sent: SONNET45 });
  });

  it("a call moved to the profile and then downgraded records the model the caller asked for", async () => {
    const admission = new Admission({
      config: parseAdmissionConfig({ tiers: { advanced: { mode: "hard", leaseTokens: 1 } } }),
      budgets: new MemoryBudgetStore(),
      truth: new MemoryUsageTruth(),
      policies: new StaticPolicySource({}, { ...DEFAULT_TIERS.advanced, monthlyTokens: 10 }),
    });
    const gate = new AdmissionGate({ admission, profileScopes: { advanced: "global" }, tierOf: async () => "advanced" });
    const out = await converse(gate, "adv", SONNET45);
    expect(out.sent).toBe(DEFAULT_TIERS.advanced.downgradeModelId);
    expect(out.event).toMatchObject({ modelId: DEFAULT_TIERS.advanced.downgradeModelId, requestedModelId: SONNET45 });
  });

  it("refuses profileScopes without a way to know the tenant's tier", () => {
    const admission = new Admission({ config: parseAdmissionConfig({}), budgets: new MemoryBudgetStore(), truth: new MemoryUsageTruth(), policies: new StaticPolicySource() });
    expect(() => new AdmissionGate({ admission, profileScopes: { premium: "global" } })).toThrow(DataplaneConfigurationError);
  });
});
