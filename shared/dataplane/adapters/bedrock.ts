import {
  CountTokensCommand,
  ConverseCommand,
  ConverseStreamCommand,
  InvokeModelCommand,
  InvokeModelWithResponseStreamCommand,
  type BedrockRuntimeClient,
  type ConverseCommandInput,
  type ConverseCommandOutput,
  type ConverseStreamCommandInput,
  type ConverseStreamCommandOutput,
  type ConverseStreamOutput,
  type InvokeModelCommandInput,
  type InvokeModelCommandOutput,
  type InvokeModelWithResponseStreamCommandInput,
  type InvokeModelWithResponseStreamCommandOutput,
  type ResponseStream,
} from "@aws-sdk/client-bedrock-runtime";
import { INVOCATION_SCHEMA_VERSION, INVOCATION_SOURCES, type InvocationEventV1 } from "../../events/invocation";
import { allowAll, type DecisionSource } from "../decisions";
import { DataplaneRequestInvalidError, TenantThrottledError } from "../errors";
import { assertTenant, eventIdFrom, observeStream, route, safeEmit, stripUndefined, type Routing, type StreamEnd } from "../metering";
import { charsPerTokenEstimate, consoleLogger, type CallContext, type DataplaneLogger, type TokenEstimator, type UsageSink } from "../ports";
import {
  bodyText,
  decodeUtf8,
  mergeUsage,
  parseJson,
  resolveUsage,
  textOfBedrockChunk,
  textOfJson,
  callFactsFromConverse,
  serviceTierOf,
  usageFromAnthropicStreamEvent,
  usageFromBedrockBody,
  usageFromConverse,
  usageFromHeaders,
  usageFromInvocationMetrics,
  type ReportedUsage,
} from "../usage";
import { captureResponseHeaders, type HeaderMap } from "./response-headers";
import type { AdmissionTicket } from "../../admission/service";
import type { InferenceProfiles } from "../../pricing/inference-profiles";
import { AdmissionGate, converseShape, invokeMaxTokens, invokeWithMaxTokens, jsonMessages, releasedOnError } from "../admission";

export interface MeteredBedrockOptions {
  client: BedrockRuntimeClient;
  /** Where finished events go: usually a {@link UsageEmitter}. */
  sink: UsageSink;
  /** Per-tenant decisions (throttle / downgrade). Default: allow everything. */
  decisions?: DecisionSource;
  /** Used only for counts Bedrock did not report (aborted streams); such events carry `estimated: true`. */
  estimator?: TokenEstimator;
  logger?: DataplaneLogger;
  clock?: () => Date;
  /**
   * Admission before each call (shared/admission): reserve input + max_tokens against the
   * tenant's budget and the account quota pool, settle with the real usage after the call.
   * Refused -> {@link TenantThrottledError}; budget exhausted on a downgrading tier -> downgrade.
   */
  admission?: AdmissionGate;
  /** Ask Bedrock CountTokens for the exact input count before admission (a round trip; falls back to the estimate). */
  countTokens?: boolean;
  /**
   * Application inference profiles per tenant or tier (`InferenceProfiles.fromJson(INFERENCE_PROFILES_JSON)`,
   * planned by `npm run cli -- attribution profiles`): a call whose tenant (else tier) has a profile for
   * the model in the client's region goes to the profile's ARN, so AWS's bill carries its tags. The
   * usage event keeps the model id (what prices it); admission and CountTokens use it too.
   */
  inferenceProfiles?: InferenceProfiles;
}

export interface MeteredBedrockStats {
  emitted: number;
  throttled: number;
  downgraded: number;
}

/**
 * Bedrock runtime calls, metered per tenant. Each call: decision (throttle -> {@link TenantThrottledError}
 * before any model call; downgrade -> `modelId` swapped to the target, `requestedModelId` recorded),
 * the call itself (unchanged output), then one `InvocationEventV1` handed to the sink with the
 * usage Bedrock reported. `eventId` is Bedrock's request id, the same `requestId` the model
 * invocation log carries, so both sources of one call are counted once.
 *
 * A call that fails before a response arrives emits nothing (no output, nothing billed to
 * attribute). A stream that fails midway, or that the consumer abandons, emits what was
 * consumed with `status: "error" | "aborted"`; see {@link observeStream}.
 */
export class MeteredBedrock {
  private readonly decisions: DecisionSource;
  private readonly estimator: TokenEstimator;
  private readonly logger: DataplaneLogger;
  private readonly clock: () => Date;
  private readonly counters: MeteredBedrockStats = { emitted: 0, throttled: 0, downgraded: 0 };
  private region: string | undefined;

