import { describe, expect, it } from "vitest";
import { peakConcurrency } from "../../../bench/admission";

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
