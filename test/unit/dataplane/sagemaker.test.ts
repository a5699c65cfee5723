import {
  InvokeEndpointCommand,
  InvokeEndpointWithResponseStreamCommand,
  SageMakerRuntimeClient,
} from "@aws-sdk/client-sagemaker-runtime";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { MeteredSageMaker, withAdapter } from "../../../shared/dataplane/adapters/sagemaker";
import type { DecisionSource } from "../../../shared/dataplane/decisions";
import { DataplaneRequestInvalidError, TenantThrottledError } from "../../../shared/dataplane/errors";
import { INVOCATION_SOURCES } from "../../../shared/events/invocation";
import { CollectingSink, bytes, quietLogger, trackedStream } from "./fakes";

const sm = mockClient(SageMakerRuntimeClient);
const ENDPOINT = "llama31-70b-int8-lora";

function metered(over: Partial<ConstructorParameters<typeof MeteredSageMaker>[0]> = {}) {
  const sink = new CollectingSink();
  let t = Date.parse("2026-11-25T10:00:00.000Z");
  // Each clock read advances 250 ms: the call takes one tick.
  const clock = () => new Date((t += 250));
  const wrapper = new MeteredSageMaker({ client: new SageMakerRuntimeClient({ region: "us-west-2" }), sink, logger: quietLogger, clock, ...over });
  return { sink, wrapper };
}

const lmiRequest = { inputs: "Summarise our refund policy.", parameters: { max_new_tokens: 128, details: true } };

beforeEach(() => sm.reset());

describe("MeteredSageMaker.invokeEndpoint", () => {
  it("reads LMI details, records inference time, variant, component and the adapter named in the body", async () => {
    sm.on(InvokeEndpointCommand).resolves({
      $metadata: { requestId: "sm-req-1" },
      Body: bytes({ generated_text: "Refunds within 30 days.", details: { finish_reason: "eos_token", generated_tokens: 7, prompt_tokens: 9 } }),
      ContentType: "application/json",
      InvokedProductionVariant: "AllTraffic",
    } as never);
    const { sink, wrapper } = metered();
    await wrapper.invokeEndpoint(
      { EndpointName: ENDPOINT, ContentType: "application/json", Body: JSON.stringify(lmiRequest), InferenceComponentName: "llama-base" },
      { tenantId: "tenant-a", adapterId: "tenant-a-support" },
    );

    const sent = sm.commandCalls(InvokeEndpointCommand)[0].args[0].input;
    expect(JSON.parse(sent.Body as string)).toEqual({ ...lmiRequest, adapters: "tenant-a-support" });
    expect(sent.InferenceComponentName).toBe("llama-base");
    expect(sink.sources).toEqual([INVOCATION_SOURCES.sagemaker]);
    expect(sink.events[0]).toMatchObject({
      eventId: "sm-req-1",
      provider: "sagemaker",
      modelId: "llama-base",
      endpointName: ENDPOINT,
      variantName: "AllTraffic",
      inferenceComponentName: "llama-base",
      adapterId: "tenant-a-support",
      inputTokens: 9,
      outputTokens: 7,
      latencyMs: 250,
      status: "success",
    });
    expect(sink.events[0].estimated).toBeUndefined();
  });

  it("reads OpenAI-style chat-completions usage; modelId is the endpoint without a component", async () => {
    sm.on(InvokeEndpointCommand).resolves({
      $metadata: { requestId: "sm-req-2" },
      Body: bytes({ id: "chatcmpl-1", choices: [{ index: 0, message: { role: "assistant", content: "Hi" } }], usage: { prompt_tokens: 307, completion_tokens: 533, total_tokens: 840 } }),
    } as never);
    const { sink, wrapper } = metered();
    await wrapper.invokeEndpoint(
      { EndpointName: ENDPOINT, TargetVariant: "blue", Body: JSON.stringify({ messages: [{ role: "user", content: "Hello" }] }) },
      { tenantId: "tenant-a" },
    );
    expect(sink.events[0]).toMatchObject({ modelId: ENDPOINT, variantName: "blue", inputTokens: 307, outputTokens: 533 });
  });

  it("uses the injected tokenizer for prompt tokens the server did not report (exact, not estimated)", async () => {
    sm.on(InvokeEndpointCommand).resolves({ $metadata: { requestId: "sm-req-3" }, Body: bytes({ generated_text: "ok", details: { generated_tokens: 1 } }) } as never);
    const promptTokenCounter = vi.fn(async ({ json }: { json: unknown }) => (json as { inputs: string }).inputs.split(" ").length);
    const { sink, wrapper } = metered({ promptTokenCounter });
    await wrapper.invokeEndpoint({ EndpointName: ENDPOINT, Body: JSON.stringify(lmiRequest) }, { tenantId: "tenant-a" });
    await vi.waitFor(() => expect(sink.events).toHaveLength(1));
    expect(sink.events[0]).toMatchObject({ inputTokens: 4, outputTokens: 1 });
    expect(sink.events[0].estimated).toBeUndefined();
  });

  it("estimates missing counts without a tokenizer, and marks the event estimated", async () => {
    sm.on(InvokeEndpointCommand).resolves({ $metadata: { requestId: "sm-req-4" }, Body: bytes([{ generated_text: "12345678" }]) } as never);
    const { sink, wrapper } = metered();
    await wrapper.invokeEndpoint({ EndpointName: ENDPOINT, Body: JSON.stringify({ inputs: "abcdefghijkl" }) }, { tenantId: "tenant-a" });
    expect(sink.events[0]).toMatchObject({ inputTokens: 3, outputTokens: 2, estimated: true });
  });

  it("names the adapter as an inference component when asked to", async () => {
    sm.on(InvokeEndpointCommand).resolves({ $metadata: { requestId: "sm-req-5" }, Body: bytes({ generated_text: "x", details: { generated_tokens: 1, prompt_tokens: 1 } }) } as never);
    const { sink, wrapper } = metered();
    await wrapper.invokeEndpoint(
      { EndpointName: ENDPOINT, Body: JSON.stringify(lmiRequest) },
      { tenantId: "tenant-a", adapterId: "ic-tenant-a-adapter", adapterPlacement: "inference-component" },
    );
    const sent = sm.commandCalls(InvokeEndpointCommand)[0].args[0].input;
    expect(sent.InferenceComponentName).toBe("ic-tenant-a-adapter");
    expect(JSON.parse(sent.Body as string)).toEqual(lmiRequest);
    expect(sink.events[0]).toMatchObject({ modelId: "ic-tenant-a-adapter", adapterId: "ic-tenant-a-adapter" });
  });

  it("refuses to put an adapter in a body that is not JSON", () => {
    expect(() => withAdapter({ EndpointName: ENDPOINT, Body: "plain text" }, { tenantId: "t", adapterId: "a" })).toThrow(DataplaneRequestInvalidError);
  });

  it("throws TenantThrottledError without invoking the endpoint", async () => {
    const decisions: DecisionSource = { get: async (tenantId) => ({ tenantId, decision: "throttle", retryAfterSeconds: 60 }) };
    const { sink, wrapper } = metered({ decisions });
    await expect(wrapper.invokeEndpoint({ EndpointName: ENDPOINT, Body: "{}" }, { tenantId: "tenant-a" })).rejects.toBeInstanceOf(TenantThrottledError);
    expect(sm.commandCalls(InvokeEndpointCommand)).toHaveLength(0);
    expect(sink.events).toHaveLength(0);
    expect(wrapper.stats.throttled).toBe(1);
  });

  it("does not apply a (Bedrock) downgrade to an endpoint call", async () => {
    sm.on(InvokeEndpointCommand).resolves({ $metadata: { requestId: "sm-req-6" }, Body: bytes({ generated_text: "x", details: { generated_tokens: 1, prompt_tokens: 1 } }) } as never);
    const decisions: DecisionSource = { get: async (tenantId) => ({ tenantId, decision: "downgrade", targetModelId: "anthropic.claude-3-haiku-20240307-v1:0" }) };
    const { sink, wrapper } = metered({ decisions });
    await wrapper.invokeEndpoint({ EndpointName: ENDPOINT, Body: "{}" }, { tenantId: "tenant-a" });
    expect(sm.commandCalls(InvokeEndpointCommand)[0].args[0].input.EndpointName).toBe(ENDPOINT);
    expect(sink.events[0].requestedModelId).toBeUndefined();
  });
});

