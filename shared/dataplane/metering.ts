import { randomUUID } from "node:crypto";
import { tenantIdSchema, type InvocationEventV1, type InvocationSource } from "../events/invocation";
import type { DecisionSource, TenantDecision } from "./decisions";
import { DataplaneInvalidTenantError, DataplaneRequestInvalidError, TenantThrottledError } from "./errors";
import type { CallContext, DataplaneLogger, UsageSink } from "./ports";

/**
 * What both wrappers do around a model call, without any SDK: check the tenant, ask for the
 * decision, turn a throttle into an error before the model is called, choose the model on a
 * downgrade, and hand the finished event to the sink without ever failing the call.
 */

export interface Routing {
  modelId: string;
  /** Set when a downgrade replaced the model the caller asked for. */
  requestedModelId?: string;
  decision: TenantDecision;
}

export function assertTenant(ctx: CallContext): void {
  const parsed = tenantIdSchema.safeParse(ctx?.tenantId);
  if (!parsed.success) {
    throw new DataplaneInvalidTenantError(
      `tenantId '${String(ctx?.tenantId)}' cannot be metered: ${parsed.error.issues[0]?.message ?? "invalid"}`,
      ctx?.tenantId,
    );
  }
  // Checked here, not only by the emitter: an invalid name would make the event fail the
  // contract after the model was already paid for.
  for (const [field, value] of Object.entries({ feature: ctx.feature, adapterId: (ctx as { adapterId?: unknown }).adapterId })) {
    if (value !== undefined && (typeof value !== "string" || !NAME_PATTERN.test(value))) {
      throw new DataplaneRequestInvalidError(`${field} must be 1-256 chars without '#' or control characters`);
    }
  }
}

const NAME_PATTERN = /^[^#\u0000-\u001f]{1,256}$/;

/**
 * Throttle: throws {@link TenantThrottledError} and nothing is emitted. The ingest counts every
 * valid event as a request, so a "throttled" event with zero tokens would inflate the request
 * count (and request quotas) with calls that never reached a model; throttles are visible in
 * the enforcement log and the wrapper's `throttled` counter instead.
 */
export async function route(
  decisions: DecisionSource,
  tenantId: string,
  modelId: string,
  canDowngrade: boolean,
  logger: DataplaneLogger,
): Promise<Routing> {
  let decision: TenantDecision;
  try {
    decision = await decisions.get(tenantId);
  } catch (error) {
    // A bare source (no cache in front) failed: same policy as the cache with nothing known.
    logger.warn("decision source failed; failing open to allow", {
      tenantId,
      error: error instanceof Error ? error.message : String(error),
    });
    decision = { tenantId, decision: "allow", reason: "fail-open: decision unavailable" };
  }
  if (decision.decision === "throttle") {
    throw new TenantThrottledError(tenantId, decision.retryAfterSeconds, decision.reason);
  }
  if (decision.decision === "downgrade" && canDowngrade && decision.targetModelId && decision.targetModelId !== modelId) {
    return { modelId: decision.targetModelId, requestedModelId: modelId, decision };
  }
  return { modelId, decision };
}

export function eventIdFrom(requestId: string | undefined): string {
  return requestId && /^[A-Za-z0-9._:\/@+=-]{1,128}$/.test(requestId) ? requestId : randomUUID();
}

/** Hands an event to the sink; metering problems are logged, never thrown into the caller's call. */
export function safeEmit(sink: UsageSink, event: InvocationEventV1, source: InvocationSource, logger: DataplaneLogger): void {
  try {
    sink.emit(event, source);
  } catch (error) {
    logger.error("usage sink threw; event not emitted", {
      tenantId: event.tenantId,
      eventId: event.eventId,
      error: error instanceof Error ? error.message : String(error),
    });
  }
}

export type StreamEnd = "success" | "aborted" | "error";

/**
 * Wraps a response stream so the caller consumes it unchanged while the wrapper observes
 * every item, and learns exactly once how it ended:
 * - "success": the stream completed;
 * - "aborted": the consumer stopped early (`break`, `return`) - the generator's `finally`
 *   runs on `return()`, which also cancels the underlying HTTP stream;
 * - "error": the stream threw (the error is rethrown to the consumer).
 * A stream that is never iterated is never metered; wrappers document this.
 */
export async function* observeStream<T>(
  source: AsyncIterable<T>,
  observe: (item: T) => void,
  finish: (end: StreamEnd, error?: unknown) => void,
): AsyncGenerator<T, void, undefined> {
  let end: StreamEnd = "aborted";
  let failure: unknown;
  try {
    for await (const item of source) {
      try {
        observe(item);
      } catch {
        // observation must never break the consumer's stream
      }
      yield item;
    }
    end = "success";
  } catch (error) {
    end = "error";
    failure = error;
    throw error;
  } finally {
    try {
      finish(end, failure);
    } catch {
      // a throw here would replace the consumer's own error or early return
    }
  }
}

export function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
