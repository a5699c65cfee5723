import { createHash } from "node:crypto";
import type { InferenceProfiles } from "../pricing/inference-profiles";
import { SOURCE_COUNT_NAMES, sourceSplit } from "../usage/model";
import { ReconciliationInvalidRangeError } from "./errors";
import {
  TOKEN_CLASSES,
  zeroBedrock,
  type BedrockDriftRow,
  type BedrockFigures,
  type DriftReport,
  type DriftTotals,
  type InvocationSourcesSection,
  type MeteredModelHour,
  type MeteredTenantDaySources,
  type MeteredSageMakerHour,
  type ProviderModelHour,
  type ProviderSageMakerHour,
  type SageMakerDriftRow,
  type TokenClass,
} from "./model";
import type { DriftSignals, HourRange, MeteredUsage, ProviderMetrics, ReportSink, SignalRecord, SignalStore } from "./ports";

const HOUR_MS = 3_600_000;
/** Longest range one call reconciles (a CLI back-fill of two weeks: CloudWatch keeps 1-hour data 63 days). */
export const MAX_RECONCILE_HOURS = 24 * 14;

export interface ReconciliationOptions {
  provider: ProviderMetrics;
  metered: MeteredUsage;
  sink: ReportSink;
  signalStore: SignalStore;
  signals: DriftSignals;
  /** Drift above this percentage raises the alarm (default 0.5). */
  thresholdPercent?: number;
  /** SageMaker endpoints to compare even when AWS published nothing for them (the fixed-cost catalog). */
  knownEndpoints?: readonly string[];
  /** Application inference profiles (`INFERENCE_PROFILES_JSON`): a profile's usage is compared as its base model's. */
  inferenceProfiles?: InferenceProfiles;
  clock?: () => Date;
}

export interface HourResult {
  hour: string;
  report: DriftReport;
  files: string[];
  digest: string;
  signal: SignalRecord["kind"];
}

/**
 * Compares, per hour, our counted usage with AWS's own CloudWatch figures, writes one drift
 * report per hour (JSON + CSV) under a key that is a function of the hour only, and signals
 * `UnmeteredTokens` / `DriftPercent` once per hour (a re-run with the same figures writes the
 * same bytes and signals nothing; changed figures signal only the difference). Usage found
 * only in AWS's figures is reported as unmetered, by model and hour: it is never attributed
 * to a tenant.
 */
export class ReconciliationService {
  private readonly threshold: number;
  private readonly clock: () => Date;

  constructor(private readonly opts: ReconciliationOptions) {
    this.threshold = opts.thresholdPercent ?? 0.5;
    this.clock = opts.clock ?? (() => new Date());
  }

  async reconcile(range: HourRange): Promise<HourResult[]> {
    const hours = hoursOf(range);
    const [awsBedrock, awsSageMaker, ourBedrock] = await Promise.all([
      this.opts.provider.bedrock(range),
      this.opts.provider.sagemaker(range),
      this.opts.metered.bedrock(range),
    ]);
    const endpoints = uniq([...(this.opts.knownEndpoints ?? []), ...awsSageMaker.filter((s) => s.kind === "endpoint").map((s) => s.name)]);
    const components = uniq(awsSageMaker.filter((s) => s.kind === "inference-component").map((s) => s.name));
    const ourSageMaker = await this.opts.metered.sagemaker(range, { endpoints, inferenceComponents: components });

    // The per-tenant source section of a day goes into the report of its last hour (complete by then).
    const daysEnding = hours.filter(isLastHourOfDay).map((h) => h.slice(0, 10));
    const tenantDays = new Map(await Promise.all(daysEnding.map(async (day) => [day, await this.opts.metered.tenantDaySources(day)] as const)));

    const results: HourResult[] = [];
    for (const hour of hours) {
      const report = buildReport({
        tenantDays: isLastHourOfDay(hour) ? { day: hour.slice(0, 10), rows: tenantDays.get(hour.slice(0, 10)) ?? [] } : undefined,
        hour,
        thresholdPercent: this.threshold,
        inferenceProfiles: this.opts.inferenceProfiles,
        aws: awsBedrock.filter((r) => r.hour === hour),
        metered: ourBedrock.filter((r) => r.hour === hour),
        awsSageMaker: awsSageMaker.filter((r) => r.hour === hour),
        meteredSageMaker: ourSageMaker.filter((r) => r.hour === hour),
      });
      const json = reportJson(report);
      const digest = createHash("sha256").update(json).digest("hex");
      const paths = reportPaths(hour);
      await this.opts.sink.put(paths.json, json, "application/json");
      await this.opts.sink.put(paths.csv, reportCsv(report), "text/csv");
      // after the files: a crash before this line re-runs as "new" and signals then
      const signal = await this.opts.signalStore.record(hour, digest, report.totals.unmeteredTokens, this.clock());
      if (signal.kind !== "same") {
        const previous = signal.kind === "changed" ? signal.previousUnmeteredTokens : 0;
        await this.opts.signals.emit(hour, {
          unmeteredTokensDelta: report.totals.unmeteredTokens - previous,
          driftPercent: Math.max(report.totals.driftPercent, report.totals.sageMakerDriftPercent),
          alarm: report.alarm,
        });
      }
      results.push({ hour, report, files: [this.opts.sink.locate(paths.json), this.opts.sink.locate(paths.csv)], digest, signal: signal.kind });
    }
    return results;
  }
}

