import { MAX_TOKENS_PER_CALL } from "../events/invocation";
import type { TokenEstimator } from "./ports";

/**
 * Pure usage extraction from what Bedrock and SageMaker model servers return. No SDK imports:
 * the adapters hand in plain headers, decoded JSON and text.
 */

/** Bedrock service tiers a response can report it was served in. */
export type ReportedServiceTier = "priority" | "default" | "flex" | "reserved";

/** Token counts as reported by a server; undefined = not reported. */
export interface ReportedUsage {
  inputTokens?: number;
  outputTokens?: number;
  cacheReadInputTokens?: number;
  /** All cache writes (5-minute and 1-hour TTL). */
  cacheWriteInputTokens?: number;
  /** The part of the cache writes with a 1-hour TTL. */
  cacheWrite1hInputTokens?: number;
  latencyMs?: number;
  /** Service tier the response says served the call. */
  serviceTier?: ReportedServiceTier;
  /** Model a prompt router invoked (the one billed). */
  invokedModelId?: string;
}

export interface ResolvedUsage {
  inputTokens: number;
  outputTokens: number;
  cacheReadInputTokens?: number;
  cacheWriteInputTokens?: number;
  cacheWrite1hInputTokens?: number;
  serviceTier?: ReportedServiceTier;
  invokedModelId?: string;
  /** True when at least one of the counts came from an estimator, not the server. */
  estimated: boolean;
}

/** Bedrock InvokeModel response headers (lower-case names, as the Node HTTP handler gives them). */
export const BEDROCK_HEADERS = {
  inputTokens: "x-amzn-bedrock-input-token-count",
  outputTokens: "x-amzn-bedrock-output-token-count",
  cacheReadInputTokens: "x-amzn-bedrock-cache-read-input-token-count",
  cacheWriteInputTokens: "x-amzn-bedrock-cache-write-input-token-count",
  latencyMs: "x-amzn-bedrock-invocation-latency",
  serviceTier: "x-amzn-bedrock-service-tier",
  requestId: "x-amzn-requestid",
} as const;

const SERVICE_TIERS: readonly string[] = ["priority", "default", "flex", "reserved"];

/** A service tier as Bedrock reports it (header value, `serviceTier.type`, or `{ type }`); undefined if unknown. */
export function serviceTierOf(v: unknown): ReportedServiceTier | undefined {
  const t = typeof v === "string" ? v : asRecord(v)?.type;
  return typeof t === "string" && SERVICE_TIERS.includes(t.trim().toLowerCase()) ? (t.trim().toLowerCase() as ReportedServiceTier) : undefined;
}

/** Converse / ConverseStream metadata beyond the counts: the tier that served it and the model a prompt router invoked. */
export function callFactsFromConverse(response: unknown): Pick<ReportedUsage, "serviceTier" | "invokedModelId"> {
  const r = asRecord(response);
  if (!r) return {};
  const invoked = asRecord(asRecord(r.trace)?.promptRouter)?.invokedModelId;
  return compact({
    serviceTier: serviceTierOf(r.serviceTier),
    invokedModelId: typeof invoked === "string" && invoked ? invoked : undefined,
  });
}

export function usageFromHeaders(headers: Record<string, string | undefined>): ReportedUsage {
  const lower: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(headers)) lower[k.toLowerCase()] = v;
  return compact({
    inputTokens: count(lower[BEDROCK_HEADERS.inputTokens]),
    outputTokens: count(lower[BEDROCK_HEADERS.outputTokens]),
    cacheReadInputTokens: count(lower[BEDROCK_HEADERS.cacheReadInputTokens]),
    cacheWriteInputTokens: count(lower[BEDROCK_HEADERS.cacheWriteInputTokens]),
    latencyMs: count(lower[BEDROCK_HEADERS.latencyMs]),
    serviceTier: serviceTierOf(lower[BEDROCK_HEADERS.serviceTier]),
  });
}

/**
 * Converse / ConverseStream `usage` (TokenUsage): `cacheWriteInputTokens` is all writes,
 * `cacheDetails` splits them by TTL (`[{ ttl: "1h", inputTokens }, { ttl: "5m", inputTokens }]`).
 * Also reads Nova's InvokeModel body usage, which names its cache counts
 * `cacheReadInputTokenCount` / `cacheWriteInputTokenCount`.
 */
export function usageFromConverse(usage: unknown): ReportedUsage {
  const u = asRecord(usage);
  if (!u) return {};
  const details = Array.isArray(u.cacheDetails) ? u.cacheDetails.map(asRecord) : undefined;
  const oneHour = details
    ?.filter((d) => d?.ttl === "1h")
    .reduce<number | undefined>((s, d) => (s === undefined || count(d?.inputTokens) === undefined ? undefined : s + count(d?.inputTokens)!), 0);
  return compact({
    inputTokens: count(u.inputTokens),
    outputTokens: count(u.outputTokens),
    cacheReadInputTokens: count(u.cacheReadInputTokens) ?? count(u.cacheReadInputTokenCount),
    cacheWriteInputTokens: count(u.cacheWriteInputTokens) ?? count(u.cacheWriteInputTokenCount),
    cacheWrite1hInputTokens: oneHour,
  });
}

