import { BedrockRuntimeClient, ConverseCommand, type ConverseCommandInput } from "@aws-sdk/client-bedrock-runtime";
import { InvokeEndpointCommand, SageMakerRuntimeClient } from "@aws-sdk/client-sagemaker-runtime";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { createUsageEmitter } from "../../shared/dataplane/adapters/eventbridge";
import { MeteredBedrock } from "../../shared/dataplane/adapters/bedrock";
import { MeteredSageMaker } from "../../shared/dataplane/adapters/sagemaker";
import { CachedDecisionSource, HttpDecisionSource } from "../../shared/dataplane/decisions";
import type { UsageEmitter } from "../../shared/dataplane/emitter";
import { TenantThrottledError } from "../../shared/dataplane/errors";
import type { UsageSink } from "../../shared/dataplane/ports";
import { INVOCATION_SOURCES, type InvocationEventV1, type InvocationSource } from "../../shared/events/invocation";
import { parseInvocationLogRecord } from "../../shared/invocation-log/parse";
import { trustMap } from "../../shared/invocation-log/tenant-binding";
import { ENFORCEMENT_DETAIL_TYPES, ENFORCEMENT_SOURCE } from "../../shared/quota/events";
import { MODELS } from "../../shared/quota/tiers";
import type { LocalStack } from "../../local/stack";
import { eventBridgeClient, startTestStack } from "./stack-harness";

/**
 * The whole loop through the local stack with the real data-plane wrappers: wrapper call ->
 * emitter -> PutEvents (local bus) -> SQS -> ingest handler (counts, evaluates quotas,
 * publishes enforcement events) -> decision endpoint -> the wrapper's next call.
 *
 * Only the model runtimes are mocked (aws-sdk-client-mock): Converse reports 307 input and
 * 533 output tokens (the seed's average request) with a request id; SageMaker answers an
 * LMI body with `details`. Time for the decision cache is a fake clock, so "TTL expired" and
 * "still within the TTL" are states the test sets, not races it hopes to win.
 */
const IN = 307;
const OUT = 533;
const PER_CALL = IN + OUT;

const bedrockMock = mockClient(BedrockRuntimeClient);
const sagemakerMock = mockClient(SageMakerRuntimeClient);

let stack: LocalStack;
let emitter: UsageEmitter;
let requestSeq = 0;

/** A sink that remembers what the wrappers handed over, then forwards to the real emitter. */
class RecordingSink implements UsageSink {
  readonly events: { event: InvocationEventV1; source: InvocationSource }[] = [];
  constructor(private readonly inner: UsageSink) {}
  emit(event: InvocationEventV1, source: InvocationSource): boolean {
    this.events.push({ event, source });
    return this.inner.emit(event, source);
  }
}

/** Decision source of one test: the HTTP endpoint of the stack behind the real cache, with a fake clock and a fetch counter. */
function decisionSource(ttlMs: number) {
  const clock = { now: 1_000_000 };
  let fetches = 0;
  const countingFetch: typeof fetch = (input, init) => {
    fetches++;
    return fetch(input, init);
  };
  const source = new CachedDecisionSource(new HttpDecisionSource({ baseUrl: stack.url, fetch: countingFetch }), {
    ttlMs,
    now: () => clock.now,
    logger: { warn: () => undefined, error: () => undefined },
  });
  return { source, clock, fetches: () => fetches };
}

