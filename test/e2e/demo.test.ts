import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildDemoEvents, defaultTenants, demoScenario, formatDemoResult, runDemo } from "../../local/demo";
import type { LocalStack } from "../../local/stack";
import { startTestStack } from "./stack-harness";

describe("demo scenario (data)", () => {
  it("spreads tenants over the three tiers with seed-style ids and volumes from the profile", () => {
    const tenants = defaultTenants(7);
    expect(tenants.map((t) => t.tenantId)).toEqual(["basic-01", "basic-02", "basic-03", "adv-01", "adv-02", "prem-01", "prem-02"]);
    expect(tenants.map((t) => t.requests)).toEqual([32, 20, 12, 80, 50, 128, 80]);
  });

  it("builds the stream: distinct valid events, re-sent duplicates with the same eventId, invalid ones", () => {
    const scenario = demoScenario({ tenants: 6, events: 200 });
    const events = buildDemoEvents(scenario, new Date("2026-11-25T12:00:00Z"));
    const valid = events.filter((e) => e.kind === "valid");
    const dups = events.filter((e) => e.kind === "duplicate");
    expect(valid.length).toBe(scenario.tenants.reduce((a, t) => a + t.requests, 0));
    expect(new Set(valid.map((e) => e.detail.eventId)).size).toBe(valid.length);
    expect(dups.length).toBeGreaterThan(0);
    const validIds = new Set(valid.map((e) => e.detail.eventId));
    expect(dups.every((d) => validIds.has(d.detail.eventId))).toBe(true);
    expect(events.filter((e) => e.kind === "invalid")).toHaveLength(scenario.invalid.length);
    for (const e of valid) {
      expect(Number.isInteger(e.detail.inputTokens) && Number.isInteger(e.detail.outputTokens)).toBe(true);
      if (String(e.detail.tenantId).startsWith("basic-")) {
        expect(e.detail).toMatchObject({ provider: "sagemaker", endpointName: "llama31-70b-lora", adapterId: `${e.detail.tenantId}-lora` });
      } else {
        expect(e.detail.provider).toBe("bedrock");
      }
    }
    const meanIn = valid.reduce((a, e) => a + Number(e.detail.inputTokens), 0) / valid.length;
    expect(Math.abs(meanIn - 307)).toBeLessThan(15);
  });

  it("spreads the traffic over the finished days before today, across a month boundary, with idle nights on the Basic endpoint", () => {
    // the 2nd of a month: the window starts in the previous month
    const now = new Date("2026-12-02T01:40:00Z");
    const scenario = demoScenario({ tenants: 9 });
    const valid = buildDemoEvents(scenario, now).filter((e) => e.kind === "valid");
    const at = valid.map((e) => String(e.detail.occurredAt));
    expect(at.every((t) => t >= "2026-11-27T00:00:00" && t <= now.toISOString())).toBe(true);
    expect(new Set(at.map((t) => t.slice(0, 10))).size).toBeGreaterThanOrEqual(6);
    // every tenant has live traffic (the current month's quotas see it) and traffic of earlier days
    for (const t of scenario.tenants) {
      const mine = valid.filter((e) => e.detail.tenantId === t.tenantId).map((e) => String(e.detail.occurredAt));
      expect(mine.filter((x) => Date.parse(x) >= now.getTime() - 300_000).length).toBeGreaterThanOrEqual(2);
      expect(mine.some((x) => x < "2026-12-01")).toBe(true);
    }
    // Basic tenants work 08-18 UTC: the LoRA endpoint has no traffic at night before today
    const basicPast = valid.filter((e) => e.detail.provider === "sagemaker" && Date.parse(String(e.detail.occurredAt)) < now.getTime() - 300_000);
    expect(basicPast.every((e) => { const h = new Date(String(e.detail.occurredAt)).getUTCHours(); return h >= 8 && h < 18; })).toBe(true);
  });
});

describe("demo run through the local stack", () => {
  let stack: LocalStack;
  beforeAll(async () => {
    ({ stack } = await startTestStack({ batchingWindowMs: 100 }));
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it("counts each distinct valid event once, reads the summary over HTTP and reports the quarantine", { timeout: 120_000 }, async () => {
    // prepare
    const scenario = demoScenario({ tenants: 6, events: 120 });
    let progress = "";
    // act
    const result = await runDemo(stack, scenario, { write: (t) => (progress += t) });
    // assess
    expect(result.rejectedByBus).toBe(0);
    expect(result.countedThisRun).toBe(result.distinctValid);
    expect(result.tenants.reduce((a, t) => a + t.requests, 0)).toBe(result.distinctValid);
    expect(result.tenants.find((t) => t.tier === "premium")!.costUsd).toBeGreaterThan(0);
    expect(result.quarantine.reduce((a, q) => a + q.count, 0)).toBe(scenario.invalid.length);
    expect(progress).toContain(`sent ${result.sent}/${result.sent}`);
    // the quota plan's tight tenants cross their quotas; the allocation job ran once
    const crossed = new Set(result.enforcement.map((e) => `${e.tenantId} ${e.detailType}`));
    expect(crossed).toContain("basic-01 Tenant Throttled");
    expect(crossed).toContain("adv-01 Tenant Downgraded");
    expect(result.allocation.error).toBeUndefined();
    expect(result.allocation.run?.hour).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}$/);
    expect(result.tenants.find((t) => t.tenantId === "basic-01")!.decision).toMatch(/^throttle/);
    // the finished hours of the earlier days are allocated: Basic tenants carry a share of the LoRA endpoint
    expect(result.allocation.runs).toBeGreaterThan(1);
    for (const t of result.tenants.filter((x) => x.tier === "basic")) expect(t.allocatedCostUsd, t.tenantId).toBeGreaterThan(0);
    const lora = result.fixedCost.find((e) => e.endpointName === "llama31-70b-lora")!;
    expect(lora.usedHours).toBeGreaterThan(0);
    expect(lora.hours - lora.usedHours).toBeGreaterThan(0);
    expect(lora.allocatedUsd).toBeCloseTo(lora.usedHours * lora.hourCostUsd, 6);
    const report = formatDemoResult(result, scenario);
    expect(report).toMatch(/4 {2}Bedrock Claude 3\.5 Sonnet/);
    expect(report).toMatch(/3 {2}Bedrock Claude 3 Haiku/);
    expect(report).toMatch(/1 {2}SageMaker llama31-70b-lora/);
    expect(report).toContain("idle");
    expect(report).toContain("each distinct valid event exactly once");
    expect(report).toMatch(/prem-01\s+Premium/);
    expect(report).toContain(`Enforcement events published (${result.enforcement.length},`);
  });
});
