import { describe, expect, it } from "vitest";
import { zeroBedrock, type MeteredTenantDaySources, type MeteredModelHour, type MeteredSageMakerHour, type ProviderModelHour, type ProviderSageMakerHour, type TokenClass } from "../../../shared/reconciliation/model";
import type { DriftSignals, HourRange, MeteredUsage, ProviderMetrics, ReportSink, SignalRecord, SignalStore } from "../../../shared/reconciliation/ports";
import { ReconciliationInvalidRangeError } from "../../../shared/reconciliation/errors";
import { InferenceProfiles } from "../../../shared/pricing/inference-profiles";
import {
  buildReport,
  cloudWatchModelId,
  hourToReconcile,
  hoursOf,
  invocationSources,
  isBedrockModelId,
  reportCsv,
  reportJson,
  ReconciliationService,
} from "../../../shared/reconciliation/service";

const SONNET = "anthropic.claude-3-5-sonnet-20240620-v1:0";
const H = "2026-11-25T20";
const ALL: Record<TokenClass, boolean> = { inputTokens: true, outputTokens: true, cacheReadInputTokens: true, cacheWriteInputTokens: true };
const NO_CACHE: Record<TokenClass, boolean> = { inputTokens: true, outputTokens: true, cacheReadInputTokens: false, cacheWriteInputTokens: false };

const aws = (over: Partial<ProviderModelHour>): ProviderModelHour => ({ ...zeroBedrock(), modelId: SONNET, hour: H, published: NO_CACHE, ...over });
const ours = (over: Partial<MeteredModelHour>): MeteredModelHour => ({ ...zeroBedrock(), modelId: SONNET, hour: H, ...over });
const report = (a: ProviderModelHour[], o: MeteredModelHour[], sm: { aws?: ProviderSageMakerHour[]; ours?: MeteredSageMakerHour[] } = {}) =>
  buildReport({ hour: H, thresholdPercent: 0.5, aws: a, metered: o, awsSageMaker: sm.aws ?? [], meteredSageMaker: sm.ours ?? [] });

describe("drift of one hour", () => {
  it("AWS above ours: the difference is unmetered, per class, by model; drift is its share of AWS's tokens", () => {
    const r = report([aws({ invocations: 102, inputTokens: 10_200, outputTokens: 5_100 })], [ours({ invocations: 100, inputTokens: 10_000, outputTokens: 5_000 })]);
    expect(r.bedrock).toEqual([
      expect.objectContaining({ modelId: SONNET, unmeteredTokens: 300, overMeteredTokens: 0, unmeteredInvocations: 2, driftPercent: 1.9608 }),
    ]);
    expect(r.totals).toMatchObject({ awsTokens: 15_300, meteredTokens: 15_000, unmeteredTokens: 300, unmeteredPercent: 1.9608, driftPercent: 1.9608 });
    expect(r.alarm).toBe(true);
  });

  it("equal figures: drift 0, no alarm; ids as ARNs match CloudWatch's ModelId", () => {
    const arn = `arn:aws:bedrock:us-west-2::foundation-model/${SONNET}`;
    const r = report([aws({ invocations: 3, inputTokens: 30, outputTokens: 9 })], [ours({ modelId: arn, invocations: 3, inputTokens: 30, outputTokens: 9 })]);
    expect(r.bedrock).toHaveLength(1);
    expect(r.totals).toMatchObject({ driftPercent: 0, unmeteredTokens: 0, overMeteredTokens: 0 });
    expect(r.alarm).toBe(false);
  });

  it("over- and under-counting in different classes do not cancel out", () => {
    const r = report([aws({ inputTokens: 1_000, outputTokens: 1_000 })], [ours({ inputTokens: 1_100, outputTokens: 900 })]);
    expect(r.bedrock[0]).toMatchObject({ unmeteredTokens: 100, overMeteredTokens: 100, driftPercent: 10 });
  });

  it("cache classes AWS does not publish for a model are not compared (not counted as over-metered)", () => {
    const r = report([aws({ inputTokens: 100, outputTokens: 100 })], [ours({ inputTokens: 100, outputTokens: 100, cacheReadInputTokens: 500 })]);
    expect(r.bedrock[0]).toMatchObject({ notPublished: ["cacheReadInputTokens", "cacheWriteInputTokens"], overMeteredTokens: 0, driftPercent: 0 });
    const published = report([aws({ inputTokens: 100, outputTokens: 100, published: ALL })], [ours({ inputTokens: 100, outputTokens: 100, cacheReadInputTokens: 500 })]);
    expect(published.bedrock[0]).toMatchObject({ overMeteredTokens: 500, driftPercent: 250 });
  });

  it("a model only AWS saw is unmetered in full; a model only we counted is over-metered (100%)", () => {
    const r = report([aws({ modelId: "meta.llama3-70b-instruct-v1:0", invocations: 4, inputTokens: 40, outputTokens: 40 })], [ours({ invocations: 1, inputTokens: 10, outputTokens: 10 })]);
    const byModel = Object.fromEntries(r.bedrock.map((b) => [b.modelId, b]));
    expect(byModel["meta.llama3-70b-instruct-v1:0"]).toMatchObject({ unmeteredTokens: 80, driftPercent: 100 });
    expect(byModel[SONNET]).toMatchObject({ overMeteredTokens: 20, driftPercent: 100 });
  });

  it("SageMaker: endpoint calls AWS counted beyond ours are drift; latency is reported, not compared", () => {
    const r = report([], [], {
      aws: [{ kind: "endpoint", name: "llama", hour: H, invocations: 100, modelLatencyMs: 4_000 }],
      ours: [{ kind: "endpoint", name: "llama", hour: H, invocations: 99, inferenceMs: 4_500 }],
    });
    expect(r.sagemaker).toEqual([expect.objectContaining({ name: "llama", unmeteredInvocations: 1, driftPercent: 1, awsModelLatencyMs: 4_000, meteredInferenceMs: 4_500 })]);
    expect(r.totals.sageMakerDriftPercent).toBe(1);
    expect(r.alarm).toBe(true);
  });

  it("JSON and CSV are deterministic: input order does not change a byte", () => {
    const a = [aws({ inputTokens: 5 }), aws({ modelId: "amazon.nova-pro-v1:0", inputTokens: 7 })];
    const o = [ours({ inputTokens: 4 }), ours({ modelId: "amazon.nova-pro-v1:0", inputTokens: 7 })];
    const one = report(a, o);
    const two = report([...a].reverse(), [...o].reverse());
    expect(reportJson(two)).toBe(reportJson(one));
    expect(reportCsv(two)).toBe(reportCsv(one));
    expect(reportCsv(one).split("\n")[1]).toMatch(/^2026-11-25T20,bedrock,model,amazon\.nova-pro-v1:0,/);
  });
});

