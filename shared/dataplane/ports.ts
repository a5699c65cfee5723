import type { InvocationEventV1, InvocationSource } from "../events/invocation";

/** Who the call is made for. `tenantId` must satisfy the event contract's tenant pattern. */
export interface CallContext {
  tenantId: string;
  /** Product feature that made the call (chat, search, ...), for per-feature breakdowns. */
  feature?: string;
}

/** Port: where the wrappers hand finished usage events. Must never throw or block. */
export interface UsageSink {
  /** Returns false when the event was not accepted (invalid, buffer full, closed); it is counted, never silent. */
  emit(event: InvocationEventV1, source: InvocationSource): boolean;
}

/** Counts tokens of a text. Used only where the model server reported no count. */
export type TokenEstimator = (text: string) => number;

/**
 * The documented fallback estimate: ~4 characters per token (English-centric; CJK text has
 * fewer characters per token, so this under-counts it). Every event that used it carries
 * `estimated: true`, which the ingest counts in `estimatedRequests`.
 */
export const charsPerTokenEstimate: TokenEstimator = (text) => (text.length === 0 ? 0 : Math.ceil(text.length / 4));

/** Minimal structured logger (Powertools `Logger` satisfies it). */
export interface DataplaneLogger {
  warn(message: string, extra?: Record<string, unknown>): void;
  error(message: string, extra?: Record<string, unknown>): void;
}

/** Minimal metric counter (see `adapters/metrics.ts` for the Powertools EMF one). */
export interface DataplaneMetrics {
  count(name: string, value: number): void;
}

export const consoleLogger: DataplaneLogger = {
  warn: (message, extra) => console.warn(JSON.stringify({ level: "WARN", message, ...extra })),
  error: (message, extra) => console.error(JSON.stringify({ level: "ERROR", message, ...extra })),
};

export const noMetrics: DataplaneMetrics = { count: () => undefined };
