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
    const report = formatDemoResult(result, scenario);
    expect(report).toContain("each distinct valid event exactly once");
    expect(report).toMatch(/prem-01\s+Premium/);
    expect(report).toContain(`Enforcement events published (${result.enforcement.length},`);
  });
});
