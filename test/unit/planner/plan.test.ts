import { describe, expect, it } from "vitest";
import { PriceCatalog } from "../../../shared/pricing/catalog";
import { PlanInputInvalidError, SEED_WORKLOAD, formatPlan, plan, seedOptions, thousands } from "../../../shared/planner/plan";

const report = plan(SEED_WORKLOAD, seedOptions(new PriceCatalog()));
const byLabel = (label: string) => report.options.find((o) => o.option.label === label)!;

describe("cost planner on the seed's example", () => {
  it("needs 0.95 requests/s and 4.18 concurrent requests", () => {
    expect(report.throughputRps.toFixed(2)).toBe("0.95");
    // the seed multiplies the rounded throughput: 0.95 x 4.4 = 4.18 (unrounded: 4.19)
    expect((Math.round(report.throughputRps * 100) / 100) * SEED_WORKLOAD.meanProcessingSeconds).toBeCloseTo(4.18, 10);
    expect(report.concurrency).toBeCloseTo((30_000_000 / 31_536_000) * 4.4, 12);
  });

  it("reproduces the seed's annual cost per option", () => {
    const published: [string, string][] = [
      ["Claude 3.5 Sonnet (Bedrock)", "$267K"],
      ["Claude 3 Haiku (Bedrock)", "$22K"],
      ["Llama 3.1 70B Instruct (Bedrock)", "$25K"],
      ["SageMaker Llama 3.1 70B INT4", "$49K"],
      ["SageMaker Llama 3.1 70B INT8", "$140K"],
      ["SageMaker Llama 3.1 70B INT8 + LoRA", "$140K"],
    ];
    expect(report.options.map((o) => [o.option.label, thousands(o.annualCostUsd)])).toEqual(published);
  });

  it("finds the fixed endpoints able to serve the needed concurrency (~5 sequences at 128K context)", () => {
    for (const label of ["SageMaker Llama 3.1 70B INT4", "SageMaker Llama 3.1 70B INT8", "SageMaker Llama 3.1 70B INT8 + LoRA"]) {
      expect(byLabel(label).capacity).toMatchObject({ maxConcurrency: 5, sufficient: true });
    }
  });

  it("puts the break-even where API and endpoint annual costs meet", () => {
    for (const b of report.breakEvens) {
      const api = byLabel(b.api);
      const endpoint = byLabel(b.endpoint);
      expect(b.requestsPerYear * api.costPerRequestUsd).toBeCloseTo(endpoint.annualCostUsd, 6);
    }
    const sonnetVsLora = report.breakEvens.find((b) => b.api.startsWith("Claude 3.5") && b.endpoint.endsWith("LoRA"))!;
    // below 30M requests/yr: at the seed's volume the shared LoRA endpoint beats Sonnet
    expect(sonnetVsLora.requestsPerYear).toBeLessThan(SEED_WORKLOAD.requestsPerYear);
    expect(sonnetVsLora.withinEndpointCapacity).toBe(true);
    const haikuVsInt4 = report.breakEvens.find((b) => b.api.startsWith("Claude 3 Haiku") && b.endpoint.endsWith("INT4"))!;
    expect(haikuVsInt4.withinEndpointCapacity).toBe(false); // one instance saturates first
  });

  it("flags insufficient capacity when the load outgrows one instance", () => {
    const heavy = plan({ ...SEED_WORKLOAD, requestsPerYear: 60_000_000 }, seedOptions(new PriceCatalog()));
    expect(heavy.options.find((o) => o.option.kind === "endpoint")?.capacity?.sufficient).toBe(false);
  });

  it("prints the table with the seed's figures", () => {
    const text = formatPlan(report);
    expect(text).toContain("Throughput needed: 0.95 requests/s");
    expect(text).toContain("Concurrency needed: 4.18");
    expect(text).toMatch(/Claude 3\.5 Sonnet \(Bedrock\).*\$267K/);
  });

  it("rejects nonsense inputs", () => {
    expect(() => plan({ ...SEED_WORKLOAD, meanProcessingSeconds: 0 }, [])).toThrow(PlanInputInvalidError);
    expect(() => plan({ ...SEED_WORKLOAD, requestsPerYear: Number.NaN }, [])).toThrow(PlanInputInvalidError);
    expect(() => seedOptions(new PriceCatalog(), "us-west-2", "2020-01-01")).toThrow(PlanInputInvalidError);
  });
});
