import { AdmissionRefusedError } from "../admission/errors";
import { estimateInputTokens, profileModelId, type EstimatorConfig, type ProfileScope } from "../admission/model";
import type { AdmissionTicket, AdmitRequest } from "../admission/service";
import { PriceCatalog, resolveBaseModelId, type PricedServiceTier } from "../pricing/catalog";
import type { TierName } from "../quota/tiers";
import { DataplaneConfigurationError, DataplaneRequestInvalidError, TenantThrottledError } from "./errors";
import type { Routing } from "./metering";
import { asRecord, bodyText, parseJson, textOfJson } from "./usage";

/**
 * The data-plane side of admission (shared/admission): bounds a request (its max_tokens is
 * read, or the tier default is written into it), estimates its input from its size (or takes an
 * exact count), prices the reservation, asks for admission, and maps a refusal onto the
 * existing `TenantThrottledError` or the tier's downgrade. No SDK here; the adapters call it.
 */

/** What the wrappers need of the admission service (`Admission` satisfies it). */
export interface AdmissionService {
  admit(req: AdmitRequest): Promise<AdmissionTicket>;
  defaultMaxTokens(tenantId: string): Promise<number>;
}

export interface AdmissionGateOptions {
  admission: AdmissionService;
  estimator?: EstimatorConfig;
  /** Refuse (DataplaneRequestInvalidError) a request without max_tokens instead of adding the tier default. */
  requireMaxTokens?: boolean;
  prices?: PriceCatalog;
  /** Region the calls are priced in. */
  region?: string;
  /** Told how long each admission took (ms): the latency admission adds before the call. */
  onAdmitted?: (ms: number, admitted: boolean) => void;
  /**
   * Cross-region profile per tenant tier (the admission config's `profileScopes`): a Bedrock call
   * of such a tier goes to the model's `global.` profile where `prices` has a price of that scope
   * for it (for the tier's `serviceTiers` entry, if any), before it is priced and admitted, so the
   * reservation, the pool and the usage event all name the profile. Needs `tierOf`.
   */
  profileScopes?: Partial<Record<TierName, ProfileScope>>;
  /** Bedrock service tier per tenant tier (the admission config's `serviceTiers`): a profile must be priced for it. */
  serviceTiers?: Partial<Record<TierName, PricedServiceTier>>;
  /** The tenant's tier (its effective policy), asked before admission when `profileScopes` has an entry. */
  tierOf?: (tenantId: string) => Promise<TierName>;
}

export interface Admitted<T> {
  request: T;
  routing: Routing;
  ticket: AdmissionTicket;
}

const DEFAULT_ESTIMATOR: EstimatorConfig = { bytesPerToken: 2, overheadTokens: 16, perMessageTokens: 8 };

export class AdmissionGate {
  readonly prices: PriceCatalog;
  readonly region: string;
  constructor(private readonly opts: AdmissionGateOptions) {
    this.prices = opts.prices ?? new PriceCatalog();
    this.region = opts.region ?? "us-west-2";
    if (Object.keys(opts.profileScopes ?? {}).length > 0 && !opts.tierOf) {
      throw new DataplaneConfigurationError("AdmissionGate: profileScopes needs tierOf (the tenant's tier decides the profile)");
    }
  }