/** The hour a scheduled run at `now` reconciles: the hour that ended `lagHours` full hours before the current one began. */
export function hourToReconcile(now: Date, lagHours: number): HourRange {
  const current = Math.floor(now.getTime() / HOUR_MS) * HOUR_MS;
  const from = new Date(current - (lagHours + 1) * HOUR_MS);
  return { from, to: new Date(from.getTime() + HOUR_MS) };
}

export function hoursOf(range: HourRange): string[] {
  const from = range.from.getTime();
  const to = range.to.getTime();
  if (!Number.isFinite(from) || !Number.isFinite(to)) throw new ReconciliationInvalidRangeError("from and to must be valid times");
  if (from % HOUR_MS !== 0 || to % HOUR_MS !== 0) throw new ReconciliationInvalidRangeError("from and to must be whole UTC hours (e.g. 2026-11-25T20:00Z)");
  if (to <= from) throw new ReconciliationInvalidRangeError("to must be after from");
  if ((to - from) / HOUR_MS > MAX_RECONCILE_HOURS) throw new ReconciliationInvalidRangeError(`at most ${MAX_RECONCILE_HOURS} hours per run`);
  const hours: string[] = [];
  for (let t = from; t < to; t += HOUR_MS) hours.push(hourKey(new Date(t)));
  return hours;
}

/** `yyyy-mm-ddT23`: the report that carries the day's per-tenant source section. */
export function isLastHourOfDay(hour: string): boolean {
  return hour.endsWith("T23");
}

export function hourKey(d: Date): string {
  return d.toISOString().slice(0, 13);
}

export function reportPaths(hour: string): { json: string; csv: string } {
  const base = `reconciliation/${hour.slice(0, 10)}/${hour}`;
  return { json: `${base}.json`, csv: `${base}.csv` };
}

/**
 * The model id as CloudWatch's `ModelId` dimension names it: a foundation-model or system
 * inference-profile ARN becomes its id; ids stay as they are.
 */
export function cloudWatchModelId(modelId: string): string {
  const m = /^arn:aws[a-z-]*:bedrock:[^:]*:[^:]*:(foundation-model|inference-profile)\/(.+)$/.exec(modelId);
  return m ? m[2] : modelId;
}

/**
 * The id a row of the report is keyed on: {@link cloudWatchModelId} of the model, after an
 * application inference profile (ARN or id, ours or CloudWatch's) is replaced by the model it
 * copies. A profile the map does not know stays as it is (its own row).
 */
export function reconciledModelId(modelId: string, profiles?: InferenceProfiles): string {
  return cloudWatchModelId(profiles?.baseModelOf(modelId) ?? modelId);
}

