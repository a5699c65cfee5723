import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { mockClient } from "aws-sdk-client-mock";
import { describe, expect, it } from "vitest";
import { S3ExportSink } from "../../../shared/billing/adapters/s3";
import type { BillingSource } from "../../../shared/billing/ports";
import { BillingExportService } from "../../../shared/billing/service";

const source: BillingSource = {
  async *monthAggregates() {
    yield { tenantId: "acme", requests: 1, inputTokens: 2, outputTokens: 3, costNanoUsd: 4, allocatedCostNanoUsd: 5, unpricedRequests: 0 };
  },
  async tiers() {
    return new Map([["acme", "basic"]]);
  },
};

describe("S3 export sink", () => {
  it("puts both files under deterministic keys with their content types", async () => {
    const s3 = mockClient(S3Client);
    s3.on(PutObjectCommand).resolves({});
    const client = new S3Client({ region: "us-west-2" });
    const result = await new BillingExportService(source, new S3ExportSink(client, "exports-bucket")).export("2026-11");

    const calls = s3.commandCalls(PutObjectCommand).map((c) => c.args[0].input);
    expect(calls.map((c) => [c.Bucket, c.Key, c.ContentType])).toEqual([
      ["exports-bucket", "billing/2026-11/invoice-lines.jsonl", "application/x-ndjson"],
      ["exports-bucket", "billing/2026-11/invoice-lines.csv", "text/csv; charset=utf-8"],
    ]);
    expect(JSON.parse(String(calls[0].Body))).toMatchObject({ tenantId: "acme", totalCostNanoUsd: 9 });
    expect(result.files).toEqual(["s3://exports-bucket/billing/2026-11/invoice-lines.jsonl", "s3://exports-bucket/billing/2026-11/invoice-lines.csv"]);
    s3.restore();
  });

  it("propagates a failed put (the scheduler retries; the rerun is idempotent)", async () => {
    const s3 = mockClient(S3Client);
    s3.on(PutObjectCommand).rejects(new Error("AccessDenied"));
    await expect(new BillingExportService(source, new S3ExportSink(new S3Client({ region: "us-west-2" }), "b")).export("2026-11")).rejects.toThrow("AccessDenied");
    s3.restore();
  });

  it("refuses keys that would leave the export prefix", () => {
    const sink = new S3ExportSink(new S3Client({ region: "us-west-2" }), "b", "exports/");
    expect(sink.locate("billing/2026-11/x.csv")).toBe("s3://b/exports/billing/2026-11/x.csv");
    expect(() => sink.locate("../x")).toThrow(RangeError);
  });
});
