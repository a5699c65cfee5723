import { gunzipSync } from "node:zlib";
import type { IncomingHttpHeaders } from "node:http";
import type { HttpReply } from "./http-api";

/**
 * A local CloudWatch for the calls this project makes: `PutMetricData`, `GetMetricData` and
 * `ListMetrics`, in the wire protocol the installed `@aws-sdk/client-cloudwatch` (3.1164)
 * sends: AWS JSON 1.0 (`X-Amz-Target: GraniteServiceVersion20100801.<Operation>`, timestamps as
 * epoch seconds), query-compatible errors (`x-amzn-query-error: <Code>;Sender` plus a JSON
 * `__type`). PutMetricData bodies over 10 KB arrive gzip-compressed (`Content-Encoding: gzip`).
 *
 * Like AWS: an unknown namespace, metric or dimension set answers empty (not an error); a
 * malformed request answers 400 with the error AWS gives; `AWS/` namespaces cannot be written
 * with PutMetricData (the simulated AWS/Bedrock figures of the demo go through
 * {@link LocalCloudWatch.publishAwsMetric}, which has no AWS counterpart). It also keeps the
 * EMF lines the handlers print ({@link LocalCloudWatch.ingestEmf}), so what Lambda would
 * turn into metrics can be read back with GetMetricData.
 *
 * Not implemented (a request for them fails, never answers silently): metric math and SEARCH
 * expressions, alarms, dashboards, percentiles/extended statistics, anomaly detection.
 */

export const CLOUDWATCH_TARGET_PREFIX = "GraniteServiceVersion20100801.";

/** Whether a `POST /` request is for CloudWatch (its X-Amz-Target names the CloudWatch service). */
export function isCloudWatchRequest(headers: IncomingHttpHeaders): boolean {
  return String(headers["x-amz-target"] ?? "").startsWith(CLOUDWATCH_TARGET_PREFIX);
}

export interface Dimension {
  Name: string;
  Value: string;
}

interface Sample {
  /** epoch ms */
  at: number;
  sum: number;
  count: number;
  min: number;
  max: number;
}

interface Series {
  namespace: string;
  metricName: string;
  dimensions: Dimension[];
  unit?: string;
  samples: Sample[];
}

/** A CloudWatch API error as AWS answers it (the query error code and the JSON type). */
export class LocalCloudWatchError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 400,
    readonly type = code,
  ) {
    super(message);
    this.name = "LocalCloudWatchError";
  }
}

const invalid = (message: string) => new LocalCloudWatchError("InvalidParameterValue", message, 400, "InvalidParameterValueException");
const missing = (message: string) => new LocalCloudWatchError("MissingParameter", message, 400, "MissingRequiredParameterException");
const combination = (message: string) =>
  new LocalCloudWatchError("InvalidParameterCombination", message, 400, "InvalidParameterCombinationException");
const validation = (message: string) => new LocalCloudWatchError("ValidationError", message, 400, "ValidationError");

const STATS = new Set(["Sum", "Average", "Minimum", "Maximum", "SampleCount"]);
const ID_PATTERN = /^[a-z][a-zA-Z0-9_]*$/;
const TWO_WEEKS_MS = 14 * 86_400_000;
const TWO_HOURS_MS = 2 * 3_600_000;

export interface LocalCloudWatchOptions {
  /** The clock PutMetricData checks timestamps against (default Date.now). */
  now?: () => number;
}

export class LocalCloudWatch {
  private readonly series = new Map<string, Series>();
  private readonly now: () => number;
  readonly counters = { putMetricData: 0, getMetricData: 0, listMetrics: 0, emfLines: 0, emfRejected: 0 };

  constructor(opts: LocalCloudWatchOptions = {}) {
    this.now = opts.now ?? Date.now;
  }

