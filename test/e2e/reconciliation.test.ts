import { CloudWatchClient, GetMetricDataCommand } from "@aws-sdk/client-cloudwatch";
import { PutEventsCommand } from "@aws-sdk/client-eventbridge";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { publishSimulatedAwsMetrics } from "../../local/simulated-aws-metrics";
import type { LocalStack } from "../../local/stack";
import { INVOCATION_DETAIL_TYPE, INVOCATION_SOURCES, type InvocationEventV1 } from "../../shared/events/invocation";
import type { DriftReport } from "../../shared/reconciliation/model";
import { reportPaths } from "../../shared/reconciliation/service";
import { prng } from "../helpers/events";
import { eventBridgeClient, startTestStack } from "./stack-harness";

const HOUR = 3_600_000;
const SONNET = "anthropic.claude-3-5-sonnet-20240620-v1:0";
const HAIKU = "anthropic.claude-3-haiku-20240307-v1:0";
const LORA = "llama31-70b-lora";

let stack: LocalStack;
let reportDir: string;

beforeAll(async () => {
  reportDir = mkdtempSync(join(tmpdir(), "reconcile-e2e-"));
  ({ stack } = await startTestStack({ batchingWindowMs: 50, billingExportDir: reportDir }));
});

afterAll(async () => {
  await stack?.stop();
  rmSync(reportDir, { recursive: true, force: true });
});

/** `n` wrapper calls in `hour` (epoch ms of its start): Bedrock on two models, some on the SageMaker endpoint. */
function calls(hourStart: number, n: number, tag: string): InvocationEventV1[] {
  const random = prng(hourStart / HOUR);
  return Array.from({ length: n }, (_, i) => {
    const occurredAt = new Date(hourStart + Math.floor(random() * (HOUR - 1000))).toISOString();
    const base = { eventId: `${tag}-${i}`, tenantId: `t-${i % 7}`, occurredAt, inputTokens: 100 + Math.floor(random() * 900), outputTokens: 50 + Math.floor(random() * 600) };
    if (i % 5 === 4) return { ...base, provider: "sagemaker", modelId: LORA, endpointName: LORA, variantName: "AllTraffic", latencyMs: 800 + Math.floor(random() * 3000) };
    return { ...base, provider: "bedrock", modelId: i % 3 === 0 ? HAIKU : SONNET };
  });
}

async function send(events: readonly InvocationEventV1[]): Promise<void> {
  const client = eventBridgeClient(stack);
  for (let i = 0; i < events.length; i += 10) {
    const out = await client.send(
      new PutEventsCommand({
        Entries: events.slice(i, i + 10).map((e) => ({
          Source: e.provider === "sagemaker" ? INVOCATION_SOURCES.sagemaker : INVOCATION_SOURCES.bedrock,
          DetailType: INVOCATION_DETAIL_TYPE,
          Detail: JSON.stringify(e),
          EventBusName: stack.busName,
        })),
      }),
    );
    expect(out.FailedEntryCount ?? 0).toBe(0);
  }
  client.destroy();
  await stack.drain({ timeoutMs: 60_000 });
}

/** Runs the scheduled job at :25 two hours after `hourStart`: with the 1-hour lag it reconciles that hour. */
async function reconcileJob(hourStart: number) {
  const run = await stack.runJob("reconcile", { time: new Date(hourStart + 2 * HOUR + 25 * 60_000) });
  expect(run.error).toBeUndefined();
  expect(run.ok).toBe(true);
  return run.result as { hour: string; alarm: boolean; driftPercent: number; unmeteredTokens: number; unmeteredPercent: number; signal: string; files: string[] };
}

const hourOf = (ms: number) => new Date(ms).toISOString().slice(0, 13);
const readReport = (hour: string) => readFileSync(join(reportDir, reportPaths(hour).json), "utf8");
const readCsv = (hour: string) => readFileSync(join(reportDir, reportPaths(hour).csv), "utf8");