  constructor(private readonly opts: MeteredBedrockOptions) {
    this.decisions = opts.decisions ?? allowAll;
    this.estimator = opts.estimator ?? charsPerTokenEstimate;
    this.logger = opts.logger ?? consoleLogger;
    this.clock = opts.clock ?? (() => new Date());
  }

  get stats(): MeteredBedrockStats {
    return { ...this.counters };
  }

  /** Converse. The tenant (and feature) also go to Bedrock as `requestMetadata`, so the invocation log carries them. */
  async converse(converseInput: ConverseCommandInput, ctx: CallContext): Promise<ConverseCommandOutput> {
    const { request: input, routing, ticket } = await this.admitConverse(converseInput, ctx);
    const started = this.clock();
    const output = await releasedOnError(ticket, () =>
      this.opts.client.send(
        new ConverseCommand({ ...input, modelId: this.target(ctx, routing), requestMetadata: withTenant(input.requestMetadata, ctx, routing), ...requestedServiceTier(input, ticket) }),
      ),
    );
    const usage = resolveUsage({ ...usageFromConverse(output.usage), ...callFactsFromConverse(output) }, {
      promptText: () => textOfJson([input.system, input.messages]),
      outputText: () => textOfJson(output.output?.message?.content),
      estimator: this.estimator,
    });
    const eventId = eventIdFrom(output.$metadata?.requestId);
    this.settle(ticket, routing, usage, eventId);
    this.emit(ctx, routing, {
      eventId,
      occurredAt: started.toISOString(),
      ...usage,
      latencyMs: output.metrics?.latencyMs ?? this.clock().getTime() - started.getTime(),
      status: "success",
    });
    return output;
  }

  /** ConverseStream. Usage comes from the stream's `metadata` event; see the class note on aborted streams. */
  async converseStream(streamInput: ConverseStreamCommandInput, ctx: CallContext): Promise<ConverseStreamCommandOutput> {
    const { request: input, routing, ticket } = await this.admitConverse(streamInput, ctx);
    const started = this.clock();
    const output = await releasedOnError(ticket, () =>
      this.opts.client.send(
        new ConverseStreamCommand({ ...input, modelId: this.target(ctx, routing), requestMetadata: withTenant(input.requestMetadata, ctx, routing), ...requestedServiceTier(input, ticket) }),
      ),
    );
    if (!output.stream) {
      void ticket?.release();
      return output;
    }
    const eventId = eventIdFrom(output.$metadata?.requestId);
    ticket?.bind(eventId);
    let reported: ReportedUsage = {};
    let text = "";
    let items = 0;
    let inBandError = false;
    const observe = (event: ConverseStreamOutput) => {
      items++;
      if (event.metadata) {
        reported = mergeUsage(reported, { ...usageFromConverse(event.metadata.usage), ...callFactsFromConverse(event.metadata) });
        if (event.metadata.metrics?.latencyMs !== undefined) reported.latencyMs = event.metadata.metrics.latencyMs;
      }
      const delta = event.contentBlockDelta?.delta;
      if (delta?.text) text += delta.text;
      if (delta?.reasoningContent?.text) text += delta.reasoningContent.text;
      if (delta?.toolUse?.input) text += delta.toolUse.input;
      if (event.internalServerException || event.modelStreamErrorException || event.serviceUnavailableException || event.throttlingException || event.validationException) {
        inBandError = true;
      }
    };
    const finish = (end: StreamEnd) => {
      const status = inBandError && end === "success" ? "error" : end;
      if (status === "error" && items === 0) {
        void ticket?.release();
        return; // failed before anything was produced
      }
      const usage = resolveUsage(reported, {
        promptText: () => textOfJson([input.system, input.messages]),
        outputText: () => text,
        estimator: this.estimator,
      });
      this.settle(ticket, routing, usage, eventId);
      this.emit(ctx, routing, {
        eventId,
        occurredAt: started.toISOString(),
        ...usage,
        latencyMs: reported.latencyMs ?? this.clock().getTime() - started.getTime(),
        status,
      });
    };
    return { ...output, stream: observeStream(output.stream, observe, finish) };
  }