/** The `amazon-bedrock-invocationMetrics` object Bedrock appends to the last stream chunk. */
export function usageFromInvocationMetrics(chunk: unknown): ReportedUsage | undefined {
  const m = asRecord(asRecord(chunk)?.["amazon-bedrock-invocationMetrics"]);
  if (!m) return undefined;
  return compact({
    inputTokens: count(m.inputTokenCount),
    outputTokens: count(m.outputTokenCount),
    cacheReadInputTokens: count(m.cacheReadInputTokenCount),
    cacheWriteInputTokens: count(m.cacheWriteInputTokenCount),
    latencyMs: count(m.invocationLatency),
  });
}

/**
 * Usage that a model family writes into its own InvokeModel response body. Used when the
 * headers were not captured (e.g. a client whose middleware stack we could not reach).
 * Anthropic Messages, Amazon Nova, Meta Llama, Amazon Titan Text, Cohere (billed units).
 */
export function usageFromBedrockBody(body: unknown): ReportedUsage {
  const b = asRecord(body);
  if (!b) return {};
  const usage = asRecord(b.usage);
  if (usage && (usage.input_tokens !== undefined || usage.output_tokens !== undefined)) {
    // Anthropic: cache_creation_input_tokens is all writes; cache_creation splits them by TTL
    return compact({
      inputTokens: count(usage.input_tokens),
      outputTokens: count(usage.output_tokens),
      cacheReadInputTokens: count(usage.cache_read_input_tokens),
      cacheWriteInputTokens: count(usage.cache_creation_input_tokens),
      cacheWrite1hInputTokens: count(asRecord(usage.cache_creation)?.ephemeral_1h_input_tokens),
    });
  }
  if (usage && (usage.inputTokens !== undefined || usage.outputTokens !== undefined)) return usageFromConverse(usage);
  if (b.prompt_token_count !== undefined || b.generation_token_count !== undefined) {
    return compact({ inputTokens: count(b.prompt_token_count), outputTokens: count(b.generation_token_count) });
  }
  if (b.inputTextTokenCount !== undefined && Array.isArray(b.results)) {
    const out = b.results.reduce<number | undefined>((s, r) => {
      const n = count(asRecord(r)?.tokenCount);
      return n === undefined || s === undefined ? undefined : s + n;
    }, 0);
    return compact({ inputTokens: count(b.inputTextTokenCount), outputTokens: out });
  }
  // Embeddings (Titan Text Embeddings `{ embedding, inputTextTokenCount }`, Nova multimodal
  // `{ embeddings: [...] }`, Cohere `{ embeddings, texts }`): input only, no output tokens.
  if (Array.isArray(b.embedding) || Array.isArray(b.embeddings) || asRecord(b.embeddings) || asRecord(b.embeddingsByType)) {
    return compact({ inputTokens: count(b.inputTextTokenCount) ?? count(b.inputTokenCount), outputTokens: 0 });
  }
  const billed = asRecord(asRecord(b.meta)?.billed_units);
  if (billed) return compact({ inputTokens: count(billed.input_tokens), outputTokens: count(billed.output_tokens) });
  return {};
}

/**
 * Usage an Anthropic Messages stream reports in-band: `message_start.message.usage.input_tokens`
 * and the cumulative `message_delta.usage.output_tokens`. Lets an aborted stream keep the exact
 * input count even though Bedrock's invocation metrics never arrived.
 */
export function usageFromAnthropicStreamEvent(chunk: unknown): ReportedUsage | undefined {
  const c = asRecord(chunk);
  if (!c) return undefined;
  if (c.type === "message_start") {
    const u = asRecord(asRecord(c.message)?.usage);
    if (!u) return undefined;
    return compact({
      inputTokens: count(u.input_tokens),
      cacheReadInputTokens: count(u.cache_read_input_tokens),
      cacheWriteInputTokens: count(u.cache_creation_input_tokens),
      cacheWrite1hInputTokens: count(asRecord(u.cache_creation)?.ephemeral_1h_input_tokens),
    });
  }
  if (c.type === "message_delta") {
    const u = asRecord(c.usage);
    return u ? compact({ outputTokens: count(u.output_tokens) }) : undefined;
  }
  return undefined;
}

