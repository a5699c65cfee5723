import { describe, expect, it } from "vitest";
import { PUT_EVENTS_MAX_BYTES, batchEntries, entrySize, type BusEntry } from "../../../shared/dataplane/batching";

const entry = (detailBytes: number): BusEntry => ({ source: "s", detailType: "d", detail: "x".repeat(detailBytes) });

describe("batchEntries", () => {
  it("puts at most 10 entries in a batch, keeping order", () => {
    const items = Array.from({ length: 23 }, (_, i) => ({ ...entry(10), detail: String(i) }));
    const { batches, oversized } = batchEntries(items, entrySize);
    expect(batches.map((b) => b.length)).toEqual([10, 10, 3]);
    expect(batches.flat().map((e) => e.detail)).toEqual(items.map((e) => e.detail));
    expect(oversized).toEqual([]);
  });

  it("closes a batch before it would exceed 256 KiB", () => {
    const items = Array.from({ length: 5 }, () => entry(100 * 1024));
    const { batches } = batchEntries(items, entrySize);
    expect(batches.map((b) => b.length)).toEqual([2, 2, 1]);
    for (const b of batches) expect(b.reduce((s, e) => s + entrySize(e), 0)).toBeLessThanOrEqual(PUT_EVENTS_MAX_BYTES);
  });

  it("returns an entry larger than the limit on its own as oversized", () => {
    const big = entry(PUT_EVENTS_MAX_BYTES);
    const { batches, oversized } = batchEntries([entry(1), big, entry(1)], entrySize);
    expect(oversized).toEqual([big]);
    expect(batches).toHaveLength(1);
  });

  it("counts UTF-8 bytes, Time and bus name in the entry size", () => {
    expect(entrySize({ source: "é", detailType: "d", detail: "{}", eventBusName: "bus", time: new Date() })).toBe(2 + 1 + 2 + 3 + 14);
  });
});
