import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { LOCAL_JOBS, LocalScheduler, type LocalJob } from "../../local/jobs";
import { parseSchedule, ScheduleExpressionInvalidError } from "../../local/schedule";
import { ALLOCATE_HANDLER, ALLOCATE_SCHEDULE, BILLING_EXPORT_HANDLER, BILLING_EXPORT_SCHEDULE, OUTBOX_SWEEP_HANDLER, OUTBOX_SWEEP_SCHEDULE, RECONCILE_HANDLER, RECONCILE_SCHEDULE } from "../../stacks/Jobs";

const at = (iso: string) => new Date(iso);
const nextOf = (expr: string, after: string, anchor?: string) => parseSchedule(expr, anchor ? at(anchor) : undefined).next(at(after)).toISOString();

describe("schedule expressions (local/schedule.ts)", () => {
  it("the local jobs are the crons of stacks/Jobs.ts: same handlers, same schedules", () => {
    expect(LOCAL_JOBS.map((j) => [j.name, j.handler, j.schedule])).toEqual([
      ["allocate", ALLOCATE_HANDLER, ALLOCATE_SCHEDULE],
      ["billing-export", BILLING_EXPORT_HANDLER, BILLING_EXPORT_SCHEDULE],
      ["outbox-sweep", OUTBOX_SWEEP_HANDLER, OUTBOX_SWEEP_SCHEDULE],
      ["reconcile", RECONCILE_HANDLER, RECONCILE_SCHEDULE],
    ]);
  });

  it("hourly at :05 (allocate): the next :05 strictly after, across hour, day, month and year ends", () => {
    expect(nextOf(ALLOCATE_SCHEDULE, "2026-11-25T12:04:59.999Z")).toBe("2026-11-25T12:05:00.000Z");
    expect(nextOf(ALLOCATE_SCHEDULE, "2026-11-25T12:05:00.000Z")).toBe("2026-11-25T13:05:00.000Z");
    expect(nextOf(ALLOCATE_SCHEDULE, "2026-11-25T12:05:00.001Z")).toBe("2026-11-25T13:05:00.000Z");
    expect(nextOf(ALLOCATE_SCHEDULE, "2026-11-30T23:30:00Z")).toBe("2026-12-01T00:05:00.000Z");
    expect(nextOf(ALLOCATE_SCHEDULE, "2026-12-31T23:05:00Z")).toBe("2027-01-01T00:05:00.000Z");
  });

  it("monthly on day 1 at 03:00 (billing export), including a leap February", () => {
    expect(nextOf(BILLING_EXPORT_SCHEDULE, "2026-11-25T12:00:00Z")).toBe("2026-12-01T03:00:00.000Z");
    expect(nextOf(BILLING_EXPORT_SCHEDULE, "2026-12-01T02:59:00Z")).toBe("2026-12-01T03:00:00.000Z");
    expect(nextOf(BILLING_EXPORT_SCHEDULE, "2026-12-01T03:00:00Z")).toBe("2027-01-01T03:00:00.000Z");
    expect(nextOf(BILLING_EXPORT_SCHEDULE, "2028-02-29T03:00:00Z")).toBe("2028-03-01T03:00:00.000Z");
  });

  it("rate(5 minutes) counts from its anchor, not from the wall-clock grid", () => {
    const anchor = "2026-11-25T12:03:17Z";
    expect(nextOf(OUTBOX_SWEEP_SCHEDULE, "2026-11-25T12:03:17Z", anchor)).toBe("2026-11-25T12:08:17.000Z");
    expect(nextOf(OUTBOX_SWEEP_SCHEDULE, "2026-11-25T12:08:17Z", anchor)).toBe("2026-11-25T12:13:17.000Z");
    expect(nextOf(OUTBOX_SWEEP_SCHEDULE, "2026-11-25T13:00:00Z", anchor)).toBe("2026-11-25T13:03:17.000Z");
    expect(nextOf("rate(1 day)", "2026-11-25T00:00:00Z", "2026-11-24T06:00:00Z")).toBe("2026-11-25T06:00:00.000Z");
  });

  it("lists, ranges, steps, names and day-of-week (1 = Sunday)", () => {
    expect(nextOf("cron(0/15 * * * ? *)", "2026-11-25T12:31:00Z")).toBe("2026-11-25T12:45:00.000Z");
    expect(nextOf("cron(0 8-10,17 * * ? *)", "2026-11-25T10:00:00Z")).toBe("2026-11-25T17:00:00.000Z");
    // 2026-11-25 is a Wednesday; the next Monday (2) is the 30th
    expect(nextOf("cron(0 9 ? * 2 *)", "2026-11-25T12:00:00Z")).toBe("2026-11-30T09:00:00.000Z");
    expect(nextOf("cron(0 9 ? * MON-FRI *)", "2026-11-27T10:00:00Z")).toBe("2026-11-30T09:00:00.000Z");
    expect(nextOf("cron(0 0 31 * ? *)", "2026-11-01T00:00:00Z")).toBe("2026-12-31T00:00:00.000Z");
    expect(nextOf("cron(0 0 1 JAN ? 2027)", "2026-11-25T00:00:00Z")).toBe("2027-01-01T00:00:00.000Z");
  });

  it("refuses what EventBridge refuses or what is not supported locally", () => {
    for (const bad of [
      "cron(5 * * * * *)", // both day fields set
      "cron(5 * * * ?)", // five fields
      "cron(5 * L * ? *)",
      "cron(60 * * * ? *)",
      "rate(1 minutes)",
      "rate(5 minute)",
      "rate(0 minutes)",
      "rate(5 weeks)",
      "every 5 minutes",
    ]) {
      expect(() => parseSchedule(bad), bad).toThrow(ScheduleExpressionInvalidError);
    }
    expect(() => parseSchedule("cron(0 0 1 1 ? 2020)").next(at("2026-01-01T00:00:00Z"))).toThrow(ScheduleExpressionInvalidError);
  });
});

