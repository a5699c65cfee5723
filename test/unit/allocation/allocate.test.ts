import { describe, expect, it } from "vitest";
import { allocateHour, largestRemainder } from "../../../shared/allocation/allocate";
import { mulberry32 as rng } from "../../../shared/util/random";
import {
  EndpointCatalog,
  EndpointCatalogInvalidError,
  EndpointNotInCatalogError,
  HOURS_PER_YEAR,
  hourCapacityMs,
  hourCostNanoUsd,
  type FixedCostEndpoint,
} from "../../../shared/allocation/endpoints";
import { previousHour } from "../../../shared/allocation/hours";
import { int4, lora, usage } from "./fixtures";

const intBelow = (r: () => number, n: number) => Math.floor(r() * n);

describe("endpoint catalog", () => {
  it("reproduces the seed's yearly Savings Plan figures from the hourly rates", () => {
    // seed: INT4 on ml.g5.12xlarge $49K/yr, INT8 (+LoRA) on ml.g5.48xlarge $140K/yr
    expect(Math.round((hourCostNanoUsd(int4) * HOURS_PER_YEAR) / 1e9 / 1000)).toBe(49);
    expect(Math.round((hourCostNanoUsd(lora) * HOURS_PER_YEAR) / 1e9 / 1000)).toBe(140);
    expect(lora.instanceType).toBe("ml.g5.48xlarge");
    expect(int4.instanceType).toBe("ml.g5.12xlarge");
  });

  it("bills the chosen rate times the instance count", () => {
    const two: FixedCostEndpoint = { ...lora, instanceCount: 2, rate: "on-demand" };
    expect(hourCostNanoUsd(two)).toBe(2 * Math.round(lora.onDemandHourlyUsd * 1e9));
    expect(hourCapacityMs(two)).toBe(2 * 3_600_000 * lora.maxConcurrencyPerInstance);
  });

  it("merges a JSON override over the defaults and rejects invalid entries", () => {
    const c = EndpointCatalog.fromJson(JSON.stringify({ endpoints: [{ ...int4, instanceCount: 3 }, { ...int4, endpointName: "extra-ep" }] }));
    expect(c.get("llama31-70b-int4").instanceCount).toBe(3);
    expect(c.list().map((e) => e.endpointName)).toEqual(["extra-ep", "llama31-70b-int4", "llama31-70b-lora"]);
    expect(() => c.get("nope")).toThrow(EndpointNotInCatalogError);
    expect(() => EndpointCatalog.fromJson(JSON.stringify({ endpoints: [{ ...int4, rate: "spot" }] }))).toThrow(EndpointCatalogInvalidError);
    expect(() => EndpointCatalog.fromJson(JSON.stringify({ endpoints: [{ ...int4, endpointName: "bad#name" }] }))).toThrow(EndpointCatalogInvalidError);
    expect(() => EndpointCatalog.fromJson("not json")).toThrow(EndpointCatalogInvalidError);
  });
});

describe("largest remainder", () => {
  it("sums exactly to the total and stays within one unit of the exact share (random inputs)", () => {
    for (let seed = 1; seed <= 500; seed++) {
      const r = rng(seed);
      const n = 1 + intBelow(r, 40);
      // include zeros, tiny and huge weights; totals up to ~1e13 (hundreds of instance-hours)
      const weights: number[] = Array.from({ length: n }, () => (r() < 0.15 ? 0 : intBelow(r, 10 ** (1 + intBelow(r, 8)))));
      if (!weights.some((w) => w > 0)) weights[0] = 1;
      const total = intBelow(r, 10 ** (1 + intBelow(r, 13)));
      const shares = largestRemainder(total, weights);
      expect(shares.reduce((s, x) => s + x, 0), `seed ${seed}`).toBe(total);
      const W = weights.reduce((s, w) => s + w, 0);
      shares.forEach((s, i) => {
        expect(Number.isInteger(s)).toBe(true);
        const exact = (total * weights[i]) / W;
        expect(Math.abs(s - exact), `seed ${seed} tenant ${i}`).toBeLessThan(1 + 1e-6 * Math.max(1, exact));
        if (weights[i] === 0) expect(s).toBe(0);
      });
    }
  });

  it("gives leftover units to the largest remainders, ties in order", () => {
    expect(largestRemainder(10, [1, 1, 1])).toEqual([4, 3, 3]);
    expect(largestRemainder(100, [1, 2, 3])).toEqual([17, 33, 50]); // 16.67, 33.33, 50
    expect(largestRemainder(0, [5, 5])).toEqual([0, 0]);
  });

  it("is exact where floating point is not (total x weight above 2^53)", () => {
    const total = 15_982_000_000; // one g5.48xlarge hour
    const shares = largestRemainder(total, [17_999_999, 1]);
    expect(shares[0] + shares[1]).toBe(total);
    expect(shares[1]).toBe(888); // 15,982,000,000 / 18,000,000 = 887.88...
  });

  it("refuses inputs it cannot split exactly", () => {
    expect(() => largestRemainder(10, [0, 0])).toThrow(RangeError);
    expect(() => largestRemainder(1.5, [1])).toThrow(RangeError);
    expect(() => largestRemainder(10, [-1, 2])).toThrow(RangeError);
  });
});