  /**
   * InvokeModel. Token counts come from the `x-amzn-bedrock-*-token-count` response headers
   * (captured by a per-command middleware), else from the model family's own usage in the
   * body, else an estimate (`estimated: true`). The tenant goes to Bedrock in the
   * `X-Amzn-Bedrock-Request-Metadata` header (the SDK's `requestMetadata` member), so the
   * invocation log of the call carries it, as it does for Converse.
   */
  async invokeModel(invokeInput: InvokeModelCommandInput, ctx: CallContext): Promise<InvokeModelCommandOutput> {
    const { request: input, routing, ticket } = await this.admitInvoke(invokeInput, ctx);
    const started = this.clock();
    const command = new InvokeModelCommand({
      ...input,
      modelId: this.target(ctx, routing),
      requestMetadata: metadataHeader(input.requestMetadata, ctx, routing),
      ...invokeRequestedServiceTier(input, ticket),
    });
    let headers: HeaderMap = {};
    captureResponseHeaders(command.middlewareStack, (h) => (headers = h));
    const output = await releasedOnError(ticket, () => this.opts.client.send(command));
    const fromHeaders = { ...usageFromHeaders(headers), ...stripUndefined({ serviceTier: serviceTierOf(output.serviceTier) }) };
    const responseJson = () => parseJson(decodeUtf8(output.body));
    const reported =
      fromHeaders.inputTokens !== undefined && fromHeaders.outputTokens !== undefined
        ? fromHeaders
        : mergeUsage(usageFromBedrockBody(responseJson()), fromHeaders);
    const usage = resolveUsage(reported, {
      promptText: () => textOfJson(parseJson(bodyText(input.body) ?? "")),
      outputText: () => textOfJson(responseJson()),
      estimator: this.estimator,
    });
    const eventId = eventIdFrom(output.$metadata?.requestId ?? headers["x-amzn-requestid"]);
    this.settle(ticket, routing, usage, eventId);
    this.emit(ctx, routing, {
      eventId,
      occurredAt: started.toISOString(),
      ...usage,
      latencyMs: reported.latencyMs ?? this.clock().getTime() - started.getTime(),
      status: "success",
    });
    return output;
  }

  /**
   * InvokeModelWithResponseStream. Usage comes from `amazon-bedrock-invocationMetrics` in the
   * last chunk; before that, Anthropic's in-band `message_start`/`message_delta` usage is kept,
   * so an aborted Claude stream still has its exact input count.
   */
  async invokeModelWithResponseStream(
    streamInput: InvokeModelWithResponseStreamCommandInput,
    ctx: CallContext,
  ): Promise<InvokeModelWithResponseStreamCommandOutput> {
    const { request: input, routing, ticket } = await this.admitInvoke(streamInput, ctx);
    const started = this.clock();
    const output = await releasedOnError(ticket, () =>
      this.opts.client.send(
        new InvokeModelWithResponseStreamCommand({
          ...input,
          modelId: this.target(ctx, routing),
          requestMetadata: metadataHeader(input.requestMetadata, ctx, routing),
          ...invokeRequestedServiceTier(input, ticket),
        }),
      ),
    );
    if (!output.body) {
      void ticket?.release();
      return output;
    }
    const eventId = eventIdFrom(output.$metadata?.requestId);
    ticket?.bind(eventId);
    let reported: ReportedUsage = stripUndefined({ serviceTier: serviceTierOf(output.serviceTier) });
    let metrics: ReportedUsage | undefined;
    let text = "";
    let items = 0;
    let inBandError = false;
    const observe = (part: ResponseStream) => {
      items++;
      if (!part.chunk) {
        inBandError = true;
        return;
      }
      const json = parseJson(decodeUtf8(part.chunk.bytes));
      metrics = usageFromInvocationMetrics(json) ?? metrics;
      reported = mergeUsage(reported, usageFromAnthropicStreamEvent(json));
      text += textOfBedrockChunk(json);
    };
    const finish = (end: StreamEnd) => {
      const status = inBandError && end === "success" ? "error" : end;
      if (status === "error" && items === 0) {
        void ticket?.release();
        return;
      }
      const best = metrics ? mergeUsage(reported, metrics) : reported;
      const usage = resolveUsage(best, {
        promptText: () => textOfJson(parseJson(bodyText(input.body) ?? "")),
        outputText: () => text,
        estimator: this.estimator,
      });
      this.settle(ticket, routing, usage, eventId);
      this.emit(ctx, routing, {
        eventId,
        occurredAt: started.toISOString(),
        ...usage,
        latencyMs: best.latencyMs ?? this.clock().getTime() - started.getTime(),
        status,
      });
    };
    return { ...output, body: observeStream(output.body, observe, finish) };
  }

