import {
  InvokeEndpointCommand,
  InvokeEndpointWithResponseStreamCommand,
  type InvokeEndpointCommandInput,
  type InvokeEndpointCommandOutput,
  type InvokeEndpointWithResponseStreamCommandInput,
  type InvokeEndpointWithResponseStreamCommandOutput,
  type ResponseStream,
  type SageMakerRuntimeClient,
} from "@aws-sdk/client-sagemaker-runtime";
import { INVOCATION_SCHEMA_VERSION, INVOCATION_SOURCES, type InvocationEventV1 } from "../../events/invocation";
import { allowAll, type DecisionSource } from "../decisions";
import { DataplaneRequestInvalidError, TenantThrottledError } from "../errors";
import { assertTenant, eventIdFrom, observeStream, route, safeEmit, stripUndefined, type Routing, type StreamEnd } from "../metering";
import { charsPerTokenEstimate, consoleLogger, type CallContext, type DataplaneLogger, type TokenEstimator, type UsageSink } from "../ports";
import { ServerStreamTally, parseServerReply } from "../sagemaker-usage";
import { asRecord, bodyText, decodeUtf8, parseJson, resolveUsage, textOfJson, type ReportedUsage } from "../usage";
import type { AdmissionTicket } from "../../admission/service";
import { jsonMessages, releasedOnError, sagemakerMaxTokens, sagemakerWithMaxTokens, type AdmissionGate } from "../admission";

/**
 * Where a LoRA adapter is named:
 * - "body" (default): DJL Serving LMI multi-adapter serving (`option.enable_lora=true`): the
 *   JSON request body gets `"adapters": "<adapterId>"`; the endpoint (and inference component,
 *   if any) stay those of the base model.
 * - "inference-component": SageMaker adapter inference components: the adapter is its own
 *   inference component on the base model's component, so `InferenceComponentName` is set to it.
 * `TargetModel` is for multi-model endpoints (one model artifact per tenant): pass it in the
 * input yourself; it is forwarded unchanged and not treated as an adapter.
 */
export type AdapterPlacement = "body" | "inference-component";

export interface SageMakerCallContext extends CallContext {
  adapterId?: string;
  adapterPlacement?: AdapterPlacement;
}

/** Counts prompt tokens with the served model's tokenizer (e.g. a tokenizer service or a local BPE). */
export type PromptTokenCounter = (request: { body: string; json: unknown; endpointName: string }) => number | Promise<number>;

export interface MeteredSageMakerOptions {
  client: SageMakerRuntimeClient;
  sink: UsageSink;
  /** Throttle decisions are honoured; downgrades are not (see class note). Default: allow. */
  decisions?: DecisionSource;
  /**
   * Used when the server does not report prompt tokens (LMI without `details`, TGI without
   * `decoder_input_details`). The count it returns is treated as exact. Without it, prompt
   * tokens are estimated and the event says `estimated: true`.
   */
  promptTokenCounter?: PromptTokenCounter;
  estimator?: TokenEstimator;
  logger?: DataplaneLogger;
  clock?: () => Date;
  /** Admission before each call (shared/admission); refused -> {@link TenantThrottledError}. No downgrade (fixed-cost endpoint). */
  admission?: AdmissionGate;
}

export interface MeteredSageMakerStats {
  emitted: number;
  throttled: number;
}

/**
 * SageMaker real-time endpoint calls, metered per tenant. A self-hosted endpoint has a fixed
 * hourly cost, shared among its tenants by inference time: so each event carries `latencyMs`
 * (wall-clock around the call, until the last stream part for streams) besides tokens, and
 * the endpoint/variant/inference component/adapter it ran on. `modelId` is the inference
 * component when there is one, else the endpoint name.
 *
 * Throttle decisions stop the call ({@link TenantThrottledError}); downgrade decisions name a
 * Bedrock model (the Advanced tier moves from line 4 to line 3) and have no meaning for a
 * fixed-cost endpoint, so they are not applied here.
 */
export class MeteredSageMaker {
  private readonly decisions: DecisionSource;
  private readonly estimator: TokenEstimator;
  private readonly logger: DataplaneLogger;
  private readonly clock: () => Date;
  private readonly counters: MeteredSageMakerStats = { emitted: 0, throttled: 0 };

