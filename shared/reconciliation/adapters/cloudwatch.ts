import {
  CloudWatchClient,
  GetMetricDataCommand,
  ListMetricsCommand,
  PutMetricDataCommand,
  type Dimension,
  type MetricDataQuery,
  type MetricDataResult,
} from "@aws-sdk/client-cloudwatch";
import { ReconciliationProviderMetricsError } from "../errors";
import { TOKEN_CLASSES, type ProviderModelHour, type ProviderSageMakerHour, type TokenClass } from "../model";
import type { DriftSignals, HourRange, ProviderMetrics } from "../ports";

/** `AWS/Bedrock` metric names per token class (cache classes are published only for models with prompt caching). */
export const BEDROCK_METRICS: Record<TokenClass | "invocations", string> = {
  invocations: "Invocations",
  inputTokens: "InputTokenCount",
  outputTokens: "OutputTokenCount",
  cacheReadInputTokens: "CacheReadInputTokenCount",
  cacheWriteInputTokens: "CacheWriteInputTokenCount",
};
const BEDROCK_BY_METRIC = new Map(Object.entries(BEDROCK_METRICS).map(([k, v]) => [v, k as TokenClass | "invocations"]));
const SAGEMAKER_METRICS = ["Invocations", "ModelLatency"] as const;
/** GetMetricData takes at most 500 queries per call. */
const MAX_QUERIES = 500;
const HOUR_S = 3600;

interface Series {
  id: string;
  metricName: string;
  namespace: string;
  dimensions: Dimension[];
}

/**
 * AWS's own figures from CloudWatch: ListMetrics finds which models, endpoints and inference
 * components have series (CloudWatch lists series with data in the last two weeks), then
 * GetMetricData reads their hourly `Sum`s. A page that CloudWatch reports as incomplete
 * (`InternalError`, `Forbidden`) fails the run: a hole in AWS's figures must not read as zero.
 *
 * IAM: `cloudwatch:ListMetrics` and `cloudwatch:GetMetricData` support no resource-level
 * permissions (resource `*`); the stack scopes them to nothing narrower because AWS cannot.
 */
export class CloudWatchProviderMetrics implements ProviderMetrics {
  constructor(private readonly cw: CloudWatchClient) {}

  async bedrock(range: HourRange): Promise<ProviderModelHour[]> {
    const series = (await this.list("AWS/Bedrock")).filter(
      (s) => BEDROCK_BY_METRIC.has(s.metricName) && s.dimensions.length === 1 && s.dimensions[0].Name === "ModelId",
    );
    const values = await this.read(series, range);
    const rows = new Map<string, ProviderModelHour>();
    const published = new Map<string, Set<string>>();
    for (const s of series) {
      const modelId = s.dimensions[0].Value!;
      (published.get(modelId) ?? published.set(modelId, new Set()).get(modelId)!).add(s.metricName);
    }
    for (const s of series) {
      const modelId = s.dimensions[0].Value!;
      const field = BEDROCK_BY_METRIC.get(s.metricName)!;
      for (const [hour, value] of values.get(s.id) ?? []) {
        const key = `${modelId}|${hour}`;
        let row = rows.get(key);
        if (!row) {
          const names = published.get(modelId)!;
          row = {
            modelId,
            hour,
            invocations: 0,
            inputTokens: 0,
            outputTokens: 0,
            cacheReadInputTokens: 0,
            cacheWriteInputTokens: 0,
            published: Object.fromEntries(TOKEN_CLASSES.map((c) => [c, names.has(BEDROCK_METRICS[c])])) as Record<TokenClass, boolean>,
          };
          rows.set(key, row);
        }
        row[field] += value;
      }
    }
    return [...rows.values()];
  }

  async sagemaker(range: HourRange): Promise<ProviderSageMakerHour[]> {
    const series = (await this.list("AWS/SageMaker")).filter((s) => (SAGEMAKER_METRICS as readonly string[]).includes(s.metricName) && identity(s) !== undefined);
    const values = await this.read(series, range);
    const rows = new Map<string, ProviderSageMakerHour>();
    for (const s of series) {
      const who = identity(s)!;
      for (const [hour, value] of values.get(s.id) ?? []) {
        const key = `${who.kind}|${who.name}|${hour}`;
        const row = rows.get(key) ?? rows.set(key, { ...who, hour, invocations: 0, modelLatencyMs: 0 }).get(key)!;
        // ModelLatency is in microseconds
        if (s.metricName === "Invocations") row.invocations += value;
        else row.modelLatencyMs += value / 1000;
      }
    }
    return [...rows.values()];
  }

