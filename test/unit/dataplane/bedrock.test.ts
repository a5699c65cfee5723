import {
  BedrockRuntimeClient,
  ConverseCommand,
  ConverseStreamCommand,
  InvokeModelCommand,
  InvokeModelWithResponseStreamCommand,
} from "@aws-sdk/client-bedrock-runtime";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, it } from "vitest";
import { MeteredBedrock } from "../../../shared/dataplane/adapters/bedrock";
import { headerCaptureMiddleware } from "../../../shared/dataplane/adapters/response-headers";
import type { DecisionSource, TenantDecision } from "../../../shared/dataplane/decisions";
import { DataplaneInvalidTenantError, DataplaneRequestInvalidError, TenantThrottledError } from "../../../shared/dataplane/errors";
import { INVOCATION_SOURCES } from "../../../shared/events/invocation";
import { CollectingSink, bytes, quietLogger, trackedStream } from "./fakes";

const SONNET = "anthropic.claude-3-5-sonnet-20240620-v1:0";
const HAIKU = "anthropic.claude-3-haiku-20240307-v1:0";
const bedrock = mockClient(BedrockRuntimeClient);

const fixed = (d: Omit<TenantDecision, "tenantId">): DecisionSource => ({ get: async (tenantId) => ({ tenantId, ...d }) });

function metered(decisions?: DecisionSource) {
  const sink = new CollectingSink();
  const wrapper = new MeteredBedrock({ client: new BedrockRuntimeClient({ region: "us-west-2" }), sink, decisions, logger: quietLogger });
  return { sink, wrapper };
}

const question = { messages: [{ role: "user" as const, content: [{ text: "What is the capital of France?" }] }] };

beforeEach(() => bedrock.reset());

