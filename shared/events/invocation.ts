import { z } from "zod";

/**
 * Event contract v1: one model invocation, as emitted by the data-plane wrappers
 * (and by the invocation-log source) onto EventBridge.
 *
 * EventBridge envelope: `source` is one of {@link INVOCATION_SOURCES}, `detail-type` is
 * {@link INVOCATION_DETAIL_TYPE}, `detail` is {@link InvocationEventV1}.
 */
export const INVOCATION_DETAIL_TYPE = "Model Invocation";
export const INVOCATION_SCHEMA_VERSION = "1";
export const INVOCATION_SOURCES = {
  bedrock: "genai.metering.bedrock",
  sagemaker: "genai.metering.sagemaker",
  invocationLog: "genai.metering.invocation-log",
} as const;
export type InvocationSource = (typeof INVOCATION_SOURCES)[keyof typeof INVOCATION_SOURCES];

/** Upper bound for any single token count: far above any context window, far below float trouble. */
export const MAX_TOKENS_PER_CALL = 10_000_000;

/**
 * Tenant ids become part of DynamoDB keys (`TENANT#<id>`) and metric dimensions, so they
 * may not contain the key delimiter `#`, whitespace, or control characters, and are bounded.
 */
export const TENANT_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$/;
export const tenantIdSchema = z
  .string()
  .regex(TENANT_ID_PATTERN, "tenantId must be 1-64 chars of [A-Za-z0-9._:@-], starting alphanumeric");