  /** Answers one `POST /` CloudWatch request. */
  handle(headers: IncomingHttpHeaders, raw: Buffer): HttpReply {
    const target = String(headers["x-amz-target"] ?? "");
    const op = target.slice(CLOUDWATCH_TARGET_PREFIX.length);
    try {
      const encoding = String(headers["content-encoding"] ?? "").toLowerCase();
      const body = encoding === "gzip" ? gunzipSync(raw) : raw;
      let request: Record<string, unknown>;
      try {
        const parsed: unknown = JSON.parse(body.toString("utf8") || "{}");
        if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("not an object");
        request = parsed as Record<string, unknown>;
      } catch {
        throw new LocalCloudWatchError("SerializationException", "Request body is not a valid JSON object.", 400, "SerializationException");
      }
      switch (op) {
        case "PutMetricData":
          this.putMetricData(request);
          return reply(200, {});
        case "GetMetricData":
          return reply(200, this.getMetricData(request));
        case "ListMetrics":
          return reply(200, this.listMetrics(request));
        default:
          throw new LocalCloudWatchError(
            "UnknownOperationException",
            `Operation ${op || "(none)"} is not supported by the local CloudWatch (PutMetricData, GetMetricData, ListMetrics are).`,
            400,
            "UnknownOperationException",
          );
      }
    } catch (error) {
      if (!(error instanceof LocalCloudWatchError)) throw error;
      return {
        status: error.status,
        headers: { "content-type": "application/x-amz-json-1.0", "x-amzn-query-error": `${error.code};Sender` },
        body: Buffer.from(JSON.stringify({ __type: `com.amazonaws.cloudwatch#${error.type}`, message: error.message })),
      };
    }
  }

  // ---- PutMetricData ----

  putMetricData(request: Record<string, unknown>): void {
    const namespace = request.Namespace;
    if (typeof namespace !== "string" || namespace.length === 0) throw missing("The parameter Namespace is required.");
    if (namespace.length > 255) throw invalid("The parameter Namespace must be at most 255 characters.");
    if (namespace.startsWith("AWS/")) throw invalid(`The value ${namespace} for parameter Namespace is invalid.`);
    const data = request.MetricData;
    if (!Array.isArray(data) || data.length === 0) throw missing("The parameter MetricData is required.");
    if (data.length > 1000) throw invalid("The collection MetricData must not have a size greater than 1000.");
    const now = this.now();
    // validate all before storing any: AWS rejects the whole request
    const parsed = data.map((d, i) => parseDatum(d, i + 1, now));
    for (const p of parsed) this.store(namespace, p.metricName, p.dimensions, p.unit, p.samples);
    this.counters.putMetricData++;
  }

  /**
   * Stores a metric of an `AWS/` namespace as the AWS service itself would publish it (the demo's
   * simulated `AWS/Bedrock` figures). No AWS API does this; it exists only locally.
   */
  publishAwsMetric(m: { namespace: string; metricName: string; dimensions: Dimension[]; at: Date; value: number; unit?: string }): void {
    if (!m.namespace.startsWith("AWS/")) throw new RangeError(`publishAwsMetric is for AWS/ namespaces, got ${m.namespace}`);
    if (!Number.isFinite(m.value)) throw new RangeError(`metric value must be finite, got ${m.value}`);
    this.store(m.namespace, m.metricName, m.dimensions, m.unit, [{ at: m.at.getTime(), sum: m.value, count: 1, min: m.value, max: m.value }]);
  }

  // ---- EMF ----

