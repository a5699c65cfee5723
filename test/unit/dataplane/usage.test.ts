import { describe, expect, it } from "vitest";
import { charsPerTokenEstimate } from "../../../shared/dataplane/ports";
import { ServerStreamTally, parseServerReply } from "../../../shared/dataplane/sagemaker-usage";
import {
  resolveUsage,
  textOfBedrockChunk,
  usageFromAnthropicStreamEvent,
  usageFromBedrockBody,
  usageFromHeaders,
  usageFromInvocationMetrics,
} from "../../../shared/dataplane/usage";

const enc = new TextEncoder();

describe("Bedrock usage extraction", () => {
  it("reads token counts from InvokeModel response headers, any case", () => {
    expect(
      usageFromHeaders({
        "X-Amzn-Bedrock-Input-Token-Count": "13",
        "x-amzn-bedrock-output-token-count": "300",
        "x-amzn-bedrock-invocation-latency": "14244",
        "x-amzn-bedrock-cache-read-input-token-count": "7",
      }),
    ).toEqual({ inputTokens: 13, outputTokens: 300, latencyMs: 14244, cacheReadInputTokens: 7 });
  });

  it("ignores non-numeric header values instead of counting NaN", () => {
    expect(usageFromHeaders({ "x-amzn-bedrock-input-token-count": "abc", "x-amzn-bedrock-output-token-count": "-1" })).toEqual({});
  });

  it("reads amazon-bedrock-invocationMetrics of the last stream chunk", () => {
    const chunk = {
      type: "message_stop",
      "amazon-bedrock-invocationMetrics": { inputTokenCount: 307, outputTokenCount: 533, invocationLatency: 4400, firstByteLatency: 300 },
    };
    expect(usageFromInvocationMetrics(chunk)).toEqual({ inputTokens: 307, outputTokens: 533, latencyMs: 4400 });
    expect(usageFromInvocationMetrics({ type: "content_block_delta" })).toBeUndefined();
  });

  it.each([
    ["anthropic messages", { usage: { input_tokens: 10, output_tokens: 20, cache_read_input_tokens: 4 } }, { inputTokens: 10, outputTokens: 20, cacheReadInputTokens: 4 }],
    ["amazon nova", { usage: { inputTokens: 11, outputTokens: 21 } }, { inputTokens: 11, outputTokens: 21 }],
    ["meta llama", { generation: "hi", prompt_token_count: 12, generation_token_count: 22 }, { inputTokens: 12, outputTokens: 22 }],
    ["amazon titan", { inputTextTokenCount: 13, results: [{ tokenCount: 10 }, { tokenCount: 13 }] }, { inputTokens: 13, outputTokens: 23 }],
    ["cohere", { meta: { billed_units: { input_tokens: 14, output_tokens: 24 } } }, { inputTokens: 14, outputTokens: 24 }],
    ["mistral (no usage)", { outputs: [{ text: "x" }] }, {}],
  ])("reads the %s body usage", (_name, body, expected) => {
    expect(usageFromBedrockBody(body)).toEqual(expected);
  });

  it("keeps Anthropic in-band stream usage (exact input before the stream ends)", () => {
    expect(usageFromAnthropicStreamEvent({ type: "message_start", message: { usage: { input_tokens: 25, output_tokens: 1 } } })).toEqual({ inputTokens: 25 });
    expect(usageFromAnthropicStreamEvent({ type: "message_delta", usage: { output_tokens: 15 } })).toEqual({ outputTokens: 15 });
  });

  it("extracts streamed text of several model families", () => {
    expect(textOfBedrockChunk({ type: "content_block_delta", delta: { type: "text_delta", text: "Hel" } })).toBe("Hel");
    expect(textOfBedrockChunk({ generation: "lo" })).toBe("lo");
    expect(textOfBedrockChunk({ outputText: "!" })).toBe("!");
    expect(textOfBedrockChunk({ outputs: [{ text: "a" }, { text: "b" }] })).toBe("ab");
  });
});

describe("resolveUsage", () => {
  const fallback = { promptText: () => "x".repeat(40), outputText: () => "y".repeat(8), estimator: charsPerTokenEstimate };

  it("is not estimated when the server reported both counts", () => {
    expect(resolveUsage({ inputTokens: 3, outputTokens: 4 }, fallback)).toEqual({ inputTokens: 3, outputTokens: 4, estimated: false });
  });

  it("estimates only what is missing, and says so", () => {
    expect(resolveUsage({ inputTokens: 3 }, fallback)).toEqual({ inputTokens: 3, outputTokens: 2, estimated: true });
    expect(resolveUsage({}, fallback)).toEqual({ inputTokens: 10, outputTokens: 2, estimated: true });
  });

  it("uses an injected prompt count as exact", () => {
    expect(resolveUsage({ outputTokens: 4 }, { ...fallback, promptTokens: 99 })).toEqual({ inputTokens: 99, outputTokens: 4, estimated: false });
  });
});

describe("SageMaker server replies", () => {
  it("reads LMI details.generated_tokens and prompt_tokens", () => {
    expect(parseServerReply({ generated_text: "Paris", details: { finish_reason: "eos_token", generated_tokens: 2, prompt_tokens: 9 } })).toEqual({
      reported: { inputTokens: 9, outputTokens: 2 },
      outputText: "Paris",
    });
  });

  it("reads TGI arrays, counting prefill tokens as the prompt", () => {
    const reply = parseServerReply([{ generated_text: "ok", details: { generated_tokens: 1, prefill: [{ id: 1 }, { id: 2 }, { id: 3 }] } }]);
    expect(reply.reported).toEqual({ inputTokens: 3, outputTokens: 1 });
  });

  it("reads chat-completions usage", () => {
    const reply = parseServerReply({
      choices: [{ index: 0, message: { role: "assistant", content: "Hello" } }],
      usage: { prompt_tokens: 307, completion_tokens: 533, total_tokens: 840 },
    });
    expect(reply).toEqual({ reported: { inputTokens: 307, outputTokens: 533 }, outputText: "Hello" });
  });

  it("reports nothing for a bare generated_text (the wrapper then estimates)", () => {
    expect(parseServerReply({ generated_text: "four words of text" })).toEqual({ reported: {}, outputText: "four words of text" });
  });

  it("re-assembles LMI JSON lines split across payload parts and counts token lines", () => {
    const tally = new ServerStreamTally();
    const stream =
      '{"token":{"id":1,"text":"Hel","log_prob":-0.1},"generated_text":null,"details":null}\n' +
      '{"token":{"id":2,"text":"lo","log_prob":-0.1},"generated_text":null,"details":null}\n' +
      '{"token":{"id":3,"text":"!","log_prob":-0.1},"generated_text":"Hello!","details":{"finish_reason":"length","generated_tokens":3,"prompt_tokens":5}}\n';
    for (let i = 0; i < stream.length; i += 17) tally.push(enc.encode(stream.slice(i, i + 17)));
    tally.end();
    expect(tally.tokenEvents).toBe(3);
    expect(tally.outputText).toBe("Hello!");
    expect(tally.usage()).toEqual({ inputTokens: 5, outputTokens: 3 });
  });

  it("reads the usage chunk of a chat-completions SSE stream", () => {
    const tally = new ServerStreamTally();
    tally.push(enc.encode('data: {"choices":[{"delta":{"content":"Hi"}}]}\n\ndata: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":1}}\n\ndata: [DONE]\n\n'));
    tally.end();
    expect(tally.usage()).toEqual({ inputTokens: 7, outputTokens: 1 });
    expect(tally.outputText).toBe("Hi");
  });
});
