import { PutEventsCommand } from "@aws-sdk/client-eventbridge";
import { GetCommand, UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JobRun, JobStatus, LocalJob } from "../../local/jobs";
import { LOCAL_JOBS } from "../../local/jobs";
import type { LocalStack } from "../../local/stack";
import { DEFAULT_ENDPOINTS, hourCostNanoUsd } from "../../shared/allocation/endpoints";
import { INVOCATION_DETAIL_TYPE, INVOCATION_SOURCES } from "../../shared/events/invocation";
import { createQuotaEvaluator } from "../../shared/quota/adapters/wiring";
import { QuotaPublishError } from "../../shared/quota/errors";
import { ENFORCEMENT_SOURCE } from "../../shared/quota/events";
import { documentClient } from "../../shared/storage/adapters/dynamodb";
import { keys } from "../../shared/storage/keys";
import { localDynamoClient } from "../helpers/dynamo";
import { launchChromium } from "../helpers/chromium";
import { RecordingPublisher } from "../unit/quota/fakes";
import { eventBridgeClient, startTestStack } from "./stack-harness";

const HOUR = 3_600_000;
const LORA = DEFAULT_ENDPOINTS.find((e) => e.endpointName === "llama31-70b-lora")!;

/** A job that always throws, next to the real three: its failure must stay its own. */
const BROKEN: LocalJob = {
  name: "broken",
  handler: async () => {
    throw new RangeError("this job is broken on purpose");
  },
  schedule: "rate(1 day)",
  timeoutSeconds: 10,
};

let stack: LocalStack;
let logs: string[];
let exportDir: string;
/** The hour the allocation test allocated (yyyy-mm-ddTHH). */
let allocatedHour = "";
const doc = documentClient(localDynamoClient());

beforeAll(async () => {
  exportDir = mkdtempSync(join(tmpdir(), "local-jobs-export-"));
  ({ stack, logs } = await startTestStack({ batchingWindowMs: 50, billingExportDir: exportDir, jobs: [...LOCAL_JOBS, BROKEN] }));
});

afterAll(async () => {
  await stack?.stop();
  rmSync(exportDir, { recursive: true, force: true });
});

async function trigger(name: string, time?: string): Promise<{ status: number; run: JobRun }> {
  const res = await fetch(`${stack.url}/local/jobs/${name}${time ? `?time=${encodeURIComponent(time)}` : ""}`, { method: "POST" });
  return { status: res.status, run: (await res.json()) as JobRun };
}

async function jobsStatus(): Promise<Record<string, JobStatus>> {
  const body = (await (await fetch(`${stack.url}/local/jobs`)).json()) as { scheduling: boolean; jobs: JobStatus[] };
  expect(body.scheduling).toBe(false); // tests run the jobs on demand only
  return Object.fromEntries(body.jobs.map((j) => [j.name, j]));
}

async function send(details: Record<string, unknown>[]): Promise<void> {
  const client = eventBridgeClient(stack);
  for (let i = 0; i < details.length; i += 10) {
    const out = await client.send(
      new PutEventsCommand({
        Entries: details.slice(i, i + 10).map((d) => ({
          Source: d.provider === "sagemaker" ? INVOCATION_SOURCES.sagemaker : INVOCATION_SOURCES.bedrock,
          DetailType: INVOCATION_DETAIL_TYPE,
          Detail: JSON.stringify(d),
          EventBusName: stack.busName,
        })),
      }),
    );
    expect(out.FailedEntryCount ?? 0).toBe(0);
  }
  client.destroy();
  await stack.drain({ timeoutMs: 30_000 });
}

function sagemakerEvent(id: string, tenantId: string, occurredAt: Date, latencyMs: number) {
  return {
    eventId: id,
    tenantId,
    occurredAt: occurredAt.toISOString(),
    provider: "sagemaker",
    modelId: LORA.endpointName,
    endpointName: LORA.endpointName,
    variantName: "AllTraffic",
    adapterId: `${tenantId}-lora`,
    inputTokens: 300,
    outputTokens: 500,
    latencyMs,
    status: "success",
  };
}

const monthAllocated = async (tenantId: string, month: string) =>
  (await doc.send(new GetCommand({ TableName: stack.tableName, Key: keys.aggregate(tenantId, { kind: "tenant", granularity: "month", period: month }), ConsistentRead: true })))
    .Item?.allocatedCostNanoUsd as number | undefined;