  /**
   * Stores the metrics of one CloudWatch embedded-metric-format line (what Powertools prints),
   * as CloudWatch Logs would extract them. Returns false for a line that is not EMF.
   */
  ingestEmf(line: string): boolean {
    if (!line.includes('"_aws"')) return false;
    let doc: Record<string, unknown>;
    try {
      doc = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return false;
    }
    const meta = doc._aws as { Timestamp?: unknown; CloudWatchMetrics?: unknown } | undefined;
    if (!meta || !Array.isArray(meta.CloudWatchMetrics)) return false;
    const at = typeof meta.Timestamp === "number" ? meta.Timestamp : this.now();
    let stored = false;
    for (const directive of meta.CloudWatchMetrics as { Namespace?: unknown; Dimensions?: unknown; Metrics?: unknown }[]) {
      if (typeof directive.Namespace !== "string" || !Array.isArray(directive.Metrics)) continue;
      const dimensionSets = Array.isArray(directive.Dimensions) && directive.Dimensions.length > 0 ? (directive.Dimensions as unknown[]) : [[]];
      for (const metric of directive.Metrics as { Name?: unknown; Unit?: unknown }[]) {
        if (typeof metric.Name !== "string") continue;
        const raw = doc[metric.Name];
        const values = (Array.isArray(raw) ? raw : [raw]).filter((v): v is number => typeof v === "number" && Number.isFinite(v));
        if (values.length === 0) continue;
        for (const set of dimensionSets) {
          if (!Array.isArray(set)) continue;
          const dimensions: Dimension[] = [];
          for (const name of set) {
            const value = doc[String(name)];
            if (typeof value === "string") dimensions.push({ Name: String(name), Value: value });
          }
          if (dimensions.length !== set.length) continue; // CloudWatch drops a set whose dimension is missing
          this.store(
            directive.Namespace,
            metric.Name,
            dimensions,
            typeof metric.Unit === "string" ? metric.Unit : undefined,
            values.map((v) => ({ at, sum: v, count: 1, min: v, max: v })),
          );
          stored = true;
        }
      }
    }
    if (stored) this.counters.emfLines++;
    else this.counters.emfRejected++;
    return stored;
  }

  /**
   * Feeds every EMF line written to `stream` (process.stdout: Powertools writes there) into the
   * store. `swallow` keeps EMF lines off the terminal (the quiet local stack). Returns a function
   * that restores the stream.
   */
  captureEmf(stream: NodeJS.WriteStream, opts: { swallow?: boolean } = {}): () => void {
    const original = stream.write;
    const self = this;
    const patched = function (this: NodeJS.WriteStream, chunk: unknown, ...rest: unknown[]): boolean {
      const text = typeof chunk === "string" ? chunk : Buffer.isBuffer(chunk) ? chunk.toString("utf8") : undefined;
      if (text && text.includes('"_aws"')) {
        const lines = text.split("\n");
        const kept = lines.filter((l) => !(l.trim() && self.ingestEmf(l.trim())));
        if (opts.swallow) {
          const remaining = kept.join("\n");
          if (!remaining.trim()) {
            const cb = rest.find((r) => typeof r === "function") as (() => void) | undefined;
            cb?.();
            return true;
          }
          return (original as (c: unknown, ...r: unknown[]) => boolean).call(this, remaining, ...rest);
        }
      }
      return (original as (c: unknown, ...r: unknown[]) => boolean).call(this, chunk, ...rest);
    };
    stream.write = patched as typeof stream.write;
    return () => {
      if (stream.write === patched) stream.write = original;
    };
  }

  // ---- reads ----

  listMetrics(request: Record<string, unknown>): { Metrics: { Namespace: string; MetricName: string; Dimensions: Dimension[] }[] } {
    if (request.NextToken !== undefined) throw new LocalCloudWatchError("InvalidNextToken", "The service couldn't process the NextToken.", 400, "InvalidNextToken");
    const ns = optionalString(request.Namespace, "Namespace");
    const name = optionalString(request.MetricName, "MetricName");
    const filters = request.Dimensions === undefined ? [] : asArray(request.Dimensions, "Dimensions");
    if (filters.length > 10) throw invalid("The collection Dimensions must not have a size greater than 10.");
    const wanted = filters.map((f, i) => {
      const o = f as { Name?: unknown; Value?: unknown };
      if (typeof o.Name !== "string" || !o.Name) throw missing(`The parameter Dimensions.member.${i + 1}.Name is required.`);
      return { Name: o.Name, Value: typeof o.Value === "string" ? o.Value : undefined };
    });
    this.counters.listMetrics++;
    const metrics = [...this.series.values()]
      .filter((s) => (!ns || s.namespace === ns) && (!name || s.metricName === name))
      .filter((s) => wanted.every((w) => s.dimensions.some((d) => d.Name === w.Name && (w.Value === undefined || d.Value === w.Value))))
      .map((s) => ({ Namespace: s.namespace, MetricName: s.metricName, Dimensions: s.dimensions }));
    return { Metrics: metrics };
  }