/**
 * Bedrock model ids always contain a '.' (`anthropic.claude-...`, `us.amazon.nova-...`) or are
 * Bedrock ARNs; SageMaker endpoint and inference-component names cannot contain one
 * (`[a-zA-Z0-9](-*[a-zA-Z0-9])*`). So a model-hour aggregate's id says which service ran it.
 */
export function isBedrockModelId(modelId: string): boolean {
  return modelId.startsWith("arn:aws") ? modelId.includes(":bedrock:") : modelId.includes(".");
}

interface ReportInput {
  hour: string;
  thresholdPercent: number;
  inferenceProfiles?: InferenceProfiles;
  aws: readonly ProviderModelHour[];
  metered: readonly MeteredModelHour[];
  awsSageMaker: readonly ProviderSageMakerHour[];
  meteredSageMaker: readonly MeteredSageMakerHour[];
  /** The day's tenant source counters, for the report of the day's last hour. */
  tenantDays?: { day: string; rows: readonly MeteredTenantDaySources[] };
}

export function buildReport(input: ReportInput): DriftReport {
  const aws = new Map<string, ProviderModelHour>();
  for (const r of input.aws) {
    const id = reconciledModelId(r.modelId, input.inferenceProfiles);
    const prev = aws.get(id);
    if (!prev) aws.set(id, { ...r, modelId: id, published: { ...r.published } });
    else {
      addFigures(prev, r);
      for (const c of TOKEN_CLASSES) prev.published[c] ||= r.published[c];
    }
  }
  const ours = new Map<string, BedrockFigures>();
  for (const r of input.metered) {
    const id = reconciledModelId(r.modelId, input.inferenceProfiles);
    addFigures((ours.get(id) ?? ours.set(id, zeroBedrock()).get(id))!, r);
  }
  const bedrock: BedrockDriftRow[] = [];
  for (const modelId of [...new Set([...aws.keys(), ...ours.keys()])].sort()) {
    const a = aws.get(modelId);
    const o = ours.get(modelId) ?? zeroBedrock();
    // a model AWS has no series for at all: every class is compared (AWS measured 0)
    const published = a?.published ?? { inputTokens: true, outputTokens: true, cacheReadInputTokens: true, cacheWriteInputTokens: true };
    const compared = TOKEN_CLASSES.filter((c) => published[c]);
    const af = a ? pick(a) : zeroBedrock();
    let unmetered = 0;
    let over = 0;
    let awsTokens = 0;
    for (const c of compared) {
      unmetered += Math.max(0, af[c] - o[c]);
      over += Math.max(0, o[c] - af[c]);
      awsTokens += af[c];
    }
    bedrock.push({
      hour: input.hour,
      modelId,
      aws: af,
      metered: pick(o),
      unmeteredTokens: unmetered,
      overMeteredTokens: over,
      unmeteredInvocations: Math.max(0, af.invocations - o.invocations),
      overMeteredInvocations: Math.max(0, o.invocations - af.invocations),
      notPublished: TOKEN_CLASSES.filter((c) => !published[c]),
      driftPercent: percent(unmetered + over, awsTokens),
    });
  }

  const sagemaker = sageMakerRows(input);
  const totals = totalsOf(bedrock, sagemaker);
  return {
    reportVersion: 1,
    hour: input.hour,
    sources: ["AWS/Bedrock", "AWS/SageMaker"],
    thresholdPercent: input.thresholdPercent,
    alarm: totals.driftPercent > input.thresholdPercent || totals.sageMakerDriftPercent > input.thresholdPercent,
    totals,
    bedrock,
    sagemaker,
    invocationSources: input.tenantDays ? invocationSources(input.tenantDays.day, input.tenantDays.rows) : null,
  };
}

/**
 * Per tenant of `day`: calls only a wrapper reported, only the invocation log, both (see
 * `sourceSplit`). Rows of other days are ignored, a tenant's rows are summed, and rows are sorted
 * by tenant, so the same counters give the same bytes.
 */