describe("scheduled jobs through the local stack (real handlers, DynamoDB Local)", () => {
  it("allocate: splits a finished hour's SageMaker endpoint cost among its tenants by inference time, once", async () => {
    // prepare: SageMaker usage two hours ago (a finished hour), 1 s vs 3 s of inference time
    const hourStart = Math.floor(Date.now() / HOUR) * HOUR - 2 * HOUR;
    const hour = new Date(hourStart).toISOString().slice(0, 13);
    allocatedHour = hour;
    const month = hour.slice(0, 7);
    await send([
      sagemakerEvent("jobs-alloc-1", "alloc-a", new Date(hourStart + 10 * 60_000), 1000),
      sagemakerEvent("jobs-alloc-2", "alloc-b", new Date(hourStart + 20 * 60_000), 1500),
      sagemakerEvent("jobs-alloc-3", "alloc-b", new Date(hourStart + 30 * 60_000), 1500),
    ]);

    // act: the run EventBridge would make at :05 of the next hour
    const scheduledAt = new Date(hourStart + HOUR + 5 * 60_000).toISOString().replace(".000Z", "Z");
    const { status, run } = await trigger("allocate", scheduledAt);

    // assess: the handler's own result, passed through
    expect(status).toBe(200);
    expect(run).toMatchObject({ job: "allocate", trigger: "manual", time: scheduledAt, ok: true });
    const result = run.result as { hour: string; outcomes: { endpointName: string; status: string; tenants: number }[] };
    expect(result.hour).toBe(hour);
    expect(result.outcomes).toContainEqual({ endpointName: LORA.endpointName, status: "allocated", version: 1, tenants: 2 });
    // the hour's cost, split 1:3 by inference time, summing exactly to the endpoint-hour cost
    const a = await monthAllocated("alloc-a", month);
    const b = await monthAllocated("alloc-b", month);
    expect(a! + b!).toBe(hourCostNanoUsd(LORA));
    expect(a).toBe(hourCostNanoUsd(LORA) / 4);
    // and the usage API shows it as allocated fixed cost, apart from the per-token cost
    const usage = (await (await fetch(`${stack.url}/usage/alloc-b?from=${hour.slice(0, 10)}&to=${hour.slice(0, 10)}&granularity=day`)).json()) as {
      totals: { allocatedCostUsd: number; costUsd: number };
    };
    expect(usage.totals.allocatedCostUsd).toBeCloseTo((3 * hourCostNanoUsd(LORA)) / 4 / 1e9, 4);

    // a rerun of the same tick changes nothing
    const again = await trigger("allocate", scheduledAt);
    expect((again.run.result as typeof result).outcomes).toContainEqual({ endpointName: LORA.endpointName, status: "already-allocated", version: 1, tenants: 2 });
    expect(await monthAllocated("alloc-a", month)).toBe(a);
    expect((await jobsStatus()).allocate).toMatchObject({ runs: 2, failures: 0, lastRun: { ok: true, time: scheduledAt } });
  });

  it("outbox-sweep: returns its report and publishes a pending enforcement event to the local bus", async () => {
    // prepare: a throttle whose publish failed ten minutes ago (its lease long expired), tenant not evaluated since
    const then = new Date(Date.now() - 10 * 60_000);
    const month = then.toISOString().slice(0, 7);
    const evaluator = (publisher: RecordingPublisher) => createQuotaEvaluator({ dynamo: doc, tableName: stack.tableName, publisher, clock: () => then });
    await evaluator(new RecordingPublisher()).putConfig("sweep-t", { tier: "basic", monthlyTokens: 1000, warningThresholds: [] });
    // usage over the quota, written as the ingest would (not through it, so no evaluation publishes first)
    await doc.send(
      new UpdateCommand({
        TableName: stack.tableName,
        Key: keys.aggregate("sweep-t", { kind: "tenant", granularity: "month", period: month }),
        UpdateExpression: "ADD requests :r, inputTokens :i",
        ExpressionAttributeValues: { ":r": 1, ":i": 1800 },
      }),
    );
    const down = new RecordingPublisher();
    down.failNext = 1;
    await expect(evaluator(down).evaluate({ tenantId: "sweep-t", month, minutes: [], now: then })).rejects.toBeInstanceOf(QuotaPublishError);
    const ofTenant = () => stack.recentEvents({ source: ENFORCEMENT_SOURCE }).filter((e) => (e.envelope.detail as { tenantId?: string }).tenantId === "sweep-t");
    expect(ofTenant()).toEqual([]);

    // act
    const { status, run } = await trigger("outbox-sweep");

    // assess: the sweep's report, and the pending event on the local bus, once
    expect(status).toBe(200);
    expect(run).toMatchObject({ job: "outbox-sweep", ok: true, result: { states: 1, published: 1, failed: 0, complete: true } });
    expect(ofTenant().map((e) => e.envelope["detail-type"])).toEqual(["Tenant Throttled"]);
    // a second sweep finds nothing left
    const second = await trigger("outbox-sweep");
    expect(second.run.result).toMatchObject({ states: 0, published: 0, failed: 0 });
  });

  it("billing-export: writes the month's invoice lines to the configured directory", async () => {
    // prepare: priced Bedrock usage this month for a tenant with a tier
    const now = new Date();
    const month = now.toISOString().slice(0, 7);
    const put = await fetch(`${stack.url}/tenants/export-t/config`, { method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify({ tier: "premium" }) });
    expect(put.ok).toBe(true);
    await send(
      [1, 2, 3].map((i) => ({
        eventId: `jobs-export-${i}`,
        tenantId: "export-t",
        occurredAt: new Date(now.getTime() - i * 1000).toISOString(),
        provider: "bedrock",
        modelId: "anthropic.claude-3-5-sonnet-20240620-v1:0",
        inputTokens: 307,
        outputTokens: 533,
        status: "success",
      })),
    );

    // act: the run of day 1, 03:00 UTC of next month exports this month
    const nextMonth = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1, 3)).toISOString();
    const { status, run } = await trigger("billing-export", nextMonth);

    // assess
    expect(status).toBe(200);
    const result = run.result as { month: string; lines: number; files: string[] };
    expect(result.month).toBe(month);
    expect(stack.billingExportDir).toBe(exportDir);
    expect(result.files).toEqual([join(exportDir, "billing", month, "invoice-lines.jsonl"), join(exportDir, "billing", month, "invoice-lines.csv")]);
    const lines = readFileSync(result.files[0], "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { tenantId: string; tier: string; requests: number; apiCostNanoUsd: number; subscriptionNanoUsd: number });
    expect(lines).toHaveLength(result.lines);
    expect(lines.find((l) => l.tenantId === "export-t")).toMatchObject({ tier: "premium", requests: 3 });
    expect(lines.find((l) => l.tenantId === "export-t")!.apiCostNanoUsd).toBeGreaterThan(0);
    expect(lines.find((l) => l.tenantId === "export-t")!.subscriptionNanoUsd).toBeGreaterThan(0);
    expect(readFileSync(result.files[1], "utf8")).toContain("export-t");
  });

  it("a failing job answers 500 with its error, is kept in GET /local/jobs, and the stack keeps working", async () => {
    // act
    const { status, run } = await trigger("broken");

    // assess: the failure is reported and kept ...
    expect(status).toBe(500);
    expect(run).toMatchObject({ job: "broken", ok: false, error: { name: "RangeError", message: "this job is broken on purpose" } });
    const jobs = await jobsStatus();
    expect(jobs.broken).toMatchObject({ runs: 1, failures: 1, lastFailure: { ok: false, error: { name: "RangeError" } } });
    expect(logs.some((l) => l.startsWith("[job broken] triggered") && l.includes("FAILED") && l.includes("broken on purpose"))).toBe(true);
    // ... and everything else still works: health, ingest, the other jobs
    expect((await fetch(`${stack.url}/local/health`)).status).toBe(200);
    await send([{ eventId: "jobs-after-failure", tenantId: "after-t", occurredAt: new Date().toISOString(), provider: "bedrock", modelId: "anthropic.claude-3-haiku-20240307-v1:0", inputTokens: 10, outputTokens: 10, status: "success" }]);
    const day = new Date().toISOString().slice(0, 10);
    const usage = (await (await fetch(`${stack.url}/usage/after-t?from=${day}&to=${day}&granularity=day`)).json()) as { totals: { requests: number } };
    expect(usage.totals.requests).toBe(1);
    expect((await trigger("outbox-sweep")).status).toBe(200);
    expect(jobs.allocate.failures).toBe(0);
  });

  it("the dashboard lists the jobs with their last result and the failure", async () => {
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      await page.goto(stack.url + "/");
      await page.waitForSelector("body[data-ready=true]", { timeout: 30_000 });
      const rows = await page.$$eval("#jobs tbody tr", (trs) => trs.map((tr) => Array.from(tr.querySelectorAll("td"), (td) => td.textContent ?? "")));
      const byJob = Object.fromEntries(rows.map((r) => [r[0], r]));
      expect(Object.keys(byJob)).toEqual(["allocate", "billing-export", "outbox-sweep", "reconcile", "broken"]);
      expect(byJob.allocate[1]).toBe("cron(5 * * * ? *)");
      expect(byJob.allocate[2]).toBe("not scheduled");
      expect(byJob.allocate[4]).toContain('"hour"');
      expect(byJob.broken[4]).toContain("failed RangeError: this job is broken on purpose");
      // the allocated fixed cost is part of the tenant's cost column (the dashboard shows the last
      // 7 days, so the hour allocated two hours ago is in it, in the first hours of a month too)
      expect(allocatedHour).not.toBe("");
      const cost = await page.$eval('tr[data-id="alloc-a"] td:nth-child(5)', (td) => td.getAttribute("title"));
      expect(cost).toMatch(/allocated fixed \$[1-9]/);
      expect(await page.$eval('tr[data-id="alloc-a"] td:nth-child(6)', (td) => Number(td.textContent))).toBeGreaterThan(0);
    } finally {
      await browser.close();
    }
  });

  it("answers 404 for an unknown job and 400 for a bad time", async () => {
    const unknown = await fetch(`${stack.url}/local/jobs/nope`, { method: "POST" });
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ jobs: ["allocate", "billing-export", "outbox-sweep", "reconcile", "broken"] });
    const bad = await fetch(`${stack.url}/local/jobs/allocate?time=yesterday`, { method: "POST" });
    expect(bad.status).toBe(400);
    const body = await fetch(`${stack.url}/local/jobs/allocate`, { method: "POST", body: "{not json" });
    expect(body.status).toBe(400);
  });
});