describe("hours and ids", () => {
  it("the scheduled run reconciles the hour that ended the lag before the current hour began", () => {
    expect(hourToReconcile(new Date("2026-11-25T22:25:00Z"), 1)).toEqual({ from: new Date("2026-11-25T20:00:00Z"), to: new Date("2026-11-25T21:00:00Z") });
    expect(hourToReconcile(new Date("2026-11-25T22:25:00Z"), 0).from).toEqual(new Date("2026-11-25T21:00:00Z"));
  });

  it("ranges must be whole hours, non-empty and bounded", () => {
    expect(hoursOf({ from: new Date("2026-11-25T22:00Z"), to: new Date("2026-11-26T01:00Z") })).toEqual(["2026-11-25T22", "2026-11-25T23", "2026-11-26T00"]);
    expect(() => hoursOf({ from: new Date("2026-11-25T22:30Z"), to: new Date("2026-11-26T01:00Z") })).toThrow(ReconciliationInvalidRangeError);
    expect(() => hoursOf({ from: new Date("2026-11-25T22:00Z"), to: new Date("2026-11-25T22:00Z") })).toThrow(ReconciliationInvalidRangeError);
    expect(() => hoursOf({ from: new Date("2026-01-01T00:00Z"), to: new Date("2026-03-01T00:00Z") })).toThrow(/at most/);
    expect(() => hoursOf({ from: new Date("nope"), to: new Date("2026-03-01T00:00Z") })).toThrow(ReconciliationInvalidRangeError);
  });

  it("Bedrock model ids are told from SageMaker names by AWS's naming rules", () => {
    expect(isBedrockModelId(SONNET)).toBe(true);
    expect(isBedrockModelId("us.anthropic.claude-haiku-4-5-20251001-v1:0")).toBe(true);
    expect(isBedrockModelId("arn:aws:bedrock:us-west-2:123456789012:application-inference-profile/abc123")).toBe(true);
    expect(isBedrockModelId("llama31-70b-lora")).toBe(false);
    expect(isBedrockModelId("arn:aws:sagemaker:us-west-2:123456789012:endpoint/llama")).toBe(false);
    expect(cloudWatchModelId("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-sonnet-20240620-v1:0")).toBe("us.anthropic.claude-3-5-sonnet-20240620-v1:0");
    expect(cloudWatchModelId("arn:aws:bedrock:us-west-2:123456789012:application-inference-profile/abc123")).toBe("arn:aws:bedrock:us-west-2:123456789012:application-inference-profile/abc123");
  });
});