export function invocationSources(day: string, metered: readonly MeteredTenantDaySources[]): InvocationSourcesSection {
  const byTenant = new Map<string, MeteredTenantDaySources>();
  for (const m of metered) {
    if (m.day !== day) continue;
    const prev = byTenant.get(m.tenantId);
    if (!prev) byTenant.set(m.tenantId, { ...m });
    else for (const k of ["requests", ...SOURCE_COUNT_NAMES] as const) prev[k] += m[k];
  }
  const totals = { wrapperOnlyCalls: 0, logOnlyCalls: 0, bothCalls: 0, untrackedCalls: 0 };
  const rows = [...byTenant.keys()].sort().map((tenantId) => {
    const m = byTenant.get(tenantId)!;
    const split = sourceSplit(m, m.requests);
    const row = { day, tenantId, wrapperOnlyCalls: split.wrapperOnly, logOnlyCalls: split.logOnly, bothCalls: split.both, untrackedCalls: split.untracked };
    totals.wrapperOnlyCalls += row.wrapperOnlyCalls;
    totals.logOnlyCalls += row.logOnlyCalls;
    totals.bothCalls += row.bothCalls;
    totals.untrackedCalls += row.untrackedCalls;
    return row;
  });
  return { day, rows, totals };
}

/** Rows of one SageMaker target (endpoint or inference component), summed: keyed `<kind>|<name>`. */
function sumByTarget<T extends { kind: string; name: string }>(rows: readonly T[], add: (into: T, row: T) => void): Map<string, T> {
  const out = new Map<string, T>();
  for (const r of rows) {
    const k = `${r.kind}|${r.name}`;
    const prev = out.get(k);
    if (prev) add(prev, r);
    else out.set(k, { ...r });
  }
  return out;
}

function sageMakerRows(input: ReportInput): SageMakerDriftRow[] {
  const aws = sumByTarget(input.awsSageMaker, (into, r) => {
    into.invocations += r.invocations;
    into.modelLatencyMs += r.modelLatencyMs;
  });
  const ours = sumByTarget(input.meteredSageMaker, (into, r) => {
    into.invocations += r.invocations;
    into.inferenceMs += r.inferenceMs;
  });
  return [...new Set([...aws.keys(), ...ours.keys()])].sort().map((k) => {
    const a = aws.get(k);
    const o = ours.get(k);
    const [kind, name] = k.split("|") as ["endpoint" | "inference-component", string];
    const awsInvocations = a?.invocations ?? 0;
    const meteredInvocations = o?.invocations ?? 0;
    return {
      hour: input.hour,
      kind,
      name,
      awsInvocations,
      meteredInvocations,
      unmeteredInvocations: Math.max(0, awsInvocations - meteredInvocations),
      overMeteredInvocations: Math.max(0, meteredInvocations - awsInvocations),
      awsModelLatencyMs: round(a?.modelLatencyMs ?? 0, 3),
      meteredInferenceMs: o?.inferenceMs ?? 0,
      driftPercent: percent(Math.abs(awsInvocations - meteredInvocations), awsInvocations),
    };
  });
}

function totalsOf(bedrock: readonly BedrockDriftRow[], sagemaker: readonly SageMakerDriftRow[]): DriftTotals {
  let awsTokens = 0;
  let meteredTokens = 0;
  let unmetered = 0;
  let over = 0;
  let awsInvocations = 0;
  let meteredInvocations = 0;
  let unmeteredInvocations = 0;
  for (const r of bedrock) {
    for (const c of TOKEN_CLASSES) {
      if (r.notPublished.includes(c)) continue;
      awsTokens += r.aws[c];
      meteredTokens += r.metered[c];
    }
    unmetered += r.unmeteredTokens;
    over += r.overMeteredTokens;
    awsInvocations += r.aws.invocations;
    meteredInvocations += r.metered.invocations;
    unmeteredInvocations += r.unmeteredInvocations;
  }
  // endpoints only: an inference component's calls are also its endpoint's
  const endpoints = sagemaker.filter((r) => r.kind === "endpoint");
  const smAws = endpoints.reduce((s, r) => s + r.awsInvocations, 0);
  const smOurs = endpoints.reduce((s, r) => s + r.meteredInvocations, 0);
  const smDiff = endpoints.reduce((s, r) => s + Math.abs(r.awsInvocations - r.meteredInvocations), 0);
  return {
    awsTokens,
    meteredTokens,
    unmeteredTokens: unmetered,
    overMeteredTokens: over,
    awsInvocations,
    meteredInvocations,
    unmeteredInvocations,
    unmeteredPercent: percent(unmetered, awsTokens),
    driftPercent: percent(unmetered + over, awsTokens),
    sageMakerAwsInvocations: smAws,
    sageMakerMeteredInvocations: smOurs,
    sageMakerDriftPercent: percent(smDiff, smAws),
  };
}