  /**
   * Admits one call. `bound` reads the request's max_tokens and returns it with the limit
   * written in (`undefined` when the request shape has no known place for it). `exactInput`
   * may give an exact count (Bedrock CountTokens); otherwise the estimate is used.
   */
  async admit<T>(p: {
    tenantId: string;
    provider: "bedrock" | "sagemaker";
    routing: Routing;
    canDowngrade: boolean;
    request: T;
    promptText: string;
    messages: number;
    maxTokensOf: (request: T) => number | undefined;
    withMaxTokens: (request: T, maxTokens: number) => T | undefined;
    exactInput?: () => Promise<number | undefined>;
  }): Promise<Admitted<T>> {
    const started = performance.now();
    const routed = p.provider === "bedrock" ? await this.profiled(p.tenantId, p.routing) : p.routing;
    let request = p.request;
    let maxTokens = p.maxTokensOf(request);
    if (maxTokens === undefined) {
      if (this.opts.requireMaxTokens) throw new DataplaneRequestInvalidError("admission needs max_tokens on every call (requireMaxTokens)");
      maxTokens = await this.opts.admission.defaultMaxTokens(p.tenantId);
      const bounded = p.withMaxTokens(request, maxTokens);
      // Without a limit in the request the model may answer up to its maximum: nothing to reserve against.
      if (bounded === undefined) throw new DataplaneRequestInvalidError("request has no max_tokens and its shape has no known place for one");
      request = bounded;
    }
    let inputTokens: number | undefined;
    if (p.exactInput) {
      try {
        inputTokens = await p.exactInput();
      } catch {
        inputTokens = undefined; // CountTokens unsupported or failed: the estimate bounds it
      }
    }
    inputTokens ??= estimateInputTokens(p.promptText, p.messages, this.opts.estimator ?? DEFAULT_ESTIMATOR);
    const modelId = routed.modelId;
    const nanoUsd = this.price(p.provider, modelId, inputTokens, maxTokens);
    let ticket: AdmissionTicket | undefined;
    try {
      ticket = await this.opts.admission.admit({
        tenantId: p.tenantId,
        provider: p.provider,
        modelId,
        baseModelId: resolveBaseModelId(modelId),
        inputTokens,
        maxOutputTokens: maxTokens,
        nanoUsd,
        canDowngrade: p.canDowngrade,
        alreadyDowngraded: routed.requestedModelId !== undefined,
      });
    } catch (error) {
      if (error instanceof AdmissionRefusedError) {
        throw new TenantThrottledError(p.tenantId, error.retryAfterSeconds, `admission: ${error.reason}`, { cause: error });
      }
      throw error;
    } finally {
      this.opts.onAdmitted?.(performance.now() - started, ticket !== undefined);
    }
    const routing: Routing = ticket.downgradeTo
      ? // what the caller asked for, not the profile it was moved to
        { ...routed, modelId: ticket.downgradeTo, requestedModelId: routed.requestedModelId ?? p.routing.modelId }
      : routed;
    return { request, routing, ticket };
  }

  /**
   * The routing with the model moved to its tier's cross-region profile, when one is configured
   * and priced (`profileModelId`); otherwise as given. Not a downgrade: `requestedModelId` stays
   * unset (the same model, another route), so the tier's budget rules apply as before.
   */
  private async profiled(tenantId: string, routing: Routing): Promise<Routing> {
    const { profileScopes, tierOf } = this.opts;
    if (!profileScopes || !tierOf || Object.keys(profileScopes).length === 0) return routing;
    const tier = await tierOf(tenantId);
    const scope = profileScopes[tier];
    if (!scope) return routing;
    const at = new Date().toISOString();
    const serviceTier = this.opts.serviceTiers?.[tier] ?? "default";
    // A row of exactly that scope: a "*" row would price the id, but says nothing of a profile existing.
    const modelId = profileModelId(routing.modelId, scope, (id) => this.prices.find(id, this.region, at, { serviceTier })?.scope === scope);
    return modelId === routing.modelId ? routing : { ...routing, modelId };
  }

  /** Catalog cost (nano-USD) of a call's counts; 0 for fixed-cost endpoints and unpriced models. */
  price(provider: "bedrock" | "sagemaker", modelId: string, inputTokens: number, outputTokens: number, cache?: { read?: number; write?: number }): number {
    const r = this.prices.price(
      { provider, modelId, inputTokens, outputTokens, cacheReadInputTokens: cache?.read, cacheWriteInputTokens: cache?.write, occurredAt: new Date().toISOString() },
      this.region,
    );
    return r.costNanoUsd;
  }
}