class MemorySink implements ReportSink {
  files = new Map<string, string>();
  writes = 0;
  async put(path: string, body: string) {
    this.writes++;
    this.files.set(path, body);
  }
  locate(path: string) {
    return `mem://${path}`;
  }
}

class MemorySignals implements SignalStore {
  byHour = new Map<string, { digest: string; unmetered: number }>();
  async record(hour: string, digest: string, unmeteredTokens: number): Promise<SignalRecord> {
    const prev = this.byHour.get(hour);
    this.byHour.set(hour, { digest, unmetered: unmeteredTokens });
    if (!prev) return { kind: "new" };
    if (prev.digest === digest) return { kind: "same" };
    return { kind: "changed", previousUnmeteredTokens: prev.unmetered };
  }
}

describe("ReconciliationService: one report per hour, signalled once", () => {
  function setup() {
    const state = { aws: [aws({ invocations: 10, inputTokens: 1_000, outputTokens: 500 })], ours: [ours({ invocations: 10, inputTokens: 1_000, outputTokens: 500 })] };
    const provider: ProviderMetrics = { bedrock: async () => state.aws, sagemaker: async () => [] };
    const metered: MeteredUsage = { bedrock: async () => state.ours, sagemaker: async () => [], tenantDaySources: async () => [] };
    const emitted: { hour: string; unmeteredTokensDelta: number; driftPercent: number }[] = [];
    const signals: DriftSignals = { emit: async (hour, s) => void emitted.push({ hour, ...s }) };
    const sink = new MemorySink();
    const service = new ReconciliationService({ provider, metered, sink, signalStore: new MemorySignals(), signals });
    return { state, emitted, sink, service };
  }
  const range: HourRange = { from: new Date(`${H}:00:00Z`), to: new Date("2026-11-25T21:00:00Z") };

  it("a re-run writes the same files and emits nothing; changed figures emit only the difference", async () => {
    const { state, emitted, sink, service } = setup();
    const [first] = await service.reconcile(range);
    expect(first.signal).toBe("new");
    expect([...sink.files.keys()]).toEqual(["reconciliation/2026-11-25/2026-11-25T20.json", "reconciliation/2026-11-25/2026-11-25T20.csv"]);
    const before = new Map(sink.files);

    const [again] = await service.reconcile(range);
    expect(again.signal).toBe("same");
    expect(again.digest).toBe(first.digest);
    expect(sink.files).toEqual(before);
    expect(emitted).toEqual([{ hour: H, unmeteredTokensDelta: 0, driftPercent: 0, alarm: false }]);

    // late AWS figures: 300 more tokens only AWS saw
    state.aws = [aws({ invocations: 12, inputTokens: 1_200, outputTokens: 600 })];
    const [late] = await service.reconcile(range);
    expect(late.signal).toBe("changed");
    expect(emitted[1]).toMatchObject({ unmeteredTokensDelta: 300, alarm: true });
    // and once more with the same late figures: nothing
    await service.reconcile(range);
    expect(emitted).toHaveLength(2);
  });
});

