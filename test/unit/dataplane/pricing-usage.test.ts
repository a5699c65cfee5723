import { BedrockRuntimeClient, ConverseCommand, InvokeModelCommand } from "@aws-sdk/client-bedrock-runtime";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, it } from "vitest";
import { MeteredBedrock } from "../../../shared/dataplane/adapters/bedrock";
import { parseServerReply } from "../../../shared/dataplane/sagemaker-usage";
import { callFactsFromConverse, resolveUsage, usageFromBedrockBody, usageFromConverse, usageFromHeaders } from "../../../shared/dataplane/usage";
import { charsPerTokenEstimate } from "../../../shared/dataplane/ports";
import { parseInvocationDetail } from "../../../shared/events/invocation";
import { parseInvocationLogRecord } from "../../../shared/invocation-log/parse";
import { trustMap } from "../../../shared/invocation-log/tenant-binding";
import { converseRecord } from "../invocation-log/samples";
import { CollectingSink, bytes, quietLogger } from "./fakes";

/**
 * Usage the price depends on, from response shapes as Bedrock and model servers return them
 * (AWS API reference: Converse TokenUsage/cacheDetails/serviceTier/trace, InvokeModel
 * X-Amzn-Bedrock-Service-Tier; Nova, Titan, Anthropic and OpenAI-compatible bodies).
 */
const NOVA_INVOKE_BODY = {
  output: { message: { role: "assistant", content: [{ text: "Here is the summary." }] } },
  stopReason: "end_turn",
  usage: { inputTokens: 15, outputTokens: 120, totalTokens: 1535, cacheReadInputTokenCount: 1400, cacheWriteInputTokenCount: 0 },
};
const TITAN_EMBED_V2_BODY = { embedding: [0.0123, -0.0456, 0.0789], embeddingsByType: { float: [0.0123, -0.0456, 0.0789] }, inputTextTokenCount: 7 };
const TITAN_EMBED_V1_BODY = { embedding: [0.5, 0.25], inputTextTokenCount: 5 };
const NOVA_EMBED_BODY = { embeddings: [{ embeddingType: "TEXT", embedding: [0.1, 0.2, 0.3] }] };
const COHERE_EMBED_BODY = { embeddings: [[0.1, 0.2]], id: "8b1f", response_type: "embeddings_floats", texts: ["hello world"] };
const ANTHROPIC_1H_BODY = {
  id: "msg_bdrk_01",
  type: "message",
  role: "assistant",
  content: [{ type: "text", text: "Done." }],
  usage: {
    input_tokens: 12,
    cache_creation_input_tokens: 3000,
    cache_read_input_tokens: 0,
    cache_creation: { ephemeral_5m_input_tokens: 1000, ephemeral_1h_input_tokens: 2000 },
    output_tokens: 40,
  },
};
const CONVERSE_ROUTED = {
  $metadata: { requestId: "0b6f7d3c-1d8e-4a5b-9f00-3a2f5e8d1c11" },
  output: { message: { role: "assistant", content: [{ text: "Paris." }] } },
  stopReason: "end_turn",
  usage: {
    inputTokens: 20,
    outputTokens: 8,
    totalTokens: 3528,
    cacheReadInputTokens: 0,
    cacheWriteInputTokens: 3500,
    cacheDetails: [
      { ttl: "1h", inputTokens: 2500 },
      { ttl: "5m", inputTokens: 1000 },
    ],
  },
  metrics: { latencyMs: 610 },
  trace: { promptRouter: { invokedModelId: "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-haiku-4-5-20251001-v1:0" } },
  serviceTier: { type: "priority" },
};
const VLLM_CACHED = {
  id: "chatcmpl-4f2a",
  object: "chat.completion",
  model: "meta-llama/Llama-3.1-70B-Instruct",
  choices: [{ index: 0, message: { role: "assistant", content: "Yes." }, finish_reason: "stop" }],
  usage: { prompt_tokens: 1200, completion_tokens: 50, total_tokens: 1250, prompt_tokens_details: { cached_tokens: 1024 } },
};

describe("usage extraction for pricing", () => {
  it("keeps Nova's InvokeModel cache counts (cacheReadInputTokenCount / cacheWriteInputTokenCount)", () => {
    expect(usageFromBedrockBody(NOVA_INVOKE_BODY)).toEqual({ inputTokens: 15, outputTokens: 120, cacheReadInputTokens: 1400, cacheWriteInputTokens: 0 });
  });

  it("reads embedding responses as input only (Titan v1/v2 counts, Nova and Cohere: no output)", () => {
    expect(usageFromBedrockBody(TITAN_EMBED_V2_BODY)).toEqual({ inputTokens: 7, outputTokens: 0 });
    expect(usageFromBedrockBody(TITAN_EMBED_V1_BODY)).toEqual({ inputTokens: 5, outputTokens: 0 });
    expect(usageFromBedrockBody(NOVA_EMBED_BODY)).toEqual({ outputTokens: 0 });
    expect(usageFromBedrockBody(COHERE_EMBED_BODY)).toEqual({ outputTokens: 0 });
  });

  it("splits Anthropic's 1-hour cache writes out of all writes", () => {
    expect(usageFromBedrockBody(ANTHROPIC_1H_BODY)).toEqual({
      inputTokens: 12,
      outputTokens: 40,
      cacheReadInputTokens: 0,
      cacheWriteInputTokens: 3000,
      cacheWrite1hInputTokens: 2000,
    });
  });

  it("reads Converse cacheDetails, the service tier and the prompt router's invoked model", () => {
    expect(usageFromConverse(CONVERSE_ROUTED.usage)).toMatchObject({ cacheWriteInputTokens: 3500, cacheWrite1hInputTokens: 2500 });
    expect(callFactsFromConverse(CONVERSE_ROUTED)).toEqual({ serviceTier: "priority", invokedModelId: CONVERSE_ROUTED.trace.promptRouter.invokedModelId });
    expect(callFactsFromConverse({ serviceTier: { type: "turbo" } })).toEqual({});
  });

  it("reads the service tier of an InvokeModel response header", () => {
    expect(usageFromHeaders({ "x-amzn-bedrock-input-token-count": "10", "x-amzn-bedrock-output-token-count": "2", "X-Amzn-Bedrock-Service-Tier": "flex" })).toEqual({
      inputTokens: 10,
      outputTokens: 2,
      serviceTier: "flex",
    });
  });

  it("splits OpenAI-style cached prompt tokens out of the input (SageMaker vLLM / LMI)", () => {
    expect(parseServerReply(VLLM_CACHED).reported).toEqual({ inputTokens: 176, outputTokens: 50, cacheReadInputTokens: 1024 });
    expect(parseServerReply({ ...VLLM_CACHED, usage: { prompt_tokens: 10, completion_tokens: 2 } }).reported).toEqual({ inputTokens: 10, outputTokens: 2 });
  });

  it("never lets a 1h count exceed all writes", () => {
    const u = resolveUsage(
      { inputTokens: 1, outputTokens: 1, cacheWriteInputTokens: 10, cacheWrite1hInputTokens: 50 },
      { promptText: () => "", outputText: () => "", estimator: charsPerTokenEstimate },
    );
    expect(u.cacheWrite1hInputTokens).toBe(10);
  });
});

