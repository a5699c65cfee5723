import { INVOCATION_DETAIL_TYPE, INVOCATION_SOURCES } from "./invocation";

/**
 * EventBridge rules of the pipeline, as pure data. The SST stack creates one rule per entry
 * (bus -> SQS queue with DLQ -> Lambda); the local stack routes PutEvents entries with the
 * same patterns to the same handlers in SQS-shaped batches.
 */
export interface EventPattern {
  source?: string[];
  "detail-type"?: string[];
}

export interface QueueRule {
  name: string;
  pattern: EventPattern;
  /** `functions/...` module and export run for each SQS batch. */
  handler: string;
  batchSize: number;
  /** Receives before a message moves to the DLQ. */
  maxReceiveCount: number;
  visibilityTimeoutSeconds: number;
  maxBatchingWindowSeconds: number;
  /**
   * Batches handled at once (the event source's maximum concurrency). Each batch writes an
   * aggregate item at most once, so this bounds one item's writes per second.
   */
  maxConcurrency: number;
}

export const INGEST_RULE: QueueRule = {
  name: "ingest",
  pattern: { source: Object.values(INVOCATION_SOURCES), "detail-type": [INVOCATION_DETAIL_TYPE] },
  handler: "functions/sqs/ingest.handler",
  // Large batches let one aggregate ADD cover many events of a tenant (README, "Figures": 500 was slower than the naive baseline, 2,000 beats it).
  // SQS allows batches above 10 only with a batching window of at least 1 s.
  batchSize: 2000,
  maxReceiveCount: 5,
  visibilityTimeoutSeconds: 180,
  maxBatchingWindowSeconds: 1,
  // at most 5 batches in flight, each >= the 1 s window: a hot tenant's aggregate item takes
  // at most ~5 writes per second, while 5 x 2,000-event batches leave ample throughput
  maxConcurrency: 5,
};

export const QUEUE_RULES: readonly QueueRule[] = [INGEST_RULE];

/** EventBridge pattern semantics for the subset we use: every named field must equal one of the listed values. */
export function matchesPattern(pattern: EventPattern, entry: { source?: string; "detail-type"?: string }): boolean {
  if (pattern.source && !pattern.source.includes(entry.source ?? "")) return false;
  if (pattern["detail-type"] && !pattern["detail-type"].includes(entry["detail-type"] ?? "")) return false;
  return true;
}
