import { describe, expect, it } from "vitest";
import { peakConcurrency } from "../../../bench/admission";
import { percentile } from "../../../bench/stats";

// The admission bench reports how many calls were in flight at once (the load it claims).
describe("peakConcurrency", () => {
  it("counts the spans open at one instant", () => {
    expect(peakConcurrency([])).toBe(0);
    expect(peakConcurrency([[0, 10], [5, 15], [12, 20]])).toBe(2);
    expect(peakConcurrency([[0, 100], [1, 2], [3, 4], [5, 99]])).toBe(2);
    expect(peakConcurrency(Array.from({ length: 1_000 }, (_, i) => [i * 5, i * 5 + 6_000] as [number, number]))).toBe(1_000);
  });

  it("an end at the same instant as a start does not overlap it", () => {
    expect(peakConcurrency([[0, 10], [10, 20], [20, 30]])).toBe(1);
  });
});

// The benches' one percentile (admission, admission-loop, enforcement): nearest rank.
describe("percentile", () => {
  it("is the nearest-rank value, the largest for p99 of fewer than 100 samples, NaN for none", () => {
    const xs = [5, 1, 4, 2, 3];
    expect(percentile(xs, 0.5)).toBe(3);
    expect(percentile(xs, 0.99)).toBe(5);
    expect(percentile(xs, 0)).toBe(1);
    expect(percentile(Array.from({ length: 1_000 }, (_, i) => i + 1), 0.99)).toBe(990);
    expect(percentile([], 0.5)).toBeNaN();
    expect(xs).toEqual([5, 1, 4, 2, 3]); // not sorted in place
  });
});