describe("reconciliation through the local stack (wrapper events vs simulated AWS/Bedrock and AWS/SageMaker metrics)", () => {
  const now = Math.floor(Date.now() / HOUR) * HOUR;
  const shadowHour = now - 5 * HOUR;
  const cleanHour = now - 4 * HOUR;

  it("2% shadow usage in AWS's figures is reported as unmetered, by model and hour, within 0.1 percentage point", async () => {
    // Given 300 wrapper calls counted by the pipeline, and AWS's metrics holding them plus 2% shadow usage
    const events = calls(shadowHour, 300, "shadow");
    await send(events);
    const sim = publishSimulatedAwsMetrics(stack.cloudwatch, events, { shadowShare: 0.02 });
    expect(sim.shadowTokens).toBeGreaterThan(0);

    // When the hourly job reconciles that hour
    const result = await reconcileJob(shadowHour);

    // Then the unmetered share is 2% of AWS's tokens, the alarm fires, and it is attributed to models, not tenants
    expect(result.hour).toBe(hourOf(shadowHour));
    expect(Math.abs(result.unmeteredPercent - 2)).toBeLessThanOrEqual(0.1);
    expect(result.unmeteredTokens).toBe(sim.shadowTokens);
    expect(result.alarm).toBe(true);
    expect(result.signal).toBe("new");
    const report = JSON.parse(readReport(result.hour)) as DriftReport;
    expect(report.bedrock.map((r) => r.modelId)).toEqual([SONNET, HAIKU].sort());
    for (const row of report.bedrock) {
      expect(row.unmeteredTokens).toBeGreaterThan(0);
      expect(row.overMeteredTokens).toBe(0);
      expect(Object.keys(row)).not.toContain("tenantId");
    }
    expect(report.totals.meteredTokens).toBe(events.filter((e) => e.provider === "bedrock").reduce((s, e) => s + e.inputTokens + e.outputTokens, 0));
    // SageMaker: every endpoint call was metered
    expect(report.sagemaker).toEqual([
      expect.objectContaining({ kind: "endpoint", name: LORA, awsInvocations: 60, meteredInvocations: 60, driftPercent: 0 }),
    ]);
    expect(readCsv(result.hour).split("\n")[0]).toMatch(/^hour,service,kind,name,aws_invocations,metered_invocations,/);
  });

  it("a re-run of the hour writes the same report, byte for byte, and signals nothing again", async () => {
    const hour = hourOf(shadowHour);
    const firstJson = readReport(hour);
    const firstCsv = readCsv(hour);
    const again = await reconcileJob(shadowHour);
    expect(again.signal).toBe("same");
    expect(readReport(hour)).toBe(firstJson);
    expect(readCsv(hour)).toBe(firstCsv);
  });

  it("the job's UnmeteredTokens and DriftPercent reach the local CloudWatch (EMF) once, readable with GetMetricData", async () => {
    const cw = new CloudWatchClient({ endpoint: stack.url, region: stack.region, credentials: { accessKeyId: "local", secretAccessKey: "local" }, maxAttempts: 1 });
    const metric = (name: string) => ({ Namespace: "GenAIMetering", MetricName: name, Dimensions: [{ Name: "service", Value: "genai-metering" }] });
    const out = await cw.send(
      new GetMetricDataCommand({
        StartTime: new Date(shadowHour),
        EndTime: new Date(shadowHour + HOUR),
        MetricDataQueries: [
          { Id: "unmetered", MetricStat: { Metric: metric("UnmeteredTokens"), Period: 3600, Stat: "Sum" } },
          { Id: "drift", MetricStat: { Metric: metric("DriftPercent"), Period: 3600, Stat: "Maximum" } },
        ],
      }),
    );
    cw.destroy();
    const byId = Object.fromEntries((out.MetricDataResults ?? []).map((r) => [r.Id, r]));
    const report = JSON.parse(readReport(hourOf(shadowHour))) as DriftReport;
    // two runs, one signal: the re-run added nothing
    expect(byId.unmetered.Values).toEqual([report.totals.unmeteredTokens]);
    expect(byId.drift.Values).toEqual([report.totals.driftPercent]);
    expect(byId.drift.Timestamps?.map((t: Date) => t.toISOString())).toEqual([new Date(shadowHour).toISOString()]);
  });

  it("without shadow usage the drift is 0 and no alarm is raised", async () => {
    const events = calls(cleanHour, 200, "clean");
    await send(events);
    publishSimulatedAwsMetrics(stack.cloudwatch, events, { shadowShare: 0 });
    const result = await reconcileJob(cleanHour);
    expect(result).toMatchObject({ hour: hourOf(cleanHour), driftPercent: 0, unmeteredTokens: 0, unmeteredPercent: 0, alarm: false });
    const report = JSON.parse(readReport(result.hour)) as DriftReport;
    expect(report.totals.awsTokens).toBeGreaterThan(0);
    expect(report.totals.awsTokens).toBe(report.totals.meteredTokens);
    expect(report.totals.sageMakerDriftPercent).toBe(0);
  });

  it("usage counted by the pipeline that AWS never measured is reported as over-metered drift", async () => {
    // Given an hour with wrapper events but no AWS figures at all (e.g. a wrapper reporting calls that never ran)
    const hour = now - 3 * HOUR;
    await send(calls(hour, 20, "phantom").filter((e) => e.provider === "bedrock"));
    const result = await reconcileJob(hour);
    const report = JSON.parse(readReport(result.hour)) as DriftReport;
    expect(report.totals.unmeteredTokens).toBe(0);
    expect(report.totals.overMeteredTokens).toBe(report.totals.meteredTokens);
    expect(result.driftPercent).toBe(100);
    expect(result.alarm).toBe(true);
  });
});
