import type { Context, S3Event, ScheduledEvent } from "aws-lambda";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, inject, it, vi } from "vitest";
import { createInvocationLogHandler } from "../../functions/s3/invocation-log";
import { InvocationLogSource } from "../../shared/invocation-log/source";
import { trustMap } from "../../shared/invocation-log/tenant-binding";
import { JOB_METRICS } from "../../shared/observability/metric-names";
import { resetConfig } from "../../shared/runtime/config";
import { freshUsageTable } from "../helpers/dynamo";

/**
 * The handlers are wrapped as Powertools means them to be: `injectLambdaContext` puts the
 * invocation's context on every log line, `logMetrics` publishes the stored metrics as one EMF
 * document after each invocation, also when the handler throws (nothing is flushed by hand).
 */
const context = (functionName: string) => ({ functionName, awsRequestId: `req-${functionName}`, getRemainingTimeInMillis: () => 60_000 }) as unknown as Context;

/** What the invocation wrote on stdout, as parsed JSON lines. */
async function captureStdout<T>(run: () => Promise<T>): Promise<{ result?: T; error?: unknown; lines: Record<string, unknown>[] }> {
  const chunks: string[] = [];
  const write = vi.spyOn(process.stdout, "write").mockImplementation((c: string | Uint8Array) => (chunks.push(String(c)), true));
  const log = vi.spyOn(console, "log").mockImplementation((...a: unknown[]) => void chunks.push(a.map(String).join(" ")));
  try {
    return { result: await run(), lines: parse(chunks) };
  } catch (error) {
    return { error, lines: parse(chunks) };
  } finally {
    write.mockRestore();
    log.mockRestore();
  }
}

function parse(chunks: string[]): Record<string, unknown>[] {
  return chunks
    .join("")
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

const emf = (lines: Record<string, unknown>[]) => lines.filter((l) => "_aws" in l);

afterEach(() => {
  vi.unstubAllEnvs();
  resetConfig();
});

describe("Powertools middlewares of the scheduled and S3 handlers", () => {
  it("billing-export: the log line carries the Lambda context and the run's metric is published after it", async () => {
    vi.stubEnv("USAGE_TABLE_NAME", await freshUsageTable());
    vi.stubEnv("AWS_ENDPOINT_URL_DYNAMODB", inject("dynamoEndpoint"));
    vi.stubEnv("BILLING_EXPORT_DIR", await mkdtemp(join(tmpdir(), "billing-obs-")));
    resetConfig();
    const { handler } = await import("../../functions/scheduled/billing-export");

    const { result, lines } = await captureStdout(() => handler({ time: "2026-12-01T03:00:00Z" } as ScheduledEvent, context("billing-export-fn")));

    expect(result).toMatchObject({ month: "2026-11", lines: 0 });
    expect(lines.find((l) => l.message === "billing export written")).toMatchObject({ function_name: "billing-export-fn", function_request_id: "req-billing-export-fn" });
    expect(emf(lines)).toEqual([expect.objectContaining({ [JOB_METRICS.invoiceLinesExported]: 0 })]);
  });

  it("invocation-log: metrics are published even when the object cannot be read (the error still reaches Lambda)", async () => {
    const source = new InvocationLogSource({
      reader: { read: async (_bucket, key) => (key === "ok.json" ? new TextEncoder().encode("") : Promise.reject(new Error(`NoSuchKey ${key}`))) },
      sink: { emit: () => true, flush: async () => undefined, stats: { failed: 0, dropped: 0, invalid: 0 } },
      rejected: { keep: async () => undefined },
      parse: { binding: trustMap({ "*": ["*"] }) },
    });
    const handler = createInvocationLogHandler(() => source);
    const event = { Records: ["ok.json", "missing.json"].map((key) => ({ s3: { bucket: { name: "logs" }, object: { key } } })) } as unknown as S3Event;

    const { error, lines } = await captureStdout(() => handler(event, context("invocation-log-fn")));

    expect(String(error)).toContain("NoSuchKey missing.json");
    expect(emf(lines)).toEqual([expect.objectContaining({ [JOB_METRICS.invocationLogRecords]: 0, [JOB_METRICS.invocationLogRejected]: 0 })]);
  });
});