  getMetricData(request: Record<string, unknown>): {
    MetricDataResults: { Id: string; Label: string; Timestamps: number[]; Values: number[]; StatusCode: "Complete" }[];
    Messages: never[];
  } {
    const queries = request.MetricDataQueries;
    if (!Array.isArray(queries) || queries.length === 0) throw missing("The parameter MetricDataQueries is required.");
    if (queries.length > 500) throw validation("The collection MetricDataQueries must not have a size greater than 500.");
    const start = epochMs(request.StartTime, "StartTime");
    const end = epochMs(request.EndTime, "EndTime");
    if (start >= end) throw validation("The parameter StartTime must be less than the parameter EndTime.");
    const scanBy = request.ScanBy ?? "TimestampDescending";
    if (scanBy !== "TimestampDescending" && scanBy !== "TimestampAscending") throw validation(`The value ${String(scanBy)} for parameter ScanBy is invalid.`);
    if (request.NextToken !== undefined) throw new LocalCloudWatchError("InvalidNextToken", "The service couldn't process the NextToken.", 400, "InvalidNextToken");
    const ids = new Set<string>();
    const results = queries.map((q, i) => {
      const n = i + 1;
      const query = q as { Id?: unknown; MetricStat?: unknown; Expression?: unknown; Label?: unknown; ReturnData?: unknown };
      if (typeof query.Id !== "string") throw missing(`The parameter MetricDataQueries.member.${n}.Id is required.`);
      if (!ID_PATTERN.test(query.Id) || query.Id.length > 255) {
        throw validation(`The value ${query.Id} for parameter MetricDataQueries.member.${n}.Id is invalid: it must start with a lowercase letter and contain only letters, digits and underscores.`);
      }
      if (ids.has(query.Id)) throw validation(`The values of parameter MetricDataQueries.member.*.Id must be unique: ${query.Id} is repeated.`);
      ids.add(query.Id);
      if (query.Expression !== undefined && query.MetricStat !== undefined) {
        throw validation(`Exactly one of MetricStat and Expression must be set in MetricDataQueries.member.${n}.`);
      }
      if (query.Expression !== undefined) {
        throw validation(`MetricDataQueries.member.${n}.Expression: metric math and SEARCH expressions are not supported by the local CloudWatch.`);
      }
      if (!query.MetricStat || typeof query.MetricStat !== "object") throw validation(`Exactly one of MetricStat and Expression must be set in MetricDataQueries.member.${n}.`);
      const stat = query.MetricStat as { Metric?: unknown; Period?: unknown; Stat?: unknown; Unit?: unknown };
      const metric = (stat.Metric ?? {}) as { Namespace?: unknown; MetricName?: unknown; Dimensions?: unknown };
      if (typeof metric.Namespace !== "string" || !metric.Namespace) throw missing(`The parameter MetricDataQueries.member.${n}.MetricStat.Metric.Namespace is required.`);
      if (typeof metric.MetricName !== "string" || !metric.MetricName) throw missing(`The parameter MetricDataQueries.member.${n}.MetricStat.Metric.MetricName is required.`);
      const period = stat.Period;
      if (typeof period !== "number" || !Number.isInteger(period) || period < 1) throw missing(`The parameter MetricDataQueries.member.${n}.MetricStat.Period is required and must be a positive integer.`);
      if (![1, 5, 10, 30].includes(period) && period % 60 !== 0) {
        throw validation(`The parameter MetricDataQueries.member.${n}.MetricStat.Period must be 1, 5, 10, 30, or a multiple of 60.`);
      }
      if (typeof stat.Stat !== "string" || !stat.Stat) throw missing(`The parameter MetricDataQueries.member.${n}.MetricStat.Stat is required.`);
      if (!STATS.has(stat.Stat)) throw validation(`The value ${stat.Stat} for parameter MetricDataQueries.member.${n}.MetricStat.Stat is not supported by the local CloudWatch (Sum, Average, Minimum, Maximum, SampleCount are).`);
      const dims = parseDimensions(metric.Dimensions, `MetricDataQueries.member.${n}.MetricStat.Metric.Dimensions`);
      const series = this.series.get(seriesKey(metric.Namespace, metric.MetricName, dims));
      const unit = typeof stat.Unit === "string" ? stat.Unit : undefined;
      const points = series && (!unit || !series.unit || series.unit === unit) ? aggregate(series.samples, start, end, period * 1000, stat.Stat) : [];
      if (scanBy === "TimestampDescending") points.reverse();
      return {
        Id: query.Id,
        Label: typeof query.Label === "string" ? query.Label : metric.MetricName,
        Timestamps: points.map((p) => p.at / 1000),
        Values: points.map((p) => p.value),
        StatusCode: "Complete" as const,
        returnData: query.ReturnData !== false,
      };
    });
    this.counters.getMetricData++;
    return { MetricDataResults: results.filter((r) => r.returnData).map(({ returnData: _r, ...r }) => r), Messages: [] };
  }