describe("contract: the new optional pricing fields", () => {
  const base = { eventId: "e-1", tenantId: "t-1", occurredAt: "2026-12-01T10:00:00Z", provider: "bedrock", modelId: "amazon.nova-pro-v1:0", inputTokens: 1, outputTokens: 1 };

  it("keeps old events valid and accepts the new fields", () => {
    expect(parseInvocationDetail(base)).toEqual(base);
    const full = { ...base, cacheWriteInputTokens: 5, cacheWrite1hInputTokens: 5, serviceTier: "flex", invokedModelId: "us.amazon.nova-pro-v1:0", region: "eu-central-1" };
    expect(parseInvocationDetail(full)).toEqual(full);
  });

  it("rejects a 1h count above all writes, an unknown tier and a malformed region", () => {
    expect(() => parseInvocationDetail({ ...base, cacheWriteInputTokens: 1, cacheWrite1hInputTokens: 2 })).toThrow(/cacheWrite1hInputTokens/);
    expect(() => parseInvocationDetail({ ...base, serviceTier: "turbo" })).toThrow(/serviceTier/);
    expect(() => parseInvocationDetail({ ...base, region: "Oregon" })).toThrow(/region/);
  });
});

describe("wrappers and the invocation log record what sets the price", () => {
  const bedrock = mockClient(BedrockRuntimeClient);
  beforeEach(() => bedrock.reset());
  const metered = () => {
    const sink = new CollectingSink();
    return { sink, wrapper: new MeteredBedrock({ client: new BedrockRuntimeClient({ region: "eu-west-1" }), sink, logger: quietLogger }) };
  };

  it("Converse through a prompt router: invoked model, tier, 1h writes and the client's region", async () => {
    bedrock.on(ConverseCommand).resolves(CONVERSE_ROUTED as never);
    const { sink, wrapper } = metered();
    await wrapper.converse(
      { modelId: "arn:aws:bedrock:us-east-1:123456789012:default-prompt-router/anthropic.claude:1", messages: [{ role: "user", content: [{ text: "Capital of France?" }] }] },
      { tenantId: "tenant-b" },
    );
    expect(sink.events[0]).toMatchObject({
      cacheWriteInputTokens: 3500,
      cacheWrite1hInputTokens: 2500,
      serviceTier: "priority",
      invokedModelId: CONVERSE_ROUTED.trace.promptRouter.invokedModelId,
      region: "eu-west-1",
    });
  });

  it("InvokeModel: the served tier (X-Amzn-Bedrock-Service-Tier, parsed by the SDK) and Nova's cache counts", async () => {
    bedrock.on(InvokeModelCommand).resolves({ $metadata: { requestId: "req-nova-1" }, body: bytes(NOVA_INVOKE_BODY), serviceTier: "flex" } as never);
    const { sink, wrapper } = metered();
    await wrapper.invokeModel({ modelId: "us.amazon.nova-pro-v1:0", body: JSON.stringify({ messages: [] }) }, { tenantId: "tenant-b" });
    expect(sink.events[0]).toMatchObject({ inputTokens: 15, outputTokens: 120, cacheReadInputTokens: 1400, serviceTier: "flex" });
  });

  it("invocation log: region, and tier, router and 1h writes of a Converse body", () => {
    const record = converseRecord({
      region: "us-east-1",
      output: {
        outputContentType: "application/json",
        outputBodyJson: { usage: CONVERSE_ROUTED.usage, serviceTier: { type: "flex" }, trace: CONVERSE_ROUTED.trace },
        outputTokenCount: 8,
      },
      input: { inputTokenCount: 20, cacheReadInputTokenCount: 0, cacheWriteInputTokenCount: 3500 },
    });
    const parsed = parseInvocationLogRecord(record, { binding: trustMap({ "*": ["*"] }) });
    expect(parsed).toMatchObject({
      kind: "event",
      event: { region: "us-east-1", serviceTier: "flex", cacheWrite1hInputTokens: 2500, invokedModelId: CONVERSE_ROUTED.trace.promptRouter.invokedModelId },
    });
  });
});
