import { ENFORCEMENT_DETAIL_TYPES, ENFORCEMENT_SOURCE } from "../quota/events";
import { INVOCATION_DETAIL_TYPE, INVOCATION_SOURCES } from "./invocation";

/**
 * EventBridge rules of the pipeline, as pure data. The SST stack creates one rule per entry
 * (bus -> SQS queue with DLQ -> Lambda); the local stack routes PutEvents entries with the
 * same patterns to the same handlers in SQS-shaped batches.
 */

/** A pattern whose fields list exact values: what a consumer rule takes. */
export interface EventPattern {
  source?: string[];
  "detail-type"?: string[];
}

/** One value matcher of an EventBridge pattern field: an exact value, a prefix, or anything but these values. */
export type PatternMatcher = string | { prefix: string } | { "anything-but": string[] };

/** The subset of EventBridge pattern syntax our rules use (a field matches when any of its matchers does). */
export interface MatcherPattern {
  source?: PatternMatcher[];
  "detail-type"?: PatternMatcher[];
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

/** Sources of the metering namespace start with this. */
export const METERING_SOURCE_PREFIX = "genai.metering.";

/**
 * Every consumer of `genai.metering.*` entries on the pipeline bus: the ingest rule, and the
 * enforcement rules of stacks/Enforcement.ts (ops topic, data plane). Each lists its sources and
 * detail-types exactly; no source belongs to two consumers.
 */
export const METERING_CONSUMERS: readonly EventPattern[] = [
  INGEST_RULE.pattern,
  { source: [ENFORCEMENT_SOURCE], "detail-type": Object.values(ENFORCEMENT_DETAIL_TYPES) },
];

/**
 * The catch rule: a `genai.metering.*` entry that no consumer takes (an unknown source or a
 * detail-type its source does not publish) goes to the ingest queue, whose parser quarantines it
 * (`unexpected-detail-type`, `unknown-source`) instead of EventBridge dropping it without a word.
 *
 * EventBridge cannot say "prefix X but none of these values" on one field, so the rule is a set
 * of disjoint patterns (none overlaps a consumer, none overlaps another, so nothing is delivered
 * twice). The unknown-source pattern matches any source outside the known ones that uses one of
 * our detail-types, inside the namespace or not: on the pipeline bus that is a producer mistake too.
 */
export interface CatchRule {
  name: string;
  /** Name of the queue rule whose queue receives the caught entries. */
  target: string;
  patterns: readonly MatcherPattern[];
}

export const UNCONSUMED_METERING_RULE: CatchRule = {
  name: "unconsumed-metering",
  target: INGEST_RULE.name,
  patterns: unconsumedPatterns(METERING_CONSUMERS),
};

/** The disjoint patterns that together match every namespace entry no consumer takes. */
export function unconsumedPatterns(consumers: readonly EventPattern[]): MatcherPattern[] {
  const sources = consumers.flatMap((c) => c.source ?? []);
  const detailTypes = [...new Set(consumers.flatMap((c) => c["detail-type"] ?? []))];
  if (new Set(sources).size !== sources.length) throw new Error("a metering source belongs to two consumers");
  const patterns: MatcherPattern[] = [
    // a detail-type no consumer takes, from any source of the namespace
    { source: [{ prefix: METERING_SOURCE_PREFIX }], "detail-type": [{ "anything-but": detailTypes }] },
    // one of our detail-types from a source nobody publishes
    { source: [{ "anything-but": sources }], "detail-type": detailTypes },
  ];
  // a known source with a known detail-type of another consumer
  for (const c of consumers) {
    const others = detailTypes.filter((d) => !(c["detail-type"] ?? []).includes(d));
    if (others.length) patterns.push({ source: c.source, "detail-type": others });
  }
  return patterns;
}

/** EventBridge pattern semantics for the subset we use: every named field must match one of its matchers. */
export function matchesPattern(pattern: MatcherPattern, entry: { source?: string; "detail-type"?: string }): boolean {
  return fieldMatches(pattern.source, entry.source) && fieldMatches(pattern["detail-type"], entry["detail-type"]);
}

function fieldMatches(matchers: readonly PatternMatcher[] | undefined, value: string | undefined): boolean {
  if (!matchers) return true;
  // A field the event does not have matches no matcher (anything-but included), as on EventBridge.
  if (value === undefined) return false;
  return matchers.some((m) =>
    typeof m === "string" ? m === value : "prefix" in m ? value.startsWith(m.prefix) : !m["anything-but"].includes(value),
  );
}
