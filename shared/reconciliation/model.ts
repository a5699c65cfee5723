import type { SourceCounts } from "../usage/model";

/**
 * Reconciliation compares what we counted with what AWS itself measured, per model (or
 * SageMaker endpoint / inference component) and UTC hour. Hours are `yyyy-mm-ddTHH`, as in
 * `shared/usage/periods.ts`.
 */

/** Token classes Bedrock publishes in `AWS/Bedrock` per `ModelId` (cache classes only for models with prompt caching). */
export const TOKEN_CLASSES = ["inputTokens", "outputTokens", "cacheReadInputTokens", "cacheWriteInputTokens"] as const;
export type TokenClass = (typeof TOKEN_CLASSES)[number];

export interface BedrockFigures {
  invocations: number;
  inputTokens: number;
  outputTokens: number;
  cacheReadInputTokens: number;
  cacheWriteInputTokens: number;
}

/** AWS's figures of one model and hour; `published` says which token classes AWS has a series for. */
export interface ProviderModelHour extends BedrockFigures {
  modelId: string;
  hour: string;
  published: Record<TokenClass, boolean>;
}

/** Our counted usage of one model and hour, all tenants summed. */
export interface MeteredModelHour extends BedrockFigures {
  modelId: string;
  hour: string;
}

/** SageMaker: AWS's `Invocations` and `ModelLatency` (Sum, microseconds) of an endpoint or inference component. */
export interface ProviderSageMakerHour {
  kind: "endpoint" | "inference-component";
  name: string;
  hour: string;
  invocations: number;
  modelLatencyMs: number;
}

export interface MeteredSageMakerHour {
  kind: "endpoint" | "inference-component";
  name: string;
  hour: string;
  invocations: number;
  inferenceMs: number;
}

/** One line of the drift report: a Bedrock model in one hour. */
export interface BedrockDriftRow {
  hour: string;
  modelId: string;
  aws: BedrockFigures;
  metered: BedrockFigures;
  /** Tokens AWS measured that we did not count (per class, never negative): usage that bypassed the wrappers. */
  unmeteredTokens: number;
  /** Tokens we counted beyond AWS's figures (per class, never negative): estimates, or a clock skew across the hour. */
  overMeteredTokens: number;
  unmeteredInvocations: number;
  overMeteredInvocations: number;
  /** Token classes AWS published no series for (not compared). */
  notPublished: TokenClass[];
  /** |AWS - ours| / AWS over the compared token classes, in percent (0 when both are 0; 100 when AWS is 0 and ours is not). */
  driftPercent: number;
}

export interface SageMakerDriftRow {
  hour: string;
  kind: "endpoint" | "inference-component";
  name: string;
  awsInvocations: number;
  meteredInvocations: number;
  unmeteredInvocations: number;
  overMeteredInvocations: number;
  /** AWS ModelLatency sum vs our inference time: informational (ours includes what the wrapper measured around the call). */
  awsModelLatencyMs: number;
  meteredInferenceMs: number;
  driftPercent: number;
}

export interface DriftTotals {
  awsTokens: number;
  meteredTokens: number;
  unmeteredTokens: number;
  overMeteredTokens: number;
  awsInvocations: number;
  meteredInvocations: number;
  unmeteredInvocations: number;
  /** Share of AWS's tokens we did not count, percent. */
  unmeteredPercent: number;
  /** (unmetered + over-metered) / AWS tokens, percent: the figure the ops alarm watches. */
  driftPercent: number;
  sageMakerAwsInvocations: number;
  sageMakerMeteredInvocations: number;
  sageMakerDriftPercent: number;
}

/**
 * Our tenant-day source counters (on the tenant-day aggregate item, see `shared/usage`): calls by
 * the path that counted them first, and calls the other path reported later.
 */
export interface MeteredTenantDaySources extends SourceCounts {
  tenantId: string;
  day: string;
  /** Calls counted that day (all paths, and before sources were recorded). */
  requests: number;
}

/** One tenant's UTC day: which path reported its calls. Diagnostic; no figure here is billed differently. */
export interface TenantDaySourceRow {
  day: string;
  tenantId: string;
  /** Only a wrapper event: the invocation log never came (logging off, not delivered, or a SageMaker call). */
  wrapperOnlyCalls: number;
  /** Only an invocation-log record: the call bypassed the wrappers, or the wrapper's event was lost. */
  logOnlyCalls: number;
  bothCalls: number;
  /** Counted before the ledger recorded sources (no path known). */
  untrackedCalls: number;
}

export interface InvocationSourcesSection {
  day: string;
  rows: TenantDaySourceRow[];
  totals: { wrapperOnlyCalls: number; logOnlyCalls: number; bothCalls: number; untrackedCalls: number };
}

/** The report of one hour. Deterministic: the same inputs give byte-identical JSON and CSV. */
export interface DriftReport {
  reportVersion: 1;
  hour: string;
  /** Where AWS's figures came from (the CloudWatch namespaces read). */
  sources: string[];
  thresholdPercent: number;
  /** True when `totals.driftPercent` or `totals.sageMakerDriftPercent` is above the threshold. */
  alarm: boolean;
  totals: DriftTotals;
  bedrock: BedrockDriftRow[];
  sagemaker: SageMakerDriftRow[];
  /**
   * Per tenant, the UTC day of this hour by which path reported each call. Only in the report of a
   * day's last hour (`T23`), when the day is complete; null in the others.
   */
  invocationSources: InvocationSourcesSection | null;
}

export function zeroBedrock(): BedrockFigures {
  return { invocations: 0, inputTokens: 0, outputTokens: 0, cacheReadInputTokens: 0, cacheWriteInputTokens: 0 };
}