  private async admitConverse<T extends ConverseCommandInput | ConverseStreamCommandInput>(
    input: T,
    ctx: CallContext,
  ): Promise<{ request: T; routing: Routing; ticket?: AdmissionTicket }> {
    const routed = await this.route(ctx, input.modelId);
    const gate = this.opts.admission;
    if (!gate) return { request: input, routing: routed };
    const exactInput = this.opts.countTokens
      ? async () =>
          (await this.opts.client.send(new CountTokensCommand({ modelId: routed.modelId, input: { converse: { messages: input.messages, system: input.system } } }))).inputTokens
      : undefined;
    return this.admitted(ctx, () =>
      gate.admit({
        tenantId: ctx.tenantId,
        provider: "bedrock",
        routing: routed,
        canDowngrade: true,
        request: input,
        promptText: converseShape.promptText(input),
        messages: converseShape.messages(input),
        maxTokensOf: converseShape.maxTokensOf,
        withMaxTokens: converseShape.withMaxTokens,
        exactInput,
      }),
    );
  }

  private async admitInvoke<T extends InvokeModelCommandInput | InvokeModelWithResponseStreamCommandInput>(
    input: T,
    ctx: CallContext,
  ): Promise<{ request: T; routing: Routing; ticket?: AdmissionTicket }> {
    const routed = await this.route(ctx, input.modelId);
    const gate = this.opts.admission;
    if (!gate) return { request: input, routing: routed };
    const exactInput = this.opts.countTokens
      ? async () => {
          const body = bodyText(input.body);
          if (body === undefined) return undefined;
          return (await this.opts.client.send(new CountTokensCommand({ modelId: routed.modelId, input: { invokeModel: { body: new TextEncoder().encode(body) } } }))).inputTokens;
        }
      : undefined;
    return this.admitted(ctx, () =>
      gate.admit({
        tenantId: ctx.tenantId,
        provider: "bedrock",
        routing: routed,
        canDowngrade: true,
        request: input,
        promptText: textOfJson(parseJson(bodyText(input.body) ?? "")),
        messages: jsonMessages(input.body),
        maxTokensOf: (r) => invokeMaxTokens(r.body),
        withMaxTokens: (r, max) => {
          const body = invokeWithMaxTokens(routed.modelId, r.body, max);
          return body === undefined ? undefined : { ...r, body };
        },
        exactInput,
      }),
    );
  }

  private async admitted<T>(ctx: CallContext, admit: () => Promise<{ request: T; routing: Routing; ticket: AdmissionTicket }>) {
    try {
      const out = await admit();
      if (out.ticket.downgradeTo) this.counters.downgraded++;
      return out;
    } catch (error) {
      if (error instanceof TenantThrottledError) this.counters.throttled++;
      throw error;
    }
  }

  private settle(
    ticket: AdmissionTicket | undefined,
    routing: Routing,
    usage: { inputTokens: number; outputTokens: number; cacheReadInputTokens?: number; cacheWriteInputTokens?: number },
    eventId: string,
  ): void {
    if (!ticket || !this.opts.admission) return;
    const nanoUsd = this.opts.admission.price("bedrock", routing.modelId, usage.inputTokens, usage.outputTokens, {
      read: usage.cacheReadInputTokens,
      write: usage.cacheWriteInputTokens,
    });
    void ticket.settle({ ...usage, nanoUsd }, eventId);
  }

  /** What Bedrock is called with: the tenant's (else its tier's) application profile for the routed model, else the model. */
  private target(ctx: CallContext, routing: Routing): string {
    return this.opts.inferenceProfiles?.forCall(ctx.tenantId, routing.decision.tier, routing.modelId, this.region) ?? routing.modelId;
  }

  private async route(ctx: CallContext, modelId: string | undefined): Promise<Routing> {
    assertTenant(ctx);
    // the client's region: prices follow the source region (read once; a provider function in SDK v3)
    this.region ??= await regionOf(this.opts.client);
    try {
      const routing = await route(this.decisions, ctx.tenantId, modelId ?? "", true, this.logger);
      if (routing.requestedModelId) this.counters.downgraded++;
      return routing;
    } catch (error) {
      if (error instanceof TenantThrottledError) this.counters.throttled++;
      throw error;
    }
  }