describe("per tenant and day: which path reported the calls (wrapper events against invocation-log records)", () => {
  const day = "2026-11-25";
  const m = (tenantId: string, over: Partial<MeteredTenantDaySources>): MeteredTenantDaySources => ({
    tenantId,
    day,
    requests: 0,
    wrapperFirst: 0,
    logFirst: 0,
    logAfterWrapper: 0,
    wrapperAfterLog: 0,
    ...over,
  });
  const rows = [
    m("t-b", { requests: 12, wrapperFirst: 8, logFirst: 3, logAfterWrapper: 6, wrapperAfterLog: 2 }),
    m("t-a", { requests: 5, wrapperFirst: 2, logFirst: 0 }),
    m("t-c", { requests: 4, logFirst: 4 }),
    m("t-z", { day: "2026-11-24", requests: 9, wrapperFirst: 9 }),
  ];

  it("wrapper-only, log-only, both and untracked per tenant, sorted, other days ignored, with totals", () => {
    const s = invocationSources(day, rows);
    expect(s.rows).toEqual([
      { day, tenantId: "t-a", wrapperOnlyCalls: 2, logOnlyCalls: 0, bothCalls: 0, untrackedCalls: 3 },
      { day, tenantId: "t-b", wrapperOnlyCalls: 2, logOnlyCalls: 1, bothCalls: 8, untrackedCalls: 1 },
      { day, tenantId: "t-c", wrapperOnlyCalls: 0, logOnlyCalls: 4, bothCalls: 0, untrackedCalls: 0 },
    ]);
    expect(s.totals).toEqual({ wrapperOnlyCalls: 4, logOnlyCalls: 5, bothCalls: 8, untrackedCalls: 4 });
  });

  it("only the day's last hour carries the section; JSON and CSV are the same bytes whatever the input order", () => {
    const build = (hour: string, input: MeteredTenantDaySources[]) =>
      buildReport({ hour, thresholdPercent: 0.5, aws: [], metered: [], awsSageMaker: [], meteredSageMaker: [], tenantDays: hour.endsWith("T23") ? { day, rows: input } : undefined });
    const last = build(`${day}T23`, rows);
    expect(last.invocationSources?.rows.map((r) => r.tenantId)).toEqual(["t-a", "t-b", "t-c"]);
    expect(build(`${day}T20`, rows).invocationSources).toBeNull();
    const shuffled = build(`${day}T23`, [rows[2], rows[3], rows[0], rows[1]]);
    expect(reportJson(shuffled)).toBe(reportJson(last));
    expect(reportCsv(shuffled)).toBe(reportCsv(last));
    const csv = reportCsv(last).trimEnd().split("\n");
    const header = csv[0].split(",");
    const b = csv.find((l) => l.includes(",t-b,"))!.split(",");
    expect(b.length).toBe(header.length);
    const col = (name: string) => b[header.indexOf(name)];
    expect([col("service"), col("kind"), col("day"), col("wrapper_only_calls"), col("log_only_calls"), col("both_calls"), col("untracked_calls")]).toEqual([
      "invocation-sources",
      "tenant-day",
      day,
      "2",
      "1",
      "8",
      "1",
    ]);
  });

  it("reconcile reads the tenant-days of the days whose last hour is in the range, once each", async () => {
    const asked: string[] = [];
    const metered: MeteredUsage = {
      bedrock: async () => [],
      sagemaker: async () => [],
      tenantDaySources: async (d) => {
        asked.push(d);
        return rows.filter((r) => r.day === d);
      },
    };
    const service = new ReconciliationService({
      provider: { bedrock: async () => [], sagemaker: async () => [] },
      metered,
      sink: new MemorySink(),
      signalStore: new MemorySignals(),
      signals: { emit: async () => undefined },
    });
    const results = await service.reconcile({ from: new Date("2026-11-24T22:00:00Z"), to: new Date("2026-11-25T01:00:00Z") });
    expect(asked).toEqual(["2026-11-24"]);
    expect(results.map((r) => r.report.invocationSources?.rows.map((x) => x.tenantId) ?? null)).toEqual([null, ["t-z"], null]);
  });
});

describe("application inference profiles are reconciled as their base model (INFERENCE_PROFILES_JSON)", () => {
  const profileArn = "arn:aws:bedrock:us-west-2:123456789012:application-inference-profile/tadv01sonnet";
  const profiles = InferenceProfiles.fromJson(JSON.stringify([{ arn: profileArn, model: SONNET, tenant: "adv-01" }]));
  const unknownArn = "arn:aws:bedrock:us-west-2:123456789012:application-inference-profile/other";

  it("CloudWatch's profile ModelId and our log-first profile ARN fold into the base model's row; an unknown profile keeps its own", () => {
    const r = buildReport({
      hour: H,
      thresholdPercent: 0.5,
      inferenceProfiles: profiles,
      // AWS: 10 calls on the model itself, 5 through the tenant's profile, 1 through a profile nobody mapped
      aws: [aws({ invocations: 10, inputTokens: 1_000, outputTokens: 500 }), aws({ modelId: profileArn, invocations: 5, inputTokens: 500, outputTokens: 250 }), aws({ modelId: unknownArn, invocations: 1, inputTokens: 100, outputTokens: 50 })],
      // ours: wrapper events name the model; the log-first ones name the profile
      metered: [ours({ invocations: 12, inputTokens: 1_200, outputTokens: 600 }), ours({ modelId: profileArn, invocations: 3, inputTokens: 300, outputTokens: 150 })],
      awsSageMaker: [],
      meteredSageMaker: [],
    });
    expect(r.bedrock.map((b) => [b.modelId, b.aws.invocations, b.metered.invocations, b.unmeteredTokens])).toEqual([
      [SONNET, 15, 15, 0],
      [unknownArn, 1, 0, 150],
    ]);
    // without the map the profile rows stand apart
    const without = buildReport({ hour: H, thresholdPercent: 0.5, aws: [aws({ modelId: profileArn, invocations: 5, inputTokens: 500, outputTokens: 250 })], metered: [ours({ invocations: 5, inputTokens: 500, outputTokens: 250 })], awsSageMaker: [], meteredSageMaker: [] });
    expect(without.bedrock.map((b) => b.modelId)).toEqual([SONNET, profileArn].sort());
  });
});