  constructor(private readonly opts: MeteredSageMakerOptions) {
    this.decisions = opts.decisions ?? allowAll;
    this.estimator = opts.estimator ?? charsPerTokenEstimate;
    this.logger = opts.logger ?? consoleLogger;
    this.clock = opts.clock ?? (() => new Date());
  }

  get stats(): MeteredSageMakerStats {
    return { ...this.counters };
  }

  async invokeEndpoint(endpointInput: InvokeEndpointCommandInput, ctx: SageMakerCallContext): Promise<InvokeEndpointCommandOutput> {
    const { request: input, routing, ticket } = await this.admit(endpointInput, ctx);
    const request = withAdapter(input, ctx);
    const started = this.clock();
    const output = await releasedOnError(ticket, () => this.opts.client.send(new InvokeEndpointCommand(request)));
    const latencyMs = this.clock().getTime() - started.getTime();
    const reply = parseServerReply(parseJson(decodeUtf8(output.Body)));
    // Not awaited: an async prompt tokenizer must not delay the caller's response.
    void this.emit(ctx, routing, request, output.InvokedProductionVariant, ticket, {
      eventId: eventIdFrom(output.$metadata?.requestId),
      occurredAt: started.toISOString(),
      reported: reply.reported,
      outputText: reply.outputText,
      latencyMs,
      status: "success",
    });
    return output;
  }

  /**
   * Streaming: LMI/TGI JSON lines count one token per `token` line (exact for what was
   * received), chat-completions streams report `usage` in their last chunk when asked
   * (`stream_options.include_usage`). An abandoned or failed stream emits what was consumed
   * with `status: "aborted" | "error"`.
   */
  async invokeEndpointWithResponseStream(
    streamInput: InvokeEndpointWithResponseStreamCommandInput,
    ctx: SageMakerCallContext,
  ): Promise<InvokeEndpointWithResponseStreamCommandOutput> {
    const { request: input, routing, ticket } = await this.admit(streamInput, ctx);
    const request = withAdapter(input, ctx);
    const started = this.clock();
    const output = await releasedOnError(ticket, () => this.opts.client.send(new InvokeEndpointWithResponseStreamCommand(request)));
    if (!output.Body) {
      void ticket?.release();
      return output;
    }
    const eventId = eventIdFrom(output.$metadata?.requestId);
    ticket?.bind(eventId);
    const tally = new ServerStreamTally();
    let items = 0;
    let inBandError = false;
    const observe = (part: ResponseStream) => {
      items++;
      if (part.PayloadPart?.Bytes) tally.push(part.PayloadPart.Bytes);
      else if (part.ModelStreamError || part.InternalStreamFailure) inBandError = true;
    };
    const finish = (end: StreamEnd) => {
      tally.end();
      const status = inBandError && end === "success" ? "error" : end;
      if (status === "error" && items === 0) {
        void ticket?.release();
        return;
      }
      // Runs in the stream's `finally`: must not throw into the consumer, and the optional
      // tokenizer may be async, so the event is completed in the background.
      void this.emit(ctx, routing, request, output.InvokedProductionVariant, ticket, {
        eventId,
        occurredAt: started.toISOString(),
        reported: tally.usage(),
        outputText: tally.outputText,
        latencyMs: this.clock().getTime() - started.getTime(),
        status,
      });
    };
    return { ...output, Body: observeStream(output.Body, observe, finish) };
  }

  private async admit<T extends InvokeEndpointCommandInput | InvokeEndpointWithResponseStreamCommandInput>(
    input: T,
    ctx: SageMakerCallContext,
  ): Promise<{ request: T; routing: Routing; ticket?: AdmissionTicket }> {
    const routing = await this.route(ctx, input);
    const gate = this.opts.admission;
    if (!gate) return { request: input, routing };
    try {
      return await gate.admit({
        tenantId: ctx.tenantId,
        provider: "sagemaker",
        routing,
        canDowngrade: false,
        request: input,
        promptText: textOfJson(parseJson(bodyText(input.Body) ?? "")),
        messages: jsonMessages(input.Body),
        maxTokensOf: (r) => sagemakerMaxTokens(r.Body),
        withMaxTokens: (r, max) => {
          const body = sagemakerWithMaxTokens(r.Body, max);
          return body === undefined ? undefined : { ...r, Body: body };
        },
      });
    } catch (error) {
      if (error instanceof TenantThrottledError) this.counters.throttled++;
      throw error;
    }
  }