/** Generated text in one InvokeModelWithResponseStream chunk, across the common model families. */
export function textOfBedrockChunk(chunk: unknown): string {
  const c = asRecord(chunk);
  if (!c) return "";
  const delta = asRecord(c.delta);
  if (c.type === "content_block_delta" && delta) return str(delta.text) + str(delta.thinking) + str(delta.partial_json);
  const nova = asRecord(asRecord(asRecord(c.contentBlockDelta)?.delta));
  if (nova) return str(nova.text);
  if (typeof c.generation === "string") return c.generation; // Llama
  if (typeof c.outputText === "string") return c.outputText; // Titan
  if (typeof c.completion === "string") return c.completion; // Anthropic text completions
  if (Array.isArray(c.outputs)) return c.outputs.map((o) => str(asRecord(o)?.text)).join(""); // Mistral
  if (typeof c.text === "string") return c.text; // Cohere
  return "";
}

/** Keys whose string values are protocol, not prompt text (kept out of estimates). */
const NON_TEXT_KEYS = new Set([
  "role", "type", "anthropic_version", "model", "modelId", "stop_reason", "stopReason", "finish_reason",
  "id", "adapters", "format", "media_type", "source", "toolUseId", "name", "stop", "stop_sequences",
]);

/** All prose in a request/response JSON document (for estimates only). */
export function textOfJson(value: unknown, depth = 0): string {
  if (depth > 32) return "";
  if (typeof value === "string") return value;
  if (Array.isArray(value)) return value.map((v) => textOfJson(v, depth + 1)).join("\n");
  const r = asRecord(value);
  if (!r) return "";
  const parts: string[] = [];
  for (const [k, v] of Object.entries(r)) {
    if (NON_TEXT_KEYS.has(k)) continue;
    const t = textOfJson(v, depth + 1);
    if (t) parts.push(t);
  }
  return parts.join("\n");
}

/**
 * Combines what the server reported with estimates for what it did not. Only the missing
 * counts are estimated, and then the result says so (`estimated: true`).
 */
export function resolveUsage(
  reported: ReportedUsage,
  fallback: { promptText: () => string; outputText: () => string; estimator: TokenEstimator; promptTokens?: number },
): ResolvedUsage {
  let estimated = false;
  let inputTokens = reported.inputTokens;
  if (inputTokens === undefined && fallback.promptTokens !== undefined) inputTokens = fallback.promptTokens;
  if (inputTokens === undefined) {
    inputTokens = clampTokens(fallback.estimator(fallback.promptText()));
    estimated = true;
  }
  let outputTokens = reported.outputTokens;
  if (outputTokens === undefined) {
    outputTokens = clampTokens(fallback.estimator(fallback.outputText()));
    estimated = true;
  }
  return compact({
    inputTokens,
    outputTokens,
    cacheReadInputTokens: reported.cacheReadInputTokens,
    cacheWriteInputTokens: reported.cacheWriteInputTokens,
    // a 1h count is part of the writes: never more than them (a partial report cannot inflate the price)
    cacheWrite1hInputTokens:
      reported.cacheWrite1hInputTokens === undefined ? undefined : Math.min(reported.cacheWrite1hInputTokens, reported.cacheWriteInputTokens ?? 0),
    serviceTier: reported.serviceTier,
    invokedModelId: reported.invokedModelId,
    estimated,
  }) as ResolvedUsage;
}

/** Later reports override earlier ones field by field (cumulative stream counters). */
export function mergeUsage(into: ReportedUsage, next: ReportedUsage | undefined): ReportedUsage {
  return next ? { ...into, ...compact(next) } : into;
}

export function clampTokens(n: number): number {
  if (!Number.isFinite(n) || n < 0) return 0;
  return Math.min(Math.round(n), MAX_TOKENS_PER_CALL);
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

const decoder = new TextDecoder();
export function decodeUtf8(bytes: Uint8Array | string | undefined): string {
  if (bytes === undefined) return "";
  return typeof bytes === "string" ? bytes : decoder.decode(bytes);
}

/** Text of a request body the caller handed the SDK, when it is in memory (not a stream or Blob). */
export function bodyText(body: unknown): string | undefined {
  if (typeof body === "string") return body;
  if (body instanceof Uint8Array) return decoder.decode(body);
  if (body instanceof ArrayBuffer) return decoder.decode(new Uint8Array(body));
  if (ArrayBuffer.isView(body)) return decoder.decode(new Uint8Array(body.buffer, body.byteOffset, body.byteLength));
  return undefined;
}

export function asRecord(v: unknown): Record<string, unknown> | undefined {
  return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

function str(v: unknown): string {
  return typeof v === "string" ? v : "";
}

/** A non-negative integer token count from a number or a numeric string; otherwise undefined. */
export function count(v: unknown): number | undefined {
  const n = typeof v === "string" && /^\d+$/.test(v.trim()) ? Number(v.trim()) : v;
  return typeof n === "number" && Number.isInteger(n) && n >= 0 && n <= MAX_TOKENS_PER_CALL ? n : undefined;
}

function compact<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
