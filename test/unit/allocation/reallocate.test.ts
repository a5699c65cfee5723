import { describe, expect, it } from "vitest";
import { allocateHour } from "../../../shared/allocation/allocate";
import { hourCostNanoUsd, type FixedCostEndpoint } from "../../../shared/allocation/endpoints";
import { DEFAULT_REALLOCATION_LOOKBACK_HOURS, hoursEndingAt } from "../../../shared/allocation/hours";
import { planReallocation, reallocateHour, shareDeltas, splitChanged } from "../../../shared/allocation/reallocate";
import { mulberry32 as rng } from "../../../shared/util/random";
import { lora, usage } from "./fixtures";

const HOUR = "2026-11-25T20";
const COST = hourCostNanoUsd(lora);
const total = (xs: readonly { allocatedCostNanoUsd: number }[]) => xs.reduce((s, x) => s + x.allocatedCostNanoUsd, 0);

/** Applies deltas to per-tenant totals, as the ADDs do to the aggregates. */
function applied(previous: readonly { tenantId: string; allocatedCostNanoUsd: number }[], deltas: ReturnType<typeof shareDeltas>) {
  const m = new Map(previous.map((s) => [s.tenantId, s.allocatedCostNanoUsd]));
  for (const d of deltas) m.set(d.tenantId, (m.get(d.tenantId) ?? 0) + d.deltaNanoUsd);
  for (const [k, v] of m) if (v === 0) m.delete(k);
  return m;
}

describe("shareDeltas", () => {
  it("sums to zero and turns the old totals into the new plan's shares (random late usage)", () => {
    const r = rng(7);
    for (let round = 0; round < 300; round++) {
      const n = 1 + Math.floor(r() * 40);
      const before = Array.from({ length: n }, (_, i) => usage(`t${i}`, Math.floor(r() * 5_000_000)));
      if (before.every((u) => u.inferenceMs === 0)) before[0].inferenceMs = 1;
      // late usage: some tenants grow, some new tenants appear; usage never shrinks
      const after = before.map((u) => ({ ...u, inferenceMs: u.inferenceMs + (r() < 0.3 ? Math.floor(r() * 2_000_000) : 0) }));
      for (let j = 0; j < Math.floor(r() * 3); j++) after.push(usage(`late${j}`, 1 + Math.floor(r() * 3_000_000)));

      const prev = allocateHour(lora, HOUR, before);
      const next = reallocateHour(prev, lora, after);
      const deltas = shareDeltas(prev.shares, next.shares);

      expect(deltas.reduce((s, d) => s + d.deltaNanoUsd, 0)).toBe(0);
      expect(total(next.shares)).toBe(COST);
      const nextTotals = new Map(next.shares.filter((s) => s.allocatedCostNanoUsd !== 0).map((s) => [s.tenantId, s.allocatedCostNanoUsd]));
      expect(applied(prev.shares, deltas)).toEqual(nextTotals);
      for (const d of deltas) {
        expect(d.deltaNanoUsd).not.toBe(0);
        expect(d.nextNanoUsd - d.previousNanoUsd).toBe(d.deltaNanoUsd);
      }
    }
  });

  it("gives a tenant who loses share a negative delta and a newcomer its whole share", () => {
    const prev = allocateHour(lora, HOUR, [usage("a", 1_000_000), usage("b", 1_000_000)]);
    const next = reallocateHour(prev, lora, [usage("a", 1_000_000), usage("b", 1_000_000), usage("c", 2_000_000)]);
    const deltas = shareDeltas(prev.shares, next.shares);
    expect(deltas.map((d) => d.tenantId)).toEqual(["a", "b", "c"]);
    expect(deltas[0].deltaNanoUsd).toBeLessThan(0);
    expect(deltas[1].deltaNanoUsd).toBeLessThan(0);
    expect(deltas[2]).toEqual({ tenantId: "c", previousNanoUsd: 0, nextNanoUsd: COST / 2, deltaNanoUsd: COST / 2 });
    // a and b each drop from half to a quarter of the hour
    expect(deltas[0].deltaNanoUsd + deltas[1].deltaNanoUsd).toBe(-COST / 2);
  });

  it("charges the whole hour when an idle hour gets late usage (deltas sum to the hour cost)", () => {
    const prev = allocateHour(lora, HOUR, []);
    expect(prev.basis).toBe("none");
    const next = reallocateHour(prev, lora, [usage("a", 10), usage("b", 30)]);
    const deltas = shareDeltas(prev.shares, next.shares);
    expect(deltas.reduce((s, d) => s + d.deltaNanoUsd, 0)).toBe(COST);
    expect(deltas.map((d) => d.previousNanoUsd)).toEqual([0, 0]);
  });

  it("removes a tenant whose basis drops out when the split switches basis", () => {
    // nobody reported latency: shared by tokens; a late event with latency switches to inference time
    const prev = allocateHour(lora, HOUR, [usage("a", 0, 100), usage("b", 0, 300)]);
    expect(prev.basis).toBe("tokens");
    const next = reallocateHour(prev, lora, [usage("a", 0, 100), usage("b", 500, 301)]);
    expect(next.basis).toBe("inferenceMs");
    const deltas = shareDeltas(prev.shares, next.shares);
    expect(deltas.find((d) => d.tenantId === "a")).toMatchObject({ nextNanoUsd: 0, deltaNanoUsd: -prev.shares[0].allocatedCostNanoUsd });
    expect(applied(prev.shares, deltas)).toEqual(new Map([["b", COST]]));
  });

  it("refuses a plan that lists a tenant twice", () => {
    const s = { tenantId: "a", weight: 1, allocatedCostNanoUsd: 0 };
    expect(() => shareDeltas([s, s], [])).toThrow(/twice/);
    expect(() => shareDeltas([], [s, { ...s, allocatedCostNanoUsd: 5 }])).toThrow(/twice/);
  });
});