describe("MeteredSageMaker.invokeEndpointWithResponseStream", () => {
  const lines = [
    '{"token":{"id":1,"text":"Re","log_prob":-0.2},"generated_text":null,"details":null}\n',
    '{"token":{"id":2,"text":"funds","log_prob":-0.2},"generated_text":null,"details":null}\n',
    '{"token":{"id":3,"text":" ok","log_prob":-0.2},"generated_text":"Refunds ok","details":{"finish_reason":"length","generated_tokens":3,"prompt_tokens":11}}\n',
  ];
  // Payload parts do not respect line boundaries: split the second line across two parts.
  const parts = [lines[0], lines[1].slice(0, 20), lines[1].slice(20), lines[2]].map((p) => ({ PayloadPart: { Bytes: bytes(p) } }));

  it("counts the streamed LMI tokens and the final details, with the stream's wall-clock time", async () => {
    const { stream } = trackedStream(parts);
    sm.on(InvokeEndpointWithResponseStreamCommand).resolves({ $metadata: { requestId: "sm-stream-1" }, Body: stream, InvokedProductionVariant: "AllTraffic" } as never);
    const { sink, wrapper } = metered();
    const out = await wrapper.invokeEndpointWithResponseStream({ EndpointName: ENDPOINT, Body: JSON.stringify({ ...lmiRequest, stream: true }) }, { tenantId: "tenant-a", adapterId: "tenant-a-support" });
    let n = 0;
    for await (const _ of out.Body!) n++;
    expect(n).toBe(parts.length);
    expect(sink.events[0]).toMatchObject({ eventId: "sm-stream-1", inputTokens: 11, outputTokens: 3, variantName: "AllTraffic", adapterId: "tenant-a-support", status: "success", latencyMs: 250 });
    expect(sink.events[0].estimated).toBeUndefined();
  });

  it("emits what was received, marked aborted, when the consumer stops early", async () => {
    const { stream, state } = trackedStream(parts);
    sm.on(InvokeEndpointWithResponseStreamCommand).resolves({ $metadata: { requestId: "sm-stream-2" }, Body: stream } as never);
    const { sink, wrapper } = metered();
    const out = await wrapper.invokeEndpointWithResponseStream({ EndpointName: ENDPOINT, Body: JSON.stringify({ inputs: "abcdefgh" }) }, { tenantId: "tenant-a" });
    let n = 0;
    for await (const _ of out.Body!) if (++n === 1) break;
    expect(state.returned).toBe(true);
    // one token line received (exact); the prompt count was never sent, so it is estimated
    expect(sink.events[0]).toMatchObject({ status: "aborted", outputTokens: 1, inputTokens: 2, estimated: true });
  });
});