  /** Every stored series (for GET /local/metrics and tests). */
  list(filter: { namespace?: string; metricName?: string } = {}): { namespace: string; metricName: string; dimensions: Dimension[]; samples: number; unit?: string }[] {
    return [...this.series.values()]
      .filter((s) => (!filter.namespace || s.namespace === filter.namespace) && (!filter.metricName || s.metricName === filter.metricName))
      .map((s) => ({ namespace: s.namespace, metricName: s.metricName, dimensions: s.dimensions, samples: s.samples.length, unit: s.unit }));
  }

  clear(): void {
    this.series.clear();
  }

  private store(namespace: string, metricName: string, dimensions: Dimension[], unit: string | undefined, samples: Sample[]): void {
    const sorted = [...dimensions].sort((a, b) => (a.Name < b.Name ? -1 : a.Name > b.Name ? 1 : 0));
    const key = seriesKey(namespace, metricName, sorted);
    let s = this.series.get(key);
    if (!s) {
      s = { namespace, metricName, dimensions: sorted, unit, samples: [] };
      this.series.set(key, s);
    }
    s.samples.push(...samples);
  }
}

function seriesKey(namespace: string, metricName: string, dimensions: readonly Dimension[]): string {
  const dims = [...dimensions].sort((a, b) => (a.Name < b.Name ? -1 : a.Name > b.Name ? 1 : 0));
  return JSON.stringify([namespace, metricName, dims.map((d) => [d.Name, d.Value])]);
}

/** Samples in [start, end) summed into period buckets aligned to the epoch, as CloudWatch returns them. */
function aggregate(samples: readonly Sample[], start: number, end: number, periodMs: number, stat: string): { at: number; value: number }[] {
  const buckets = new Map<number, Sample>();
  for (const s of samples) {
    if (s.at < start || s.at >= end) continue;
    const at = Math.floor(s.at / periodMs) * periodMs;
    const b = buckets.get(at);
    if (!b) buckets.set(at, { ...s, at });
    else {
      b.sum += s.sum;
      b.count += s.count;
      b.min = Math.min(b.min, s.min);
      b.max = Math.max(b.max, s.max);
    }
  }
  return [...buckets.values()]
    .sort((a, b) => a.at - b.at)
    .map((b) => ({
      at: b.at,
      value: stat === "Sum" ? b.sum : stat === "SampleCount" ? b.count : stat === "Minimum" ? b.min : stat === "Maximum" ? b.max : b.sum / b.count,
    }));
}