/** Model ids, inference-profile ARNs and endpoint names: no key delimiter, bounded. */
export const modelIdSchema = z
  .string()
  .min(1)
  .max(256)
  .regex(/^[^#\s\u0000-\u001f]+$/, "modelId may not contain '#', whitespace or control characters");

const tokenCount = z
  .number()
  .int("token counts must be integers")
  .nonnegative("token counts must be >= 0")
  .max(MAX_TOKENS_PER_CALL, `token counts must be <= ${MAX_TOKENS_PER_CALL}`);

const optionalName = z
  .string()
  .min(1)
  .max(256)
  .regex(/^[^#\u0000-\u001f]+$/, "names may not contain '#' or control characters")
  .optional();

export const invocationEventV1Schema = z
  .object({
    /** Idempotency key: the same invocation always carries the same eventId. */
    eventId: z
      .string()
      .min(1)
      .max(128)
      .regex(/^[A-Za-z0-9._:\/@+=-]+$/, "eventId must be 1-128 chars of [A-Za-z0-9._:/@+=-]"),
    tenantId: tenantIdSchema,
    /** Event time (ISO 8601 with zone); aggregation periods follow it, not arrival time. */
    occurredAt: z.iso.datetime({ offset: true }),
    provider: z.enum(["bedrock", "sagemaker"]),
    modelId: modelIdSchema,
    inputTokens: tokenCount,
    outputTokens: tokenCount,
    cacheReadInputTokens: tokenCount.optional(),
    /** All cache writes (5-minute and 1-hour TTL), as Bedrock reports `cacheWriteInputTokens`. */
    cacheWriteInputTokens: tokenCount.optional(),
    /** The part of `cacheWriteInputTokens` written with a 1-hour TTL (billed higher than 5-minute writes). */
    cacheWrite1hInputTokens: tokenCount.optional(),
    /** Bedrock service tier that served the call, from the response (`default` when absent). */
    serviceTier: z.enum(["priority", "default", "flex", "reserved"]).optional(),
    /** Model a prompt router actually invoked (Converse trace `promptRouter.invokedModelId`): priced instead of `modelId`. */
    invokedModelId: modelIdSchema.optional(),
    /** AWS region the call was made in (the source region of a cross-region profile): prices follow it. */
    region: z
      .string()
      .regex(/^[a-z]{2}(-[a-z]+)+-\d{1,2}$/, "region must be an AWS region name like us-west-2")
      .optional(),
    endpointName: optionalName,
    variantName: optionalName,
    inferenceComponentName: optionalName,
    adapterId: optionalName,
    latencyMs: z.number().nonnegative().max(86_400_000).optional(),
    status: z.enum(["success", "error", "aborted", "throttled"]).optional(),
    feature: optionalName,
    /** Tier the data plane served the call under (informational; the stored tenant tier wins). */
    tier: optionalName,
    /** True when a token count was estimated rather than reported by the model server. */
    estimated: z.boolean().optional(),
    /** Model the caller asked for, when the wrapper downgraded the call to `modelId`. */
    requestedModelId: modelIdSchema.optional(),
    schemaVersion: z.literal(INVOCATION_SCHEMA_VERSION).optional(),
  })
  .strict()
  .refine((e) => (e.cacheWrite1hInputTokens ?? 0) <= (e.cacheWriteInputTokens ?? 0), {
    message: "cacheWrite1hInputTokens is part of cacheWriteInputTokens and cannot exceed it",
    path: ["cacheWrite1hInputTokens"],
  });

export type InvocationEventV1 = z.infer<typeof invocationEventV1Schema>;

/** The EventBridge envelope as delivered to SQS by a rule (only the fields we rely on). */
export const eventBridgeEnvelopeSchema = z.object({
  version: z.string().optional(),
  id: z.string().optional(),
  "detail-type": z.string(),
  source: z.string(),
  time: z.string().optional(),
  detail: z.unknown(),
});

export class InvalidInvocationEventError extends Error {
  constructor(
    message: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "InvalidInvocationEventError";
  }
}

/**
 * Parses one SQS message body (an EventBridge envelope) into a v1 invocation event.
 * Throws {@link InvalidInvocationEventError} with a short machine-readable reason and a
 * human-readable message naming the offending fields.
 */
export function parseInvocationMessage(body: string): InvocationEventV1 {
  return parseInvocationEnvelope(body).event;
}

/** Which delivery path reported a call: a data-plane wrapper's own event, or Bedrock's invocation log. */
export type InvocationOrigin = "wrapper" | "log";

export function originOf(source: InvocationSource): InvocationOrigin {
  return source === INVOCATION_SOURCES.invocationLog ? "log" : "wrapper";
}

/** {@link parseInvocationMessage}, keeping the envelope's `source` (which path delivered the call). */
export function parseInvocationEnvelope(body: string): { source: InvocationSource; event: InvocationEventV1 } {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch (cause) {
    throw new InvalidInvocationEventError("message body is not valid JSON", "malformed-json", { cause });
  }
  const envelope = eventBridgeEnvelopeSchema.safeParse(json);
  if (!envelope.success) {
    throw new InvalidInvocationEventError(
      `not an EventBridge envelope: ${formatIssues(envelope.error)}`,
      "not-an-envelope",
    );
  }
  if (envelope.data["detail-type"] !== INVOCATION_DETAIL_TYPE) {
    throw new InvalidInvocationEventError(
      `unexpected detail-type '${truncate(envelope.data["detail-type"])}'`,
      "unexpected-detail-type",
    );
  }
  // The ingest rule takes only the invocation sources; anything else reached the queue through
  // the catch rule (shared/events/rules.ts) and must not be counted as usage.
  if (!INVOCATION_SOURCE_SET.has(envelope.data.source)) {
    throw new InvalidInvocationEventError(`unknown source '${truncate(envelope.data.source)}'`, "unknown-source");
  }
  return { source: envelope.data.source as InvocationSource, event: parseInvocationDetail(envelope.data.detail) };
}

const INVOCATION_SOURCE_SET: ReadonlySet<string> = new Set(Object.values(INVOCATION_SOURCES));

export function parseInvocationDetail(detail: unknown): InvocationEventV1 {
  const parsed = invocationEventV1Schema.safeParse(detail);
  if (!parsed.success) {
    throw new InvalidInvocationEventError(`invalid invocation event: ${formatIssues(parsed.error)}`, "schema");
  }
  return parsed.data;
}

/** A zod error's issues as `path: message; ...` (`(root)` for the whole value), the first `limit`. */
export function formatIssues(error: z.ZodError, limit = 5): string {
  return error.issues
    .slice(0, limit)
    .map((i) => `${i.path.length ? i.path.join(".") : "(root)"}: ${i.message}`)
    .join("; ");
}

function truncate(s: string, n = 64): string {
  return s.length > n ? `${s.slice(0, n)}...` : s;
}