describe("MeteredBedrock.converse", () => {
  it("emits the reported usage with the Bedrock request id and passes the tenant as request metadata", async () => {
    bedrock.on(ConverseCommand).resolves({
      $metadata: { requestId: "915a6a04-3f83-4c70-a277-7fbf7ea546b3" },
      output: { message: { role: "assistant", content: [{ text: "Paris." }] } },
      stopReason: "end_turn",
      usage: { inputTokens: 307, outputTokens: 533, totalTokens: 840, cacheReadInputTokens: 100, cacheWriteInputTokens: 5 },
      metrics: { latencyMs: 4400 },
    });
    const { sink, wrapper } = metered();
    const out = await wrapper.converse({ modelId: SONNET, ...question, requestMetadata: { traceId: "t-1" } }, { tenantId: "tenant-b", feature: "chat" });

    expect(out.output?.message?.content?.[0]?.text).toBe("Paris.");
    const sent = bedrock.commandCalls(ConverseCommand)[0].args[0].input;
    expect(sent.requestMetadata).toEqual({ traceId: "t-1", tenantId: "tenant-b", feature: "chat" });
    expect(sink.sources).toEqual([INVOCATION_SOURCES.bedrock]);
    expect(sink.events[0]).toMatchObject({
      eventId: "915a6a04-3f83-4c70-a277-7fbf7ea546b3",
      tenantId: "tenant-b",
      feature: "chat",
      provider: "bedrock",
      modelId: SONNET,
      inputTokens: 307,
      outputTokens: 533,
      cacheReadInputTokens: 100,
      cacheWriteInputTokens: 5,
      latencyMs: 4400,
      status: "success",
    });
    expect(sink.events[0].estimated).toBeUndefined();
  });

  it("uses a random UUID when Bedrock gave no request id", async () => {
    bedrock.on(ConverseCommand).resolves({ $metadata: {}, usage: { inputTokens: 1, outputTokens: 1, totalTokens: 2 } } as never);
    const { sink, wrapper } = metered();
    await wrapper.converse({ modelId: SONNET, ...question }, { tenantId: "tenant-b" });
    expect(sink.events[0].eventId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it("downgrades to the decision's target model and records the requested one", async () => {
    bedrock.on(ConverseCommand).resolves({ $metadata: { requestId: "r-2" }, usage: { inputTokens: 10, outputTokens: 20, totalTokens: 30 } } as never);
    const { sink, wrapper } = metered(fixed({ decision: "downgrade", targetModelId: HAIKU, tier: "advanced" }));
    await wrapper.converse({ modelId: SONNET, ...question }, { tenantId: "tenant-b" });

    expect(bedrock.commandCalls(ConverseCommand)[0].args[0].input.modelId).toBe(HAIKU);
    expect(sink.events[0]).toMatchObject({ modelId: HAIKU, requestedModelId: SONNET, tier: "advanced" });
    expect(wrapper.stats.downgraded).toBe(1);
  });

  it("throws TenantThrottledError without calling the model or emitting anything", async () => {
    const { sink, wrapper } = metered(fixed({ decision: "throttle", retryAfterSeconds: 42 }));
    const error = await wrapper.converse({ modelId: SONNET, ...question }, { tenantId: "tenant-b" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TenantThrottledError);
    expect(error).toMatchObject({ tenantId: "tenant-b", retryAfterSeconds: 42 });
    expect(bedrock.commandCalls(ConverseCommand)).toHaveLength(0);
    expect(sink.events).toHaveLength(0);
    expect(wrapper.stats.throttled).toBe(1);
  });

  it("refuses a tenant id that could never be metered, before calling the model", async () => {
    const { wrapper } = metered();
    await expect(wrapper.converse({ modelId: SONNET, ...question }, { tenantId: "a#b" })).rejects.toBeInstanceOf(DataplaneInvalidTenantError);
    expect(bedrock.commandCalls(ConverseCommand)).toHaveLength(0);
  });

  it("refuses a feature name that would break the event contract, before calling the model", async () => {
    const { wrapper } = metered();
    await expect(wrapper.converse({ modelId: SONNET, ...question }, { tenantId: "tenant-b", feature: "chat#1" })).rejects.toBeInstanceOf(DataplaneRequestInvalidError);
    expect(bedrock.commandCalls(ConverseCommand)).toHaveLength(0);
  });

  it("emits nothing and rethrows when the call itself fails", async () => {
    bedrock.on(ConverseCommand).rejects(new Error("ValidationException"));
    const { sink, wrapper } = metered();
    await expect(wrapper.converse({ modelId: SONNET, ...question }, { tenantId: "tenant-b" })).rejects.toThrow("ValidationException");
    expect(sink.events).toHaveLength(0);
  });
});

describe("MeteredBedrock.converseStream", () => {
  const streamEvents = [
    { messageStart: { role: "assistant" as const } },
    { contentBlockDelta: { contentBlockIndex: 0, delta: { text: "The capital " } } },
    { contentBlockDelta: { contentBlockIndex: 0, delta: { text: "is Paris." } } },
    { contentBlockStop: { contentBlockIndex: 0 } },
    { messageStop: { stopReason: "end_turn" as const } },
    { metadata: { usage: { inputTokens: 14, outputTokens: 6, totalTokens: 20 }, metrics: { latencyMs: 812 } } },
  ];

  it("passes every stream event through and emits the metadata usage when the stream ends", async () => {
    const { stream } = trackedStream(streamEvents);
    bedrock.on(ConverseStreamCommand).resolves({ $metadata: { requestId: "req-stream-1" }, stream } as never);
    const { sink, wrapper } = metered();
    const out = await wrapper.converseStream({ modelId: SONNET, ...question }, { tenantId: "tenant-c" });
    expect(bedrock.commandCalls(ConverseStreamCommand)[0].args[0].input.requestMetadata).toEqual({ tenantId: "tenant-c" });

    const seen = [];
    for await (const e of out.stream!) seen.push(e);
    expect(seen).toEqual(streamEvents);
    expect(sink.events).toHaveLength(1);
    expect(sink.events[0]).toMatchObject({ eventId: "req-stream-1", inputTokens: 14, outputTokens: 6, latencyMs: 812, status: "success" });
    expect(sink.events[0].estimated).toBeUndefined();
  });

  it("emits what was consumed, estimated and marked aborted, when the consumer breaks out midway", async () => {
    const { stream, state } = trackedStream(streamEvents);
    bedrock.on(ConverseStreamCommand).resolves({ $metadata: { requestId: "req-stream-2" }, stream } as never);
    const { sink, wrapper } = metered();
    const out = await wrapper.converseStream({ modelId: SONNET, ...question }, { tenantId: "tenant-c" });
    for await (const e of out.stream!) {
      if (e.contentBlockDelta) break; // the user closed the chat after the first words
    }
    expect(state.returned).toBe(true); // the underlying stream was closed too
    expect(sink.events).toHaveLength(1);
    expect(sink.events[0]).toMatchObject({
      eventId: "req-stream-2",
      status: "aborted",
      estimated: true,
      outputTokens: Math.ceil("The capital ".length / 4),
      inputTokens: Math.ceil("What is the capital of France?".length / 4),
    });
  });

  it("emits with status error when the stream fails midway, and rethrows to the consumer", async () => {
    const { stream } = trackedStream(streamEvents, 3);
    bedrock.on(ConverseStreamCommand).resolves({ $metadata: { requestId: "req-stream-3" }, stream } as never);
    const { sink, wrapper } = metered();
    const out = await wrapper.converseStream({ modelId: SONNET, ...question }, { tenantId: "tenant-c" });
    await expect(async () => {
      for await (const _ of out.stream!) void _;
    }).rejects.toThrow("stream reset");
    expect(sink.events).toHaveLength(1);
    expect(sink.events[0]).toMatchObject({ status: "error", estimated: true, outputTokens: Math.ceil("The capital is Paris.".length / 4) });
  });
});

describe("MeteredBedrock.invokeModel", () => {
  const claudeBody = { anthropic_version: "bedrock-2023-05-31", max_tokens: 512, messages: [{ role: "user", content: "Hello" }] };

  it("falls back to the model's own body usage when headers are not visible (mocked send)", async () => {
    bedrock.on(InvokeModelCommand).resolves({
      $metadata: { requestId: "req-invoke-1" },
      contentType: "application/json",
      body: bytes({ id: "msg_1", type: "message", content: [{ type: "text", text: "Hi" }], usage: { input_tokens: 8, output_tokens: 3 } }),
    } as never);
    const { sink, wrapper } = metered();
    await wrapper.invokeModel({ modelId: SONNET, contentType: "application/json", body: JSON.stringify(claudeBody) }, { tenantId: "tenant-b" });
    expect(sink.events[0]).toMatchObject({ eventId: "req-invoke-1", inputTokens: 8, outputTokens: 3, status: "success" });
    expect(sink.events[0].estimated).toBeUndefined();
  });

  it("estimates, and marks estimated, when neither headers nor body report usage", async () => {
    bedrock.on(InvokeModelCommand).resolves({ $metadata: { requestId: "req-invoke-2" }, body: bytes({ outputs: [{ text: "12345678" }] }) } as never);
    const { sink, wrapper } = metered();
    await wrapper.invokeModel({ modelId: "mistral.mistral-large-2402-v1:0", body: JSON.stringify({ prompt: "abcdefgh" }) }, { tenantId: "tenant-b" });
    expect(sink.events[0]).toMatchObject({ inputTokens: 2, outputTokens: 2, estimated: true });
  });
});

describe("header capture middleware", () => {
  it("hands the raw response headers (lower-cased) to the callback and returns the result unchanged", async () => {
    let got: Record<string, string> = {};
    const result = { output: { ok: 1 }, response: { statusCode: 200, headers: { "X-Amzn-Bedrock-Input-Token-Count": "5" } } };
    const handler = headerCaptureMiddleware((h) => (got = h))(async () => result);
    await expect(handler({})).resolves.toBe(result);
    expect(got).toEqual({ "x-amzn-bedrock-input-token-count": "5" });
  });

  it("captures headers of a failed call from the error's $response", async () => {
    let got: Record<string, string> = {};
    const error = Object.assign(new Error("throttled"), { $response: { headers: { "x-amzn-requestid": "r" } } });
    const handler = headerCaptureMiddleware((h) => (got = h))(async () => {
      throw error;
    });
    await expect(handler({})).rejects.toBe(error);
    expect(got).toEqual({ "x-amzn-requestid": "r" });
  });
});

describe("MeteredBedrock.invokeModelWithResponseStream", () => {
  const chunks = [
    { type: "message_start", message: { id: "m", usage: { input_tokens: 25, output_tokens: 1 } } },
    { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: "Bonjour" } },
    { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: " tout le monde" } },
    { type: "message_delta", delta: { stop_reason: "end_turn" }, usage: { output_tokens: 5 } },
    {
      type: "message_stop",
      "amazon-bedrock-invocationMetrics": { inputTokenCount: 25, outputTokenCount: 5, invocationLatency: 640, firstByteLatency: 200 },
    },
  ].map((c) => ({ chunk: { bytes: bytes(c) } }));

  it("emits the invocationMetrics of the last chunk", async () => {
    const { stream } = trackedStream(chunks);
    bedrock.on(InvokeModelWithResponseStreamCommand).resolves({ $metadata: { requestId: "req-ims-1" }, body: stream } as never);
    const { sink, wrapper } = metered();
    const out = await wrapper.invokeModelWithResponseStream({ modelId: SONNET, body: JSON.stringify({ messages: [] }) }, { tenantId: "tenant-b" });
    let n = 0;
    for await (const _ of out.body!) n++;
    expect(n).toBe(chunks.length);
    expect(sink.events[0]).toMatchObject({ eventId: "req-ims-1", inputTokens: 25, outputTokens: 5, latencyMs: 640, status: "success" });
    expect(sink.events[0].estimated).toBeUndefined();
  });

  it("keeps the exact input count and estimates output when abandoned before the metrics", async () => {
    const { stream, state } = trackedStream(chunks);
    bedrock.on(InvokeModelWithResponseStreamCommand).resolves({ $metadata: { requestId: "req-ims-2" }, body: stream } as never);
    const { sink, wrapper } = metered();
    const out = await wrapper.invokeModelWithResponseStream({ modelId: SONNET, body: "{}" }, { tenantId: "tenant-b" });
    let n = 0;
    for await (const _ of out.body!) if (++n === 2) break;
    expect(state.returned).toBe(true);
    expect(sink.events[0]).toMatchObject({ status: "aborted", inputTokens: 25, outputTokens: Math.ceil("Bonjour".length / 4), estimated: true });
  });
});
