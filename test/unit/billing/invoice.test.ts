import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { LocalDirectorySink } from "../../../shared/billing/adapters/local-dir";
import { BillingExportInvalidError } from "../../../shared/billing/errors";
import {
  INVOICE_COLUMNS,
  buildInvoiceLines,
  csvField,
  formatNanoUsd,
  parseCsv,
  toCsv,
  toJsonLines,
  type MonthAggregate,
} from "../../../shared/billing/invoice";
import type { BillingSource, ExportSink } from "../../../shared/billing/ports";
import { BillingExportService, exportPaths, previousMonth } from "../../../shared/billing/service";
import { TIER_PRICES_USD, normaliseTier } from "../../../shared/billing/tiers";

const agg = (tenantId: string, costNanoUsd: number, allocatedCostNanoUsd = 0): MonthAggregate => ({
  tenantId,
  requests: 10,
  inputTokens: 3070,
  outputTokens: 5330,
  costNanoUsd,
  allocatedCostNanoUsd,
  unpricedRequests: 0,
});

class MemorySource implements BillingSource {
  constructor(
    private readonly rows: MonthAggregate[],
    private readonly tierMap: Map<string, unknown>,
  ) {}
  async *monthAggregates() {
    yield* this.rows;
  }
  async tiers() {
    return this.tierMap;
  }
}
class MemorySink implements ExportSink {
  files = new Map<string, string>();
  async put(path: string, body: string) {
    this.files.set(path, body);
  }
  locate(path: string) {
    return `mem://${path}`;
  }
}

describe("invoice lines", () => {
  it("adds API and allocated cost, takes revenue from the tier price, and computes margin", () => {
    const [line] = buildInvoiceLines("2026-11", [agg("acme", 74_300_000_000, 38_890_000_000)], new Map([["acme", "Advanced"]]));
    expect(line).toMatchObject({
      tier: "advanced",
      apiCostNanoUsd: 74_300_000_000,
      allocatedCostNanoUsd: 38_890_000_000,
      totalCostNanoUsd: 113_190_000_000,
      subscriptionNanoUsd: TIER_PRICES_USD.advanced * 1e9,
      revenueNanoUsd: 499_000_000_000,
      marginNanoUsd: 499_000_000_000 - 113_190_000_000,
      totalCostUsd: "113.190000000",
      marginUsd: "385.810000000",
    });
  });

  it("marks tenants without a (known) tier as unknown with no subscription revenue", () => {
    const lines = buildInvoiceLines("2026-11", [agg("b", 5), agg("a", 7)], new Map([["b", "platinum"]]));
    expect(lines.map((l) => [l.tenantId, l.tier, l.revenueNanoUsd, l.marginNanoUsd])).toEqual([
      ["a", "unknown", 0, -7],
      ["b", "unknown", 0, -5],
    ]);
    expect(normaliseTier(" Basic ")).toBe("basic");
    expect(normaliseTier(undefined)).toBe("unknown");
  });

  it("formats nano-USD exactly, negatives included", () => {
    expect(formatNanoUsd(1_234_567_891)).toBe("1.234567891");
    expect(formatNanoUsd(-5)).toBe("-0.000000005");
    expect(formatNanoUsd(0)).toBe("0.000000000");
    expect(formatNanoUsd(Number.MAX_SAFE_INTEGER)).toBe("9007199.254740991");
  });

  it("escapes CSV fields per RFC 4180 and parses them back", () => {
    expect(csvField("plain")).toBe("plain");
    expect(csvField('say "hi", then')).toBe('"say ""hi"", then"');
    expect(csvField("two\nlines")).toBe('"two\nlines"');
    const rows = parseCsv(["a", csvField('x,"y"'), csvField("l1\r\nl2")].join(",") + "\r\n1,2,3\r\n");
    expect(rows).toEqual([
      ["a", 'x,"y"', "l1\r\nl2"],
      ["1", "2", "3"],
    ]);
  });

  it("writes JSON lines and CSV holding the same lines", () => {
    const lines = buildInvoiceLines("2026-11", [agg("t1", 1), agg("t2", 2, 3)], new Map([["t1", "basic"]]));
    const fromJson = toJsonLines(lines).trimEnd().split("\n").map((l) => JSON.parse(l));
    const [header, ...rows] = parseCsv(toCsv(lines));
    expect(header).toEqual([...INVOICE_COLUMNS]);
    expect(rows.map((r) => Object.fromEntries(header.map((h, i) => [h, r[i]])))).toEqual(
      fromJson.map((o) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, String(v)]))),
    );
    expect(toJsonLines([])).toBe("");
  });
});

describe("billing export service", () => {
  it("writes both files under deterministic names, with the same bytes on a rerun", async () => {
    const rows = [agg("zeta", 10, 20), agg("alpha", 30, 40)];
    const sink = new MemorySink();
    const service = new BillingExportService(new MemorySource(rows, new Map([["alpha", "premium"]])), sink);
    const r1 = await service.export("2026-11");
    const first = new Map(sink.files);
    expect([...first.keys()]).toEqual([exportPaths("2026-11").jsonl, exportPaths("2026-11").csv]);
    expect(r1.lines.map((l) => l.tenantId)).toEqual(["alpha", "zeta"]);
    expect(r1.totals).toMatchObject({ revenueNanoUsd: 2_499e9, totalCostNanoUsd: 100, marginNanoUsd: 2_499e9 - 100 });

    // same data in another order: same content
    const again = new MemorySink();
    await new BillingExportService(new MemorySource([...rows].reverse(), new Map([["alpha", "premium"]])), again).export("2026-11");
    expect(again.files).toEqual(first);
  });

  it("refuses a malformed month", async () => {
    const service = new BillingExportService(new MemorySource([], new Map()), new MemorySink());
    await expect(service.export("2026-13")).rejects.toBeInstanceOf(BillingExportInvalidError);
    await expect(service.export("../etc")).rejects.toBeInstanceOf(BillingExportInvalidError);
  });

  it("writes through the local-directory sink and keeps paths inside it", async () => {
    const dir = await mkdtemp(join(tmpdir(), "billing-"));
    const sink = new LocalDirectorySink(dir);
    await new BillingExportService(new MemorySource([agg("t", 1)], new Map()), sink).export("2026-10");
    expect(await readFile(join(dir, "billing/2026-10/invoice-lines.csv"), "utf8")).toMatch(/^month,tenantId,tier,/);
    expect(() => sink.locate("../outside")).toThrow(RangeError);
  });

  it("names the previous month in UTC", () => {
    expect(previousMonth(new Date("2026-12-01T00:10:00Z"))).toBe("2026-11");
    expect(previousMonth(new Date("2027-01-01T02:00:00Z"))).toBe("2026-12");
  });
});