function parseDatum(d: unknown, n: number, now: number): { metricName: string; dimensions: Dimension[]; unit?: string; samples: Sample[] } {
  const datum = (d ?? {}) as Record<string, unknown>;
  const where = `MetricData.member.${n}`;
  if (typeof datum.MetricName !== "string" || !datum.MetricName) throw missing(`The parameter ${where}.MetricName is required.`);
  if (datum.MetricName.length > 255) throw invalid(`The parameter ${where}.MetricName must be at most 255 characters.`);
  const dimensions = parseDimensions(datum.Dimensions, `${where}.Dimensions`);
  const at = datum.Timestamp === undefined ? now : epochMs(datum.Timestamp, `${where}.Timestamp`);
  if (at < now - TWO_WEEKS_MS || at > now + TWO_HOURS_MS) {
    throw invalid(`The parameter ${where}.Timestamp must specify a time no more than two weeks in the past or two hours in the future.`);
  }
  const unit = typeof datum.Unit === "string" ? datum.Unit : undefined;
  const given = ["Value", "Values", "StatisticValues"].filter((k) => datum[k] !== undefined);
  if (given.length > 1) throw combination(`The parameters ${where}.${given[0]} and ${where}.${given[1]} are mutually exclusive and you have specified both.`);
  if (given.length === 0) throw missing(`At least one of the parameters ${where}.Value, ${where}.Values or ${where}.StatisticValues must be specified.`);
  const finite = (v: unknown, field: string): number => {
    if (typeof v !== "number" || !Number.isFinite(v)) throw invalid(`The value for parameter ${where}.${field} is invalid: it must be a finite number.`);
    return v;
  };
  if (datum.Value !== undefined) {
    const v = finite(datum.Value, "Value");
    return { metricName: datum.MetricName, dimensions, unit, samples: [{ at, sum: v, count: 1, min: v, max: v }] };
  }
  if (datum.Values !== undefined) {
    const values = asArray(datum.Values, `${where}.Values`).map((v, i) => finite(v, `Values.member.${i + 1}`));
    if (values.length > 150) throw invalid(`The collection ${where}.Values must not have a size greater than 150.`);
    const counts = datum.Counts === undefined ? values.map(() => 1) : asArray(datum.Counts, `${where}.Counts`).map((c, i) => finite(c, `Counts.member.${i + 1}`));
    if (counts.length !== values.length) throw invalid(`The parameters ${where}.Values and ${where}.Counts must be arrays of the same length.`);
    return { metricName: datum.MetricName, dimensions, unit, samples: values.map((v, i) => ({ at, sum: v * counts[i], count: counts[i], min: v, max: v })) };
  }
  const sv = (datum.StatisticValues ?? {}) as Record<string, unknown>;
  const sample = {
    at,
    sum: finite(sv.Sum, "StatisticValues.Sum"),
    count: finite(sv.SampleCount, "StatisticValues.SampleCount"),
    min: finite(sv.Minimum, "StatisticValues.Minimum"),
    max: finite(sv.Maximum, "StatisticValues.Maximum"),
  };
  return { metricName: datum.MetricName, dimensions, unit, samples: [sample] };
}

function parseDimensions(raw: unknown, where: string): Dimension[] {
  if (raw === undefined) return [];
  const list = asArray(raw, where);
  if (list.length > 30) throw invalid(`The collection ${where} must not have a size greater than 30.`);
  const names = new Set<string>();
  return list.map((d, i) => {
    const o = (d ?? {}) as { Name?: unknown; Value?: unknown };
    if (typeof o.Name !== "string" || !o.Name) throw missing(`The parameter ${where}.member.${i + 1}.Name is required.`);
    if (typeof o.Value !== "string" || !o.Value) throw missing(`The parameter ${where}.member.${i + 1}.Value is required.`);
    if (names.has(o.Name)) throw invalid(`The collection ${where} must not contain duplicate dimension names: ${o.Name}.`);
    names.add(o.Name);
    return { Name: o.Name, Value: o.Value };
  });
}

function asArray(raw: unknown, where: string): unknown[] {
  if (!Array.isArray(raw)) throw new LocalCloudWatchError("SerializationException", `${where} must be a list.`, 400, "SerializationException");
  return raw;
}

function optionalString(raw: unknown, where: string): string | undefined {
  if (raw === undefined) return undefined;
  if (typeof raw !== "string") throw new LocalCloudWatchError("SerializationException", `${where} must be a string.`, 400, "SerializationException");
  return raw;
}

/** AWS JSON 1.0 timestamps are epoch seconds (fractions allowed). */
function epochMs(raw: unknown, where: string): number {
  if (raw === undefined) throw missing(`The parameter ${where} is required.`);
  if (typeof raw !== "number" || !Number.isFinite(raw)) {
    throw new LocalCloudWatchError("SerializationException", `${where} must be a timestamp in epoch seconds.`, 400, "SerializationException");
  }
  return Math.round(raw * 1000);
}

function reply(status: number, value: unknown): HttpReply {
  return { status, headers: { "content-type": "application/x-amz-json-1.0" }, body: Buffer.from(JSON.stringify(value)) };
}