describe("LocalScheduler timers (fake clock, no real waiting)", () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: at("2026-11-25T12:03:00Z") });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  function recordingJobs(fail?: string) {
    const calls: { job: string; time: string; source: string; detailType: string; remainingMs: number }[] = [];
    const jobs: LocalJob[] = LOCAL_JOBS.map((j) => ({
      ...j,
      handler: async (event: { time: string; source: string; "detail-type": string }, context: { getRemainingTimeInMillis(): number }) => {
        calls.push({ job: j.name, time: event.time, source: event.source, detailType: event["detail-type"], remainingMs: context.getRemainingTimeInMillis() });
        if (j.name === fail) throw new Error(`${j.name} broke`);
        return { ran: j.name };
      },
    }));
    return { calls, jobs };
  }

  it("fires each job at its schedule with the scheduled time as the event time, and arms the next run", async () => {
    // prepare
    const { calls, jobs } = recordingJobs();
    const logs: string[] = [];
    const scheduler = new LocalScheduler({ jobs, region: "us-west-2", load: () => Promise.reject(new Error("not used")), log: (l) => logs.push(l) });
    scheduler.start();
    expect(Object.fromEntries(scheduler.status().map((s) => [s.name, s.nextRunAt]))).toEqual({
      allocate: "2026-11-25T12:05:00.000Z",
      "billing-export": "2026-12-01T03:00:00.000Z",
      "outbox-sweep": "2026-11-25T12:08:00.000Z",
      reconcile: "2026-11-25T12:25:00.000Z",
    });

    // act: one hour and five minutes of fake time
    await vi.advanceTimersByTimeAsync(65 * 60_000);

    // assess
    const allocate = calls.filter((c) => c.job === "allocate");
    expect(allocate.map((c) => c.time)).toEqual(["2026-11-25T12:05:00Z", "2026-11-25T13:05:00Z"]);
    expect(allocate[0]).toMatchObject({ source: "aws.events", detailType: "Scheduled Event", remainingMs: 300_000 });
    const sweeps = calls.filter((c) => c.job === "outbox-sweep").map((c) => c.time);
    expect(sweeps).toHaveLength(13);
    expect(sweeps[0]).toBe("2026-11-25T12:08:00Z");
    expect(sweeps[12]).toBe("2026-11-25T13:08:00Z");
    expect(calls.some((c) => c.job === "billing-export")).toBe(false);
    expect(calls.filter((c) => c.job === "reconcile").map((c) => c.time)).toEqual(["2026-11-25T12:25:00Z"]);
    const status = Object.fromEntries(scheduler.status().map((s) => [s.name, s]));
    expect(status.allocate).toMatchObject({ runs: 2, failures: 0, nextRunAt: "2026-11-25T14:05:00.000Z", lastRun: { ok: true, trigger: "schedule", result: { ran: "allocate" } } });
    expect(status["outbox-sweep"].nextRunAt).toBe("2026-11-25T13:13:00.000Z");
    await scheduler.stop();
  });

  it("waits out the monthly export's long wait (beyond one setTimeout) and fires on the 1st at 03:00", async () => {
    const { calls, jobs } = recordingJobs();
    const scheduler = new LocalScheduler({ jobs: jobs.filter((j) => j.name === "billing-export"), region: "us-west-2", load: () => Promise.reject(new Error("not used")), log: () => {} });
    vi.setSystemTime(at("2026-12-01T03:00:00Z"));
    scheduler.start();
    expect(scheduler.status()[0].nextRunAt).toBe("2027-01-01T03:00:00.000Z");

    await vi.advanceTimersByTimeAsync(31 * 24 * 3_600_000 - 1);
    expect(calls).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls.map((c) => c.time)).toEqual(["2027-01-01T03:00:00Z"]);
    expect(scheduler.status()[0].nextRunAt).toBe("2027-02-01T03:00:00.000Z");
    await scheduler.stop();
  });

  it("keeps a failing job's error, logs it, and still fires its next run; stop() clears the timers", async () => {
    const { calls, jobs } = recordingJobs("allocate");
    const logs: string[] = [];
    const scheduler = new LocalScheduler({ jobs, region: "us-west-2", load: () => Promise.reject(new Error("not used")), log: (l) => logs.push(l) });
    scheduler.start();

    await vi.advanceTimersByTimeAsync(2 * 60_000);
    const afterFirst = scheduler.status().find((s) => s.name === "allocate")!;
    expect(afterFirst).toMatchObject({ runs: 1, failures: 1, lastFailure: { ok: false, error: { name: "Error", message: "allocate broke" } } });
    expect(logs.some((l) => l.startsWith("[job allocate] scheduled 2026-11-25T12:05:00Z FAILED") && l.includes("allocate broke"))).toBe(true);

    await vi.advanceTimersByTimeAsync(60 * 60_000);
    expect(calls.filter((c) => c.job === "allocate").map((c) => c.time)).toEqual(["2026-11-25T12:05:00Z", "2026-11-25T13:05:00Z"]);

    await scheduler.stop();
    const before = calls.length;
    await vi.advanceTimersByTimeAsync(3 * 3_600_000);
    expect(calls).toHaveLength(before);
    expect(scheduler.status().every((s) => s.nextRunAt === undefined)).toBe(true);
  });

  it("does not make up ticks missed while the machine slept: the next run is computed from when it wakes", async () => {
    const { calls, jobs } = recordingJobs();
    const scheduler = new LocalScheduler({ jobs: jobs.filter((j) => j.name === "allocate"), region: "us-west-2", load: () => Promise.reject(new Error("not used")), log: () => {} });
    scheduler.start();
    // the clock jumps 3 hours without the timer firing (suspend), then the timer fires late once
    vi.setSystemTime(at("2026-11-25T15:20:00Z"));
    await vi.advanceTimersByTimeAsync(2 * 60_000);
    expect(calls.map((c) => c.time)).toEqual(["2026-11-25T12:05:00Z"]);
    expect(scheduler.status()[0].nextRunAt).toBe("2026-11-25T16:05:00.000Z");
    await scheduler.stop();
  });

  it("a quiet sweep (nothing pending) is not logged; one that published is", async () => {
    const logs: string[] = [];
    let published = 0;
    const sweep = LOCAL_JOBS.find((j) => j.name === "outbox-sweep")!;
    const scheduler = new LocalScheduler({
      jobs: [{ ...sweep, handler: async () => ({ published, failed: 0, leaseHeld: 0, claimLost: 0, complete: true }) }],
      region: "us-west-2",
      load: () => Promise.reject(new Error("not used")),
      log: (l) => logs.push(l),
    });
    scheduler.start();
    await vi.advanceTimersByTimeAsync(5 * 60_000);
    expect(logs).toEqual([]);
    published = 2;
    await vi.advanceTimersByTimeAsync(5 * 60_000);
    expect(logs).toEqual(["[job outbox-sweep] scheduled 2026-11-25T12:13:00Z ok in 0 ms: published 2 pending enforcement event(s)"]);
    await scheduler.stop();
  });
});
