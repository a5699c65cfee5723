import type { MeteredModelHour, MeteredSageMakerHour, MeteredTenantDaySources, ProviderModelHour, ProviderSageMakerHour } from "./model";

/** A half-open range of whole UTC hours, [from, to). */
export interface HourRange {
  from: Date;
  to: Date;
}

/** Port: AWS's own figures (CloudWatch `AWS/Bedrock` and `AWS/SageMaker`), per hour. */
export interface ProviderMetrics {
  bedrock(range: HourRange): Promise<ProviderModelHour[]>;
  sagemaker(range: HourRange): Promise<ProviderSageMakerHour[]>;
}

/** Port: what the pipeline counted (every tenant summed), per hour. */
export interface MeteredUsage {
  /** Bedrock models (ids as the events named them: ids, profile ids or ARNs). */
  bedrock(range: HourRange): Promise<MeteredModelHour[]>;
  /** SageMaker endpoints and inference components named in `names` (from AWS's metrics and the endpoint catalog). */
  sagemaker(range: HourRange, names: { endpoints: readonly string[]; inferenceComponents: readonly string[] }): Promise<MeteredSageMakerHour[]>;
  /** Every tenant's source counters of one UTC day (`yyyy-mm-dd`); tenants without usage that day are left out. */
  tenantDaySources(day: string): Promise<MeteredTenantDaySources[]>;
}

/** Port: where reports go. Writing the same path twice replaces the file. */
export interface ReportSink {
  put(path: string, body: string, contentType: string): Promise<void>;
  locate(path: string): string;
}

/** What the signal store knew about an hour before this run. */
export type SignalRecord =
  /** First report of the hour: emit its metrics. */
  | { kind: "new" }
  /** The same report was already signalled (a re-run): emit nothing. */
  | { kind: "same" }
  /** The hour's report changed (late usage or late AWS figures): emit the difference. */
  | { kind: "changed"; previousUnmeteredTokens: number };

/**
 * Port: one record per reconciled hour (its report digest and unmetered tokens), so the
 * `UnmeteredTokens` metric of an hour is emitted once however often the hour is re-run.
 */
export interface SignalStore {
  record(hour: string, digest: string, unmeteredTokens: number, now: Date): Promise<SignalRecord>;
}

/** Port: the metrics and alarm signal of a report (EMF on Lambda, the local CloudWatch locally). */
export interface DriftSignals {
  /** `unmeteredTokensDelta` is what this run adds to the hour's `UnmeteredTokens` sum. */
  emit(hour: string, signal: { unmeteredTokensDelta: number; driftPercent: number; alarm: boolean }): Promise<void>;
}