// --- request shapes -----------------------------------------------------------------------------

/** Converse / ConverseStream: `inferenceConfig.maxTokens`. */
/** Runs the model call; a call that fails gives its reservation back (both wrappers). */
export async function releasedOnError<T>(ticket: AdmissionTicket | undefined, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    void ticket?.release();
    throw error;
  }
}

export const converseShape = {
  maxTokensOf: (r: { inferenceConfig?: { maxTokens?: number } }) => r.inferenceConfig?.maxTokens,
  withMaxTokens: <T extends { inferenceConfig?: object }>(r: T, maxTokens: number): T => ({ ...r, inferenceConfig: { ...r.inferenceConfig, maxTokens } }),
  promptText: (r: { system?: unknown; messages?: unknown[] }) => textOfJson([r.system, r.messages]),
  messages: (r: { messages?: unknown[] }) => r.messages?.length ?? 1,
};

/**
 * InvokeModel bodies by model family: where the output limit lives.
 * Anthropic / Cohere / Mistral `max_tokens`, Meta `max_gen_len`, Titan `textGenerationConfig.maxTokenCount`,
 * Nova `inferenceConfig.maxTokens` (or `max_new_tokens`).
 */
export function invokeMaxTokens(body: unknown): number | undefined {
  const j = asRecord(parseJson(bodyText(body) ?? ""));
  if (!j) return undefined;
  const num = (v: unknown) => (typeof v === "number" && Number.isInteger(v) && v > 0 ? v : undefined);
  return (
    num(j.max_tokens) ??
    num(j.max_gen_len) ??
    num(asRecord(j.textGenerationConfig)?.maxTokenCount) ??
    num(asRecord(j.inferenceConfig)?.maxTokens) ??
    num(asRecord(j.inferenceConfig)?.max_new_tokens)
  );
}

export function invokeWithMaxTokens(modelId: string, body: unknown, maxTokens: number): string | undefined {
  const j = asRecord(parseJson(bodyText(body) ?? ""));
  if (!j) return undefined;
  const base = resolveBaseModelId(modelId);
  if (/^(anthropic|cohere|mistral|ai21)\./.test(base) || "messages" in j) return JSON.stringify({ ...j, max_tokens: maxTokens });
  if (/^meta\./.test(base)) return JSON.stringify({ ...j, max_gen_len: maxTokens });
  if (/^amazon\.titan/.test(base)) return JSON.stringify({ ...j, textGenerationConfig: { ...asRecord(j.textGenerationConfig), maxTokenCount: maxTokens } });
  if (/^amazon\.nova/.test(base)) return JSON.stringify({ ...j, inferenceConfig: { ...asRecord(j.inferenceConfig), maxTokens } });
  return undefined;
}

/** SageMaker LMI/TGI `parameters.max_new_tokens`; chat completions `max_tokens`. */
export function sagemakerMaxTokens(body: unknown): number | undefined {
  const j = asRecord(parseJson(bodyText(body) ?? ""));
  if (!j) return undefined;
  const num = (v: unknown) => (typeof v === "number" && Number.isInteger(v) && v > 0 ? v : undefined);
  return num(asRecord(j.parameters)?.max_new_tokens) ?? num(j.max_tokens) ?? num(j.max_completion_tokens);
}

export function sagemakerWithMaxTokens(body: unknown, maxTokens: number): string | undefined {
  const j = asRecord(parseJson(bodyText(body) ?? ""));
  if (!j) return undefined;
  if ("messages" in j) return JSON.stringify({ ...j, max_tokens: maxTokens });
  if ("inputs" in j) return JSON.stringify({ ...j, parameters: { ...asRecord(j.parameters), max_new_tokens: maxTokens } });
  return undefined;
}

export function jsonMessages(body: unknown): number {
  const j = asRecord(parseJson(bodyText(body) ?? ""));
  return Array.isArray(j?.messages) ? j.messages.length : 1;
}