describe("planReallocation", () => {
  const before = [usage("a", 1_000_000, 10), usage("b", 3_000_000, 10)];
  const prev = allocateHour(lora, HOUR, before);

  it("finds nothing to do when usage is unchanged, or changed outside the basis", () => {
    expect(planReallocation({ version: 1, plan: prev }, lora, before)).toBeUndefined();
    // late requests/tokens without latency: the inference-time split is the same
    const noBasis = [usage("a", 1_000_000, 900, 5), usage("b", 3_000_000, 10), usage("c", 0, 50)];
    expect(planReallocation({ version: 1, plan: prev }, lora, noBasis)).toBeUndefined();
  });

  it("moves to the next version with the new plan and its deltas when the basis changed", () => {
    const change = planReallocation({ version: 3, plan: prev }, lora, [usage("a", 2_000_000), usage("b", 3_000_000)]);
    expect(change).toMatchObject({ endpointName: lora.endpointName, hour: HOUR, fromVersion: 3, version: 4 });
    expect(total(change!.plan.shares)).toBe(COST);
    expect(change!.plan.usedInferenceMs).toBe(5_000_000);
    expect(change!.plan.idleCostNanoUsd).toBeLessThan(prev.idleCostNanoUsd);
    expect(change!.deltas.map((d) => d.tenantId)).toEqual(["a", "b"]);
  });

  it("keeps the stored hour cost and capacity when the catalog's rate changed since", () => {
    const repriced: FixedCostEndpoint = { ...lora, instanceCount: 3, rate: "on-demand" };
    const next = reallocateHour(prev, repriced, [usage("a", 2_000_000), usage("b", 3_000_000)]);
    expect(next.hourCostNanoUsd).toBe(COST);
    expect(next.capacityMs).toBe(prev.capacityMs);
    expect(next.instanceCount).toBe(prev.instanceCount);
    expect(total(next.shares)).toBe(COST);
  });

  it("detects each kind of split change", () => {
    const same = structuredClone(prev);
    expect(splitChanged(prev, same)).toBe(false);
    expect(splitChanged(prev, { ...same, basis: "tokens" })).toBe(true);
    expect(splitChanged(prev, { ...same, usedInferenceMs: 1 })).toBe(true);
    expect(splitChanged(prev, { ...same, idleCostNanoUsd: 1 })).toBe(true);
    expect(splitChanged(prev, { ...same, shares: same.shares.slice(1) })).toBe(true);
    expect(splitChanged(prev, { ...same, shares: [{ ...same.shares[0], weight: 7 }, same.shares[1]] })).toBe(true);
    expect(splitChanged(prev, { ...same, shares: [{ ...same.shares[0], tenantId: "z" }, same.shares[1]] })).toBe(true);
  });
});

describe("hoursEndingAt", () => {
  it("lists the window newest first across day and month ends", () => {
    expect(hoursEndingAt("2026-12-01T01", 3)).toEqual(["2026-12-01T01", "2026-12-01T00", "2026-11-30T23"]);
    expect(hoursEndingAt("2026-11-25T20", DEFAULT_REALLOCATION_LOOKBACK_HOURS)).toHaveLength(24);
    expect(() => hoursEndingAt("2026-11-25T20", 0)).toThrow(RangeError);
    expect(() => hoursEndingAt("2026-11-25", 2)).toThrow(RangeError);
  });
});