/** JSON with a fixed key order and a trailing newline: byte-identical for identical figures. */
export function reportJson(report: DriftReport): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}

const CSV_HEADER = [
  "hour",
  "service",
  "kind",
  "name",
  "aws_invocations",
  "metered_invocations",
  "aws_input_tokens",
  "metered_input_tokens",
  "aws_output_tokens",
  "metered_output_tokens",
  "aws_cache_read_tokens",
  "metered_cache_read_tokens",
  "aws_cache_write_tokens",
  "metered_cache_write_tokens",
  "unmetered_tokens",
  "over_metered_tokens",
  "unmetered_invocations",
  "not_published",
  "drift_percent",
  // per-tenant source rows (service invocation-sources) only; appended so drift columns keep their positions
  "day",
  "wrapper_only_calls",
  "log_only_calls",
  "both_calls",
  "untracked_calls",
];

export function reportCsv(report: DriftReport): string {
  const lines = [CSV_HEADER.join(",")];
  for (const r of report.bedrock) {
    lines.push(
      [
        r.hour,
        "bedrock",
        "model",
        csvCell(r.modelId),
        r.aws.invocations,
        r.metered.invocations,
        r.aws.inputTokens,
        r.metered.inputTokens,
        r.aws.outputTokens,
        r.metered.outputTokens,
        r.aws.cacheReadInputTokens,
        r.metered.cacheReadInputTokens,
        r.aws.cacheWriteInputTokens,
        r.metered.cacheWriteInputTokens,
        r.unmeteredTokens,
        r.overMeteredTokens,
        r.unmeteredInvocations,
        r.notPublished.join(" "),
        r.driftPercent,
        ...SOURCE_BLANKS,
      ].join(","),
    );
  }
  for (const r of report.sagemaker) {
    lines.push(
      [r.hour, "sagemaker", r.kind, csvCell(r.name), r.awsInvocations, r.meteredInvocations, "", "", "", "", "", "", "", "", "", "", r.unmeteredInvocations, "", r.driftPercent, ...SOURCE_BLANKS].join(","),
    );
  }
  for (const r of report.invocationSources?.rows ?? []) {
    lines.push(
      [report.hour, "invocation-sources", "tenant-day", csvCell(r.tenantId), ...Array(15).fill(""), r.day, r.wrapperOnlyCalls, r.logOnlyCalls, r.bothCalls, r.untrackedCalls].join(","),
    );
  }
  return `${lines.join("\n")}\n`;
}

const SOURCE_BLANKS = ["", "", "", "", ""];

function csvCell(s: string): string {
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function addFigures(into: BedrockFigures, add: BedrockFigures): void {
  into.invocations += add.invocations;
  for (const c of TOKEN_CLASSES) into[c] += add[c];
}

function pick(f: BedrockFigures): BedrockFigures {
  return {
    invocations: f.invocations,
    inputTokens: f.inputTokens,
    outputTokens: f.outputTokens,
    cacheReadInputTokens: f.cacheReadInputTokens,
    cacheWriteInputTokens: f.cacheWriteInputTokens,
  };
}

/** part / whole in percent, 4 decimals; 0 when both are 0, 100 when only `part` is not. */
function percent(part: number, whole: number): number {
  if (whole === 0) return part === 0 ? 0 : 100;
  return round((part / whole) * 100, 4);
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

function uniq(xs: readonly string[]): string[] {
  return [...new Set(xs)].sort();
}

export type { TokenClass };
