import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JobRun, JobStatus } from "../../local/jobs";
import type { LocalStack } from "../../local/stack";
import { startTestStack } from "./stack-harness";

// Its own file: the billing-export handler reads BILLING_EXPORT_DIR once, at import, per process.
let stack: LocalStack;
let logs: string[];
let scratch: string;

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), "local-jobs-failure-"));
  // the export "directory" is a regular file: the real handler's mkdir fails
  const notADirectory = join(scratch, "not-a-directory");
  writeFileSync(notADirectory, "x");
  ({ stack, logs } = await startTestStack({ billingExportDir: notADirectory, scheduleJobs: true }));
});

afterAll(async () => {
  await stack?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

describe("a real job failing inside the local stack", () => {
  it("is answered with its error and kept; the stack, its schedule and the other jobs carry on", async () => {
    // act
    const res = await fetch(`${stack.url}/local/jobs/billing-export?time=2026-12-01T03:00:00Z`, { method: "POST" });

    // assess
    expect(res.status).toBe(500);
    const run = (await res.json()) as JobRun;
    expect(run).toMatchObject({ job: "billing-export", ok: false, time: "2026-12-01T03:00:00Z" });
    expect(run.error!.message).toMatch(/ENOTDIR|EEXIST|not a directory/i);
    expect(logs.some((l) => l.startsWith("[job billing-export] triggered 2026-12-01T03:00:00Z FAILED"))).toBe(true);

    const status = (await (await fetch(`${stack.url}/local/jobs`)).json()) as { scheduling: boolean; jobs: JobStatus[] };
    expect(status.scheduling).toBe(true);
    const byName = Object.fromEntries(status.jobs.map((j) => [j.name, j]));
    expect(byName["billing-export"]).toMatchObject({ runs: 1, failures: 1, lastFailure: { requestId: run.requestId } });
    // still scheduled: the next day 1, 03:00 UTC
    expect(byName["billing-export"].nextRunAt).toMatch(/^\d{4}-\d{2}-01T03:00:00\.000Z$/);
    expect(Date.parse(byName["billing-export"].nextRunAt!)).toBeGreaterThan(Date.now());
    expect(byName.allocate.nextRunAt).toMatch(/T\d{2}:05:00\.000Z$/);

    expect((await fetch(`${stack.url}/local/health`)).status).toBe(200);
    const sweep = await fetch(`${stack.url}/local/jobs/outbox-sweep`, { method: "POST" });
    expect(sweep.status).toBe(200);
    expect(((await sweep.json()) as JobRun).result).toMatchObject({ failed: 0, complete: true });
  });
});