  private async route(ctx: SageMakerCallContext, input: { EndpointName: string | undefined; InferenceComponentName?: string }): Promise<Routing> {
    assertTenant(ctx);
    try {
      return await route(this.decisions, ctx.tenantId, modelIdOf(input), false, this.logger);
    } catch (error) {
      if (error instanceof TenantThrottledError) this.counters.throttled++;
      throw error;
    }
  }

  private async emit(
    ctx: SageMakerCallContext,
    routing: Routing,
    request: { EndpointName: string | undefined; Body?: unknown; TargetVariant?: string; InferenceComponentName?: string },
    invokedVariant: string | undefined,
    ticket: AdmissionTicket | undefined,
    call: { eventId: string; occurredAt: string; reported: ReportedUsage; outputText: string; latencyMs: number; status: InvocationEventV1["status"] },
  ): Promise<void> {
    try {
      const body = bodyText(request.Body) ?? "";
      const json = parseJson(body);
      let promptTokens: number | undefined;
      if (call.reported.inputTokens === undefined && this.opts.promptTokenCounter) {
        try {
          promptTokens = await this.opts.promptTokenCounter({ body, json, endpointName: request.EndpointName ?? "" });
        } catch (error) {
          this.logger.warn("promptTokenCounter failed; prompt tokens estimated", { error: String(error) });
        }
      }
      const usage = resolveUsage(call.reported, {
        promptText: () => textOfJson(json ?? body),
        outputText: () => call.outputText,
        estimator: this.estimator,
        promptTokens,
      });
      // Fixed-cost endpoint: tokens only (its cost is allocated by the hour, not priced per call).
      void ticket?.settle({ inputTokens: usage.inputTokens, outputTokens: usage.outputTokens, nanoUsd: 0 }, call.eventId);
      const event: InvocationEventV1 = stripUndefined({
        eventId: call.eventId,
        tenantId: ctx.tenantId,
        occurredAt: call.occurredAt,
        provider: "sagemaker" as const,
        modelId: modelIdOf(request),
        inputTokens: usage.inputTokens,
        outputTokens: usage.outputTokens,
        cacheReadInputTokens: usage.cacheReadInputTokens,
        endpointName: request.EndpointName,
        variantName: invokedVariant ?? request.TargetVariant,
        inferenceComponentName: request.InferenceComponentName,
        adapterId: ctx.adapterId,
        latencyMs: Math.max(0, call.latencyMs),
        status: call.status,
        feature: ctx.feature,
        tier: routing.decision.tier,
        estimated: usage.estimated || undefined,
        schemaVersion: INVOCATION_SCHEMA_VERSION,
      });
      this.counters.emitted++;
      safeEmit(this.opts.sink, event, INVOCATION_SOURCES.sagemaker, this.logger);
    } catch (error) {
      void ticket?.release();
      this.logger.error("could not build the SageMaker usage event", { tenantId: ctx.tenantId, error: String(error) });
    }
  }
}

function modelIdOf(input: { EndpointName: string | undefined; InferenceComponentName?: string }): string {
  return input.InferenceComponentName ?? input.EndpointName ?? "";
}

/** Names the LoRA adapter where the serving stack expects it (see {@link AdapterPlacement}). */
export function withAdapter<T extends { Body: unknown; InferenceComponentName?: string }>(input: T, ctx: SageMakerCallContext): T {
  if (!ctx.adapterId) return input;
  if ((ctx.adapterPlacement ?? "body") === "inference-component") return { ...input, InferenceComponentName: ctx.adapterId };
  const text = bodyText(input.Body);
  const json = text === undefined ? undefined : asRecord(parseJson(text));
  if (!json) {
    throw new DataplaneRequestInvalidError(
      "adapterId with placement 'body' needs an in-memory JSON object body (DJL LMI reads `adapters` from it)",
    );
  }
  return { ...input, Body: JSON.stringify({ ...json, adapters: ctx.adapterId }) };
}