  private emit(
    ctx: CallContext,
    routing: Routing,
    e: Pick<
      InvocationEventV1,
      | "eventId" | "occurredAt" | "inputTokens" | "outputTokens" | "cacheReadInputTokens" | "cacheWriteInputTokens"
      | "cacheWrite1hInputTokens" | "serviceTier" | "invokedModelId" | "latencyMs" | "status"
    > & { estimated: boolean },
  ): void {
    const event: InvocationEventV1 = stripUndefined({
      ...e,
      latencyMs: e.latencyMs === undefined ? undefined : Math.max(0, e.latencyMs),
      estimated: e.estimated || undefined,
      tenantId: ctx.tenantId,
      feature: ctx.feature,
      provider: "bedrock" as const,
      modelId: routing.modelId,
      requestedModelId: routing.requestedModelId,
      tier: routing.decision.tier,
      region: this.region,
      schemaVersion: INVOCATION_SCHEMA_VERSION,
    });
    this.counters.emitted++;
    safeEmit(this.opts.sink, event, INVOCATION_SOURCES.bedrock, this.logger);
  }
}

/**
 * Bedrock's limits on request metadata, kept conservatively: at most 16 pairs; keys 1-256 and
 * values 0-256 characters of the set Bedrock's log filters accept (`[a-zA-Z0-9\s._:/=+$@-]`,
 * narrower than Converse's own). A pair outside them would make Bedrock refuse the call.
 */
export const REQUEST_METADATA_MAX_PAIRS = 16;
const METADATA_TEXT = /^[A-Za-z0-9 ._:/=+$@-]{0,256}$/;

/**
 * What the wrapper tells Bedrock about the call, so the invocation log carries it: `tenantId`
 * (always valid: the tenant pattern is inside Bedrock's set), and `tier` and `feature` when they
 * fit Bedrock's set (a label that does not is left out of the metadata; the wrapper's own event
 * still carries it). No event id: Bedrock assigns the request id both sources use as `eventId`,
 * and an id the caller chooses would let a direct caller fold many calls into one ledger entry.
 */
export function meteringMetadata(ctx: CallContext, routing: Pick<Routing, "decision">): Record<string, string> {
  const pairs: Record<string, string> = { tenantId: ctx.tenantId };
  const tier = routing.decision.tier;
  if (tier && METADATA_TEXT.test(tier)) pairs.tier = tier;
  if (ctx.feature && METADATA_TEXT.test(ctx.feature)) pairs.feature = ctx.feature;
  return pairs;
}

/** Converse `requestMetadata`: the caller's pairs plus ours, which win on conflict. */
function withTenant(metadata: Record<string, string> | undefined, ctx: CallContext, routing: Routing): Record<string, string> {
  const merged = { ...metadata, ...meteringMetadata(ctx, routing) };
  if (Object.keys(merged).length > REQUEST_METADATA_MAX_PAIRS) {
    throw new DataplaneRequestInvalidError(
      `requestMetadata has ${Object.keys(merged).length} pairs with the metering ones; Bedrock accepts at most ${REQUEST_METADATA_MAX_PAIRS}`,
    );
  }
  return merged;
}

/** InvokeModel's `X-Amzn-Bedrock-Request-Metadata` header (a JSON object of strings): the caller's pairs plus ours. */
function metadataHeader(callerJson: string | undefined, ctx: CallContext, routing: Routing): string {
  let caller: Record<string, string> | undefined;
  if (callerJson !== undefined && callerJson !== "") {
    const parsed = parseJson(callerJson);
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed) || Object.values(parsed).some((v) => typeof v !== "string")) {
      throw new DataplaneRequestInvalidError("requestMetadata must be a JSON object of string values (the X-Amzn-Bedrock-Request-Metadata header)");
    }
    caller = parsed as Record<string, string>;
  }
  return JSON.stringify(withTenant(caller, ctx, routing));
}

const REGION_NAME = /^[a-z]{2}(-[a-z]+)+-\d{1,2}$/;

/** The region a client sends to, if it names one (a custom endpoint without a region gives none). */
async function regionOf(client: BedrockRuntimeClient): Promise<string | undefined> {
  try {
    const r = client.config.region;
    const region = typeof r === "function" ? await r() : r;
    return typeof region === "string" && REGION_NAME.test(region) ? region : undefined;
  } catch {
    return undefined;
  }
}

/** The tier's Bedrock service tier, unless the caller chose one. */
function requestedServiceTier(input: { serviceTier?: unknown }, ticket: AdmissionTicket | undefined): { serviceTier?: { type: "priority" | "default" | "flex" } } {
  return ticket?.serviceTier && input.serviceTier === undefined ? { serviceTier: { type: ticket.serviceTier } } : {};
}

function invokeRequestedServiceTier(input: { serviceTier?: unknown }, ticket: AdmissionTicket | undefined): { serviceTier?: "priority" | "default" | "flex" } {
  return ticket?.serviceTier && input.serviceTier === undefined ? { serviceTier: ticket.serviceTier } : {};
}