async function putConfig(tenantId: string, body: Record<string, unknown>): Promise<void> {
  const res = await fetch(`${stack.url}/tenants/${tenantId}/config`, {
    method: "PUT",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  expect(res.status, await res.clone().text()).toBe(200);
}

async function decisionOf(tenantId: string): Promise<{ decision: string; targetModelId?: string; retryAfterSeconds?: number }> {
  const res = await fetch(`${stack.url}/tenants/${tenantId}/decision`);
  expect(res.status).toBe(200);
  return (await res.json()) as { decision: string; targetModelId?: string };
}

async function usageTotals(tenantId: string): Promise<{ requests: number; inputTokens: number; outputTokens: number }> {
  const today = new Date().toISOString().slice(0, 10);
  const res = await fetch(`${stack.url}/usage/${tenantId}?from=${today}&to=${today}&granularity=day`);
  expect(res.status).toBe(200);
  const body = (await res.json()) as { totals: { requests: number; inputTokens: number; outputTokens: number } };
  return { requests: body.totals.requests, inputTokens: body.totals.inputTokens, outputTokens: body.totals.outputTokens };
}

function enforcementEvents(tenantId: string, detailType: string) {
  return stack
    .recentEvents({ source: ENFORCEMENT_SOURCE, detailType })
    .filter((e) => (e.envelope.detail as { tenantId?: string }).tenantId === tenantId);
}

/** Everything emitted so far is on the bus, and every queue (including the batches it triggered) is idle. */
async function settle(): Promise<void> {
  await emitter.flush();
  expect(emitter.stats.failed).toBe(0);
  await stack.drain({ timeoutMs: 30_000 });
}

/** A Bedrock model-invocation-log record, as Bedrock writes it to S3. */
function logRecord(requestId: string, metadata: Record<string, string> | undefined, operation = "Converse") {
  return {
    schemaType: "ModelInvocationLog",
    schemaVersion: "1.0",
    timestamp: new Date().toISOString(),
    accountId: "123456789012",
    identity: { arn: "arn:aws:sts::123456789012:assumed-role/app-role/loop-session" },
    region: stack.region,
    requestId,
    operation,
    modelId: MODELS.highPerformance,
    requestMetadata: metadata,
    input: { inputContentType: "application/json", inputTokenCount: IN },
    output: { outputContentType: "application/json", outputTokenCount: OUT, outputBodyJson: { metrics: { latencyMs: 412 } } },
  };
}

/** The wrappers' role may act for the loop's tenants (TENANT_PRINCIPALS_JSON on AWS). */
const LOG_PARSE = { binding: trustMap({ "arn:aws:iam::123456789012:role/app-role": ["loop-*"] }) };

function converseInput(modelId: string): ConverseCommandInput {
  return { modelId, messages: [{ role: "user", content: [{ text: "Summarise the ticket." }] }] };
}

/** Sum of what the wrappers emitted for a tenant, counting each event id once. */
function emittedTotals(sink: RecordingSink, tenantId: string) {
  const byId = new Map(sink.events.filter((e) => e.event.tenantId === tenantId).map((e) => [e.event.eventId, e.event]));
  let inputTokens = 0;
  let outputTokens = 0;
  for (const e of byId.values()) {
    inputTokens += e.inputTokens;
    outputTokens += e.outputTokens;
  }
  return { requests: byId.size, inputTokens, outputTokens };
}

beforeAll(async () => {
  ({ stack } = await startTestStack());
  emitter = createUsageEmitter({ client: eventBridgeClient(stack), eventBusName: stack.busName, flushIntervalMs: 0 });
});

afterAll(async () => {
  await emitter?.close();
  await stack?.stop();
  bedrockMock.restore();
  sagemakerMock.restore();
});

beforeAll(() => {
  bedrockMock.on(ConverseCommand).callsFake(() => ({
    $metadata: { httpStatusCode: 200, requestId: `req-${process.pid}-${++requestSeq}` },
    output: { message: { role: "assistant", content: [{ text: "Done." }] } },
    stopReason: "end_turn",
    usage: { inputTokens: IN, outputTokens: OUT, totalTokens: PER_CALL },
    metrics: { latencyMs: 412 },
  }));
  sagemakerMock.on(InvokeEndpointCommand).callsFake(() => ({
    $metadata: { httpStatusCode: 200, requestId: `sm-${process.pid}-${++requestSeq}` },
    ContentType: "application/json",
    InvokedProductionVariant: "AllTraffic",
    Body: new TextEncoder().encode(JSON.stringify({ generated_text: "Done.", details: { prompt_tokens: IN, generated_tokens: OUT } })),
  }));
});

afterEach(() => {
  expect(stack.deadLetters()).toEqual([]);
});

const modelsCalled = (): string[] => bedrockMock.commandCalls(ConverseCommand).map((c) => c.args[0].input.modelId ?? "");

describe("whole loop: wrapper -> bus -> ingest -> quota -> decision -> wrapper", () => {
  it("downgrades an advanced tenant past its quota: the next call goes to Haiku and says what was requested", async () => {
    const tenantId = "loop-adv-1";
    // 2 calls (1,680 tokens) stay under 2,000; the 3rd (2,520) reaches it.
    await putConfig(tenantId, { tier: "advanced", monthlyTokens: 2_000 });
    const sink = new RecordingSink(emitter);
    const { source, clock, fetches } = decisionSource(1_000);
    const bedrock = new MeteredBedrock({ client: new BedrockRuntimeClient({ region: stack.region }), sink, decisions: source });
    bedrockMock.resetHistory();

    for (let i = 0; i < 3; i++) await bedrock.converse(converseInput(MODELS.highPerformance), { tenantId, feature: "chat" });
    expect(modelsCalled()).toEqual([MODELS.highPerformance, MODELS.highPerformance, MODELS.highPerformance]);
    await settle();

    expect(enforcementEvents(tenantId, ENFORCEMENT_DETAIL_TYPES.warning)).toHaveLength(1);
    const downgraded = enforcementEvents(tenantId, ENFORCEMENT_DETAIL_TYPES.downgrade);
    expect(downgraded).toHaveLength(1);
    expect(downgraded[0].envelope.detail).toMatchObject({ action: "downgrade", tier: "advanced", targetModelId: MODELS.midPerformance });
    expect(await decisionOf(tenantId)).toMatchObject({ decision: "downgrade", targetModelId: MODELS.midPerformance });

    // Within the TTL the cached "allow" still holds; once it expires the wrapper asks again.
    expect(await source.get(tenantId)).toMatchObject({ decision: "allow" });
    const fetchesBefore = fetches();
    clock.now += 1_001;
    await bedrock.converse(converseInput(MODELS.highPerformance), { tenantId, feature: "chat" });
    expect(fetches()).toBe(fetchesBefore + 1);
    expect(modelsCalled().at(-1)).toBe(MODELS.midPerformance);
    const last = sink.events.at(-1)!;
    expect(last.event).toMatchObject({ tenantId, modelId: MODELS.midPerformance, requestedModelId: MODELS.highPerformance });
    expect(bedrock.stats).toEqual({ emitted: 4, throttled: 0, downgraded: 1 });

    await settle();
    const onBus = stack
      .recentEvents({ source: INVOCATION_SOURCES.bedrock })
      .find((e) => (e.envelope.detail as { eventId?: string }).eventId === last.event.eventId);
    expect(onBus?.envelope.detail).toMatchObject({ modelId: MODELS.midPerformance, requestedModelId: MODELS.highPerformance });

    // The usage API says exactly what the wrapper emitted, each call once.
    expect(emittedTotals(sink, tenantId)).toEqual({ requests: 4, inputTokens: 4 * IN, outputTokens: 4 * OUT });
    expect(await usageTotals(tenantId)).toEqual(emittedTotals(sink, tenantId));
  });

  it("throttles a basic tenant past its quota: the next call raises TenantThrottledError and the endpoint is not called", async () => {
    const tenantId = "loop-basic-1";
    // 1 call (840) is past the 80% warning of 1,000, the 2nd (1,680) reaches the quota.
    await putConfig(tenantId, { tier: "basic", monthlyTokens: 1_000 });
    const sink = new RecordingSink(emitter);
    const { source, clock } = decisionSource(1_000);
    const sagemaker = new MeteredSageMaker({ client: new SageMakerRuntimeClient({ region: stack.region }), sink, decisions: source });
    sagemakerMock.resetHistory();
    const invoke = () =>
      sagemaker.invokeEndpoint(
        { EndpointName: MODELS.basicEndpoint, ContentType: "application/json", Body: JSON.stringify({ inputs: "Summarise.", parameters: { details: true } }) },
        { tenantId, adapterId: `${tenantId}-lora` },
      );

    await invoke();
    await invoke();
    // The SageMaker wrapper emits after the response is returned (a prompt tokenizer may be async).
    await vi.waitFor(() => expect(sink.events).toHaveLength(2));
    await settle();

    const throttled = enforcementEvents(tenantId, ENFORCEMENT_DETAIL_TYPES.throttle);
    expect(throttled).toHaveLength(1);
    expect(throttled[0].envelope.detail).toMatchObject({ action: "throttle", tier: "basic", periodKind: "month" });
    expect(await decisionOf(tenantId)).toMatchObject({ decision: "throttle" });

    clock.now += 1_001;
    const error = await invoke().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TenantThrottledError);
    expect((error as TenantThrottledError).retryAfterSeconds).toBeGreaterThan(0);
    expect(sagemakerMock.commandCalls(InvokeEndpointCommand)).toHaveLength(2);
    expect(sagemaker.stats).toEqual({ emitted: 2, throttled: 1 });

    // A throttled call emits nothing: the totals are the two served calls.
    await settle();
    expect(sink.events).toHaveLength(2);
    expect(await usageTotals(tenantId)).toEqual({ requests: 2, inputTokens: 2 * IN, outputTokens: 2 * OUT });
  });

  it("applies an enforcement event from the bus at once, without waiting out the decision TTL", async () => {
    const tenantId = "loop-basic-2";
    await putConfig(tenantId, { tier: "basic", monthlyTokens: 800 });
    const sink = new RecordingSink(emitter);
    // A TTL the test never reaches: the clock does not move.
    const { source, fetches } = decisionSource(60_000);
    const bedrock = new MeteredBedrock({ client: new BedrockRuntimeClient({ region: stack.region }), sink, decisions: source });
    bedrockMock.resetHistory();

    await bedrock.converse(converseInput(MODELS.midPerformance), { tenantId });
    await settle();
    expect(await decisionOf(tenantId)).toMatchObject({ decision: "throttle" });
    const [throttled] = enforcementEvents(tenantId, ENFORCEMENT_DETAIL_TYPES.throttle);
    expect(throttled).toBeDefined();

    // The cached decision is still the "allow" fetched before the crossing.
    expect(await source.get(tenantId)).toMatchObject({ decision: "allow" });
    expect(source.applyEnforcementEvent(throttled.envelope.detail)).toBe(true);

    const error = await bedrock.converse(converseInput(MODELS.midPerformance), { tenantId }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TenantThrottledError);
    expect(fetches()).toBe(1);
    expect(bedrockMock.commandCalls(ConverseCommand)).toHaveLength(1);
  });

  it("counts a call once when both the wrapper and the invocation log report it", async () => {
    const tenantId = "loop-log-1";
    await putConfig(tenantId, { tier: "premium" });
    const sink = new RecordingSink(emitter);
    const bedrock = new MeteredBedrock({ client: new BedrockRuntimeClient({ region: stack.region }), sink, decisions: decisionSource(60_000).source });
    bedrockMock.resetHistory();

    await bedrock.converse(converseInput(MODELS.highPerformance), { tenantId, feature: "search" });
    const wrapperEvent = sink.events[0].event;
    const sent = bedrockMock.commandCalls(ConverseCommand)[0].args[0].input;
    await settle();

    // The invocation log of the same call (what Bedrock writes to S3: same request id, the
    // request metadata the wrapper sent), plus one call made outside the wrappers.
    const logged = [logRecord(wrapperEvent.eventId, sent.requestMetadata), logRecord(`outside-${process.pid}`, { tenantId })].map((r) => {
      const parsed = parseInvocationLogRecord(JSON.parse(JSON.stringify(r)), LOG_PARSE);
      if (parsed.kind !== "event") throw new Error(`expected an event, got ${parsed.kind}`);
      return parsed.event;
    });
    expect(logged[0]).toMatchObject({ eventId: wrapperEvent.eventId, tenantId, feature: "search" });
    for (const e of logged) expect(emitter.emit(e, INVOCATION_SOURCES.invocationLog)).toBe(true);
    await settle();

    const fromLog = stack.recentEvents({ source: INVOCATION_SOURCES.invocationLog }).map((e) => (e.envelope.detail as { eventId: string }).eventId);
    expect(fromLog).toEqual(expect.arrayContaining(logged.map((e) => e.eventId)));
    // Three reports, two calls.
    expect(await usageTotals(tenantId)).toEqual({ requests: 2, inputTokens: 2 * IN, outputTokens: 2 * OUT });
  });

  it("replaces the estimate of an abandoned stream by the invocation log's exact counts", async () => {
    const tenantId = "loop-log-2";
    await putConfig(tenantId, { tier: "premium" });
    const requestId = `abandoned-${process.pid}`;
    // what the wrapper emits for a ConverseStream the caller stopped reading: an estimate
    const estimate: InvocationEventV1 = {
      schemaVersion: "1",
      eventId: requestId,
      tenantId,
      occurredAt: new Date().toISOString(),
      provider: "bedrock",
      modelId: MODELS.highPerformance,
      inputTokens: IN,
      outputTokens: 40,
      estimated: true,
    };
    expect(emitter.emit(estimate, INVOCATION_SOURCES.bedrock)).toBe(true);
    await settle();
    expect(await usageTotals(tenantId)).toEqual({ requests: 1, inputTokens: IN, outputTokens: 40 });

    // Bedrock finished generating anyway and logged the exact counts under the same request id
    const parsed = parseInvocationLogRecord(JSON.parse(JSON.stringify(logRecord(requestId, { tenantId }, "ConverseStream"))), LOG_PARSE);
    if (parsed.kind !== "event") throw new Error(`expected an event, got ${parsed.kind}`);
    expect(emitter.emit(parsed.event, INVOCATION_SOURCES.invocationLog)).toBe(true);
    await settle();
    expect(await usageTotals(tenantId)).toEqual({ requests: 1, inputTokens: IN, outputTokens: OUT });
    // a redelivery of either report changes nothing
    expect(emitter.emit(parsed.event, INVOCATION_SOURCES.invocationLog)).toBe(true);
    expect(emitter.emit(estimate, INVOCATION_SOURCES.bedrock)).toBe(true);
    await settle();
    expect(await usageTotals(tenantId)).toEqual({ requests: 1, inputTokens: IN, outputTokens: OUT });
  });
});