  private async list(namespace: string): Promise<Series[]> {
    const out: Series[] = [];
    let token: string | undefined;
    do {
      const page = await this.cw.send(new ListMetricsCommand({ Namespace: namespace, NextToken: token }));
      for (const m of page.Metrics ?? []) {
        if (!m.MetricName) continue;
        out.push({ id: `m${out.length}`, metricName: m.MetricName, namespace, dimensions: m.Dimensions ?? [] });
      }
      token = page.NextToken;
    } while (token);
    return out;
  }

  /** Hourly sums per series id: hour (yyyy-mm-ddTHH) -> value. */
  private async read(series: readonly Series[], range: HourRange): Promise<Map<string, Map<string, number>>> {
    const out = new Map<string, Map<string, number>>();
    for (let i = 0; i < series.length; i += MAX_QUERIES) {
      const chunk = series.slice(i, i + MAX_QUERIES);
      const queries: MetricDataQuery[] = chunk.map((s) => ({
        Id: s.id,
        MetricStat: { Metric: { Namespace: s.namespace, MetricName: s.metricName, Dimensions: s.dimensions }, Period: HOUR_S, Stat: "Sum" },
        ReturnData: true,
      }));
      let token: string | undefined;
      do {
        const page = await this.cw.send(
          new GetMetricDataCommand({ MetricDataQueries: queries, StartTime: range.from, EndTime: range.to, ScanBy: "TimestampAscending", NextToken: token }),
        );
        for (const r of page.MetricDataResults ?? []) collect(out, r, Boolean(page.NextToken));
        token = page.NextToken;
      } while (token);
    }
    return out;
  }
}

function collect(out: Map<string, Map<string, number>>, r: MetricDataResult, morePages: boolean): void {
  if (!r.Id) return;
  if (r.StatusCode === "InternalError" || r.StatusCode === "Forbidden" || (r.StatusCode === "PartialData" && !morePages)) {
    throw new ReconciliationProviderMetricsError(`CloudWatch returned ${r.StatusCode} for ${r.Label ?? r.Id}; the hour is not reconciled`);
  }
  const byHour = out.get(r.Id) ?? out.set(r.Id, new Map()).get(r.Id)!;
  (r.Timestamps ?? []).forEach((t, i) => {
    const hour = new Date(Math.floor(t.getTime() / 3_600_000) * 3_600_000).toISOString().slice(0, 13);
    byHour.set(hour, (byHour.get(hour) ?? 0) + (r.Values?.[i] ?? 0));
  });
}

/** Endpoint series carry EndpointName + VariantName; inference-component series carry InferenceComponentName. */
function identity(s: Series): { kind: "endpoint" | "inference-component"; name: string } | undefined {
  const names = s.dimensions.map((d) => d.Name).sort().join(",");
  if (names === "InferenceComponentName") return { kind: "inference-component", name: s.dimensions[0].Value! };
  if (names === "EndpointName,VariantName") return { kind: "endpoint", name: s.dimensions.find((d) => d.Name === "EndpointName")!.Value! };
  return undefined;
}

/** The client the job uses (endpoint override for the local stack: AWS_ENDPOINT_URL_CLOUDWATCH). */
export function cloudWatchClient(region: string, endpoint?: string): CloudWatchClient {
  return new CloudWatchClient({ region, endpoint });
}

/**
 * `UnmeteredTokens` / `DriftPercent` through PutMetricData, for runs outside Lambda (the CLI),
 * where no log pipeline turns EMF lines into metrics. Same names and units as the EMF signals.
 */
export class PutMetricDataDriftSignals implements DriftSignals {
  constructor(
    private readonly cw: CloudWatchClient,
    private readonly namespace: string,
    private readonly serviceName: string,
  ) {}

  async emit(hour: string, signal: { unmeteredTokensDelta: number; driftPercent: number; alarm: boolean }): Promise<void> {
    const Timestamp = new Date(`${hour}:00:00Z`);
    const Dimensions = [{ Name: "service", Value: this.serviceName }];
    await this.cw.send(
      new PutMetricDataCommand({
        Namespace: this.namespace,
        MetricData: [
          { MetricName: "UnmeteredTokens", Dimensions, Timestamp, Unit: "Count", Value: signal.unmeteredTokensDelta },
          { MetricName: "DriftPercent", Dimensions, Timestamp, Unit: "Percent", Value: signal.driftPercent },
        ],
      }),
    );
  }
}