describe("allocateHour", () => {
  it("splits the hour cost by inference time, summing exactly to rate x instances (random hours)", () => {
    for (let seed = 1; seed <= 300; seed++) {
      const r = rng(seed);
      const ep: FixedCostEndpoint = { ...lora, instanceCount: 1 + intBelow(r, 4), rate: r() < 0.5 ? "on-demand" : "savings-plan" };
      const tenants = Array.from({ length: 1 + intBelow(r, 60) }, (_, i) => usage(`t${i}`, intBelow(r, 3_600_000), intBelow(r, 50_000)));
      const a = allocateHour(ep, "2026-11-25T20", tenants);
      const rate = ep.rate === "on-demand" ? ep.onDemandHourlyUsd : ep.savingsPlanHourlyUsd;
      const expected = Math.round(rate * 1e9) * ep.instanceCount;
      expect(a.hourCostNanoUsd).toBe(expected);
      if (a.shares.length > 0) expect(a.shares.reduce((s, x) => s + x.allocatedCostNanoUsd, 0), `seed ${seed}`).toBe(expected);
      expect(a.idleCostNanoUsd).toBeGreaterThanOrEqual(0);
      expect(a.idleCostNanoUsd).toBeLessThanOrEqual(expected);
    }
  });

  it("shares in proportion to inference time and reports idle capacity as cost", () => {
    // capacity: 1 instance x 3600 s x 5 sequences = 18,000,000 ms
    const a = allocateHour(lora, "2026-11-25T20", [usage("b", 3_000_000), usage("a", 1_000_000), usage("c", 0, 500)]);
    const cost = hourCostNanoUsd(lora); // 15,982,000,000
    expect(a.basis).toBe("inferenceMs");
    expect(a.shares.map((s) => s.tenantId)).toEqual(["a", "b"]); // c used no inference time
    expect(a.shares.map((s) => s.allocatedCostNanoUsd)).toEqual([cost / 4, (3 * cost) / 4]);
    expect(a.usedInferenceMs).toBe(4_000_000);
    expect(a.capacityMs).toBe(18_000_000);
    expect(a.idleCostNanoUsd).toBe(Math.round((cost * 14) / 18));
  });

  it("can share by tokens instead", () => {
    const byTokens: FixedCostEndpoint = { ...lora, basis: "tokens" };
    const a = allocateHour(byTokens, "2026-11-25T20", [usage("a", 9_000_000, 100), usage("b", 1, 300)]);
    expect(a.basis).toBe("tokens");
    expect(a.shares.map((s) => s.allocatedCostNanoUsd)).toEqual([hourCostNanoUsd(lora) / 4, (3 * hourCostNanoUsd(lora)) / 4]);
  });

  it("falls back to tokens, then requests, when nobody reported inference time", () => {
    expect(allocateHour(lora, "2026-11-25T20", [usage("a", 0, 10), usage("b", 0, 30)]).basis).toBe("tokens");
    const byRequests = allocateHour(lora, "2026-11-25T20", [usage("a", 0, 0, 1), usage("b", 0, 0, 3)]);
    expect(byRequests.basis).toBe("requests");
    expect(byRequests.shares.map((s) => s.allocatedCostNanoUsd)).toEqual([hourCostNanoUsd(lora) / 4, (3 * hourCostNanoUsd(lora)) / 4]);
  });

  it("leaves an unused hour wholly idle", () => {
    for (const tenants of [[], [usage("a", 0, 0, 0)]]) {
      const a = allocateHour(int4, "2026-11-25T03", tenants);
      expect(a.basis).toBe("none");
      expect(a.shares).toEqual([]);
      expect(a.idleCostNanoUsd).toBe(hourCostNanoUsd(int4));
    }
  });

  it("reports no idle cost when the capacity was saturated", () => {
    const a = allocateHour(lora, "2026-11-25T20", [usage("a", 20_000_000)]);
    expect(a.idleCostNanoUsd).toBe(0);
    expect(a.shares[0].allocatedCostNanoUsd).toBe(hourCostNanoUsd(lora));
  });

  it("is deterministic whatever order usage arrives in", () => {
    const tenants = [usage("x", 1), usage("y", 1), usage("z", 1)];
    const one = allocateHour(lora, "2026-11-25T20", tenants);
    const two = allocateHour(lora, "2026-11-25T20", [...tenants].reverse());
    expect(two).toEqual(one);
  });

  it("rejects malformed hours and duplicate tenants", () => {
    expect(() => allocateHour(lora, "2026-11-25T24", [])).toThrow(RangeError);
    expect(() => allocateHour(lora, "2026-11-25", [])).toThrow(RangeError);
    expect(() => allocateHour(lora, "2026-11-25T20", [usage("a", 1), usage("a", 2)])).toThrow(/twice/);
  });

  it("names the previous hour in UTC", () => {
    expect(previousHour(new Date("2026-11-25T21:10:00Z"))).toBe("2026-11-25T20");
    expect(previousHour(new Date("2026-12-01T00:05:00Z"))).toBe("2026-11-30T23");
  });
});
