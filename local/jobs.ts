import { randomUUID } from "node:crypto";
import type { Context, ScheduledEvent } from "aws-lambda";
import { LOCAL_ACCOUNT_ID, lambdaContext, type LambdaHandler } from "./handlers";
import { parseSchedule, type Schedule } from "./schedule";
import { SCHEDULED_JOBS } from "../shared/runtime/schedules";

/**
 * A scheduled job of the local stack: the same handler module, schedule expression and timeout
 * as the `Cron` of `stacks/Jobs.ts` (test/e2e/local-jobs-schedule.test.ts keeps them equal).
 */
export interface LocalJob {
  name: string;
  /** `functions/scheduled/allocate.handler`, or a function (tests inject their own). */
  handler: string | LambdaHandler;
  /** EventBridge schedule expression, evaluated in UTC. */
  schedule: string;
  /** The Lambda timeout: what `context.getRemainingTimeInMillis()` counts down from. */
  timeoutSeconds: number;
  /** One short line about a successful result for the console. */
  summarize?: (result: unknown) => string;
  /** A successful scheduled run whose result says "nothing happened" is not logged (keeps `npm start` readable). */
  quiet?: (result: unknown) => boolean;
}

/** The three crons of `stacks/Jobs.ts`, on the same schedules (`shared/runtime/schedules.ts`). */
export const LOCAL_JOBS: readonly LocalJob[] = [
  {
    name: "allocate",
    ...SCHEDULED_JOBS["allocate"],
    summarize: (r) => summarizeAllocation(r as Partial<AllocateResult>),
  },
  {
    name: "billing-export",
    ...SCHEDULED_JOBS["billing-export"],
    summarize: (r) => {
      const { month, lines, files = [] } = r as { month?: string; lines?: number; files?: string[] };
      return `month ${month}: ${lines} invoice line(s) -> ${files.join(", ")}`;
    },
  },
  {
    name: "outbox-sweep",
    ...SCHEDULED_JOBS["outbox-sweep"],
    summarize: (r) => {
      const { published, leaseHeld, complete } = r as { published?: number; leaseHeld?: number; complete?: boolean };
      return `published ${published} pending enforcement event(s)${leaseHeld ? `, ${leaseHeld} held by a live publisher` : ""}${complete ? "" : ", stopped at its deadline"}`;
    },
    quiet: (r) => {
      const s = r as { published?: number; leaseHeld?: number; claimLost?: number; complete?: boolean };
      return s.published === 0 && !s.leaseHeld && !s.claimLost && s.complete === true;
    },
  },
  {
    name: "reconcile",
    ...SCHEDULED_JOBS["reconcile"],
    summarize: (r) => {
      const { hour, driftPercent, unmeteredTokens, alarm, signal } = r as { hour?: string; driftPercent?: number; unmeteredTokens?: number; alarm?: boolean; signal?: string };
      return `hour ${hour}: drift ${driftPercent}%, ${unmeteredTokens} unmetered token(s)${alarm ? " ALARM" : ""} (${signal})`;
    },
  },
];

/** What `functions/scheduled/allocate.handler` returns (the fields read here). */
export interface AllocateResult {
  hour: string;
  outcomes: { endpointName: string; status: string; tenants: number }[];
  revisited: unknown[];
}

/** One line about an allocation run: the console log of the job, and the demo's report. */
export function summarizeAllocation({ hour, outcomes = [], revisited = [] }: Partial<AllocateResult>): string {
  const list = outcomes.map((o) => `${o.endpointName} ${o.status} (${o.tenants} tenant${o.tenants === 1 ? "" : "s"})`).join(", ");
  return `hour ${hour}: ${list || "no catalogued endpoints"}${revisited.length ? `; +${revisited.length} earlier endpoint-hour(s) of the lookback window allocated or re-split` : ""}`;
}

export interface JobRun {
  job: string;
  trigger: "schedule" | "manual";
  /** The event's `time`: the scheduled time (schedule) or the requested / current time (manual). */
  time: string;
  requestId: string;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  ok: boolean;
  /** What the handler returned. */
  result?: unknown;
  error?: { name: string; message: string };
}

export interface JobStatus {
  name: string;
  handler: string;
  schedule: string;
  /** When the scheduler fires it next; absent when scheduling is off. */
  nextRunAt?: string;
  running: number;
  runs: number;
  failures: number;
  lastRun?: JobRun;
  lastFailure?: JobRun;
}

export class LocalJobUnknownError extends Error {
  constructor(
    readonly job: string,
    readonly known: readonly string[],
  ) {
    super(`no local job '${job}' (jobs: ${known.join(", ")})`);
    this.name = "LocalJobUnknownError";
  }
}

export interface LocalSchedulerOptions {
  jobs: readonly LocalJob[];
  region: string;
  /** Resolves a handler spec to the function (the stack's `HandlerLoader`). */
  load: (spec: string) => Promise<LambdaHandler>;
  log: (line: string) => void;
  /** The clock (default `Date.now`); timers are the global `setTimeout`, so fake timers drive both. */
  now?: () => number;
}

/** Node's setTimeout limit (~24.8 days); longer waits (the monthly export) are re-armed. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Runs each job's handler on its schedule (after {@link start}) and on demand ({@link trigger}),
 * with a ScheduledEvent like EventBridge's and a Lambda-like context. A job's error is logged and
 * kept as its last failure; it never escapes to the stack. Like EventBridge, a tick does not wait
 * for the previous run of the same job (the handlers tolerate concurrent runs), and ticks missed
 * while the machine slept are not made up: the next one is computed from the time it wakes.
 */
export class LocalScheduler {
  private readonly state = new Map<string, JobState>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly now: () => number;
  private started = false;
  private stopped = false;

  constructor(private readonly opts: LocalSchedulerOptions) {
    this.now = opts.now ?? (() => Date.now());
    for (const job of opts.jobs) {
      if (this.state.has(job.name)) throw new Error(`duplicate local job name '${job.name}'`);
      // Parsed up front: a bad expression fails the stack's startup, not the first tick.
      this.state.set(job.name, { job, schedule: parseSchedule(job.schedule, new Date(this.now())), running: 0, runs: 0, failures: 0 });
    }
  }

  /** Arms every job's timer. Rate schedules count from now. */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    const now = new Date(this.now());
    for (const s of this.state.values()) {
      s.schedule = parseSchedule(s.job.schedule, now);
      this.arm(s, s.schedule.next(now));
    }
  }

  /** Runs a job now. `time` (ISO) is the event's time, e.g. `2026-11-25T21:05:00Z` to allocate hour 20. */
  trigger(name: string, opts: { time?: Date } = {}): Promise<JobRun> {
    const s = this.state.get(name);
    if (!s) return Promise.reject(new LocalJobUnknownError(name, this.names()));
    return this.run(s, "manual", opts.time ?? new Date(this.now()));
  }

  names(): string[] {
    return [...this.state.keys()];
  }

  status(): JobStatus[] {
    return [...this.state.values()].map((s) => ({
      name: s.job.name,
      handler: typeof s.job.handler === "string" ? s.job.handler : "(function)",
      schedule: s.job.schedule,
      nextRunAt: s.nextAt?.toISOString(),
      running: s.running,
      runs: s.runs,
      failures: s.failures,
      lastRun: s.lastRun,
      lastFailure: s.lastFailure,
    }));
  }

  get scheduling(): boolean {
    return this.started && !this.stopped;
  }

  /** Clears the timers and waits for runs in flight (so DynamoDB Local is not stopped under them). */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const s of this.state.values()) {
      if (s.timer) clearTimeout(s.timer);
      s.timer = undefined;
      s.nextAt = undefined;
    }
    await Promise.allSettled([...this.inFlight]);
  }

  private arm(s: JobState, at: Date): void {
    if (this.stopped) return;
    s.nextAt = at;
    const wait = Math.max(0, at.getTime() - this.now());
    s.timer = setTimeout(() => {
      s.timer = undefined;
      if (this.stopped) return;
      // A long wait is split: not due yet means the timer was a partial one (or fired early).
      if (this.now() < at.getTime()) return this.arm(s, at);
      // EventBridge's `time` is the scheduled time, not when the invocation started.
      void this.run(s, "schedule", at);
      this.arm(s, s.schedule.next(new Date(Math.max(at.getTime(), this.now()))));
    }, Math.min(wait, MAX_TIMER_MS));
    // The HTTP server keeps `npm start` alive; a pending timer must not keep a test process alive.
    s.timer.unref?.();
  }

  private run(s: JobState, trigger: JobRun["trigger"], time: Date): Promise<JobRun> {
    const { job } = s;
    const functionName = `local-${job.name}`;
    const event = scheduledEvent(job.name, this.opts.region, time);
    const context: Context = lambdaContext(functionName, this.opts.region, job.timeoutSeconds * 1000);
    const started = this.now();
    s.running++;
    const promise = (async (): Promise<JobRun> => {
      let outcome: Pick<JobRun, "ok" | "result" | "error">;
      try {
        const fn = typeof job.handler === "function" ? job.handler : await this.opts.load(job.handler);
        outcome = { ok: true, result: await fn(event, context) };
      } catch (error) {
        outcome = { ok: false, error: describeError(error) };
      }
      const finished = this.now();
      const record: JobRun = {
        job: job.name,
        trigger,
        time: event.time,
        requestId: context.awsRequestId,
        startedAt: new Date(started).toISOString(),
        finishedAt: new Date(finished).toISOString(),
        durationMs: finished - started,
        ...outcome,
      };
      s.running--;
      s.runs++;
      s.lastRun = record;
      if (!record.ok) {
        s.failures++;
        s.lastFailure = record;
      }
      this.report(s, record);
      return record;
    })();
    this.inFlight.add(promise);
    void promise.finally(() => this.inFlight.delete(promise));
    return promise;
  }

  private report(s: JobState, run: JobRun): void {
    const head = `[job ${run.job}] ${run.trigger === "schedule" ? "scheduled" : "triggered"} ${run.time}`;
    if (!run.ok) {
      this.opts.log(`${head} FAILED after ${run.durationMs} ms: ${run.error!.name}: ${run.error!.message} (GET /local/jobs keeps it)`);
      return;
    }
    if (run.trigger === "schedule" && s.job.quiet?.(run.result)) return;
    let summary: string;
    try {
      summary = s.job.summarize ? s.job.summarize(run.result) : JSON.stringify(run.result) ?? "no result";
    } catch {
      summary = "(result not summarizable; see GET /local/jobs)";
    }
    this.opts.log(`${head} ok in ${run.durationMs} ms: ${summary.length > 240 ? `${summary.slice(0, 237)}...` : summary}`);
  }
}

interface JobState {
  job: LocalJob;
  schedule: Schedule;
  timer?: ReturnType<typeof setTimeout>;
  nextAt?: Date;
  running: number;
  runs: number;
  failures: number;
  lastRun?: JobRun;
  lastFailure?: JobRun;
}

/** The event an EventBridge schedule rule delivers to its Lambda target. */
export function scheduledEvent(job: string, region: string, time: Date): ScheduledEvent {
  return {
    version: "0",
    id: randomUUID(),
    "detail-type": "Scheduled Event",
    source: "aws.events",
    account: LOCAL_ACCOUNT_ID,
    // second precision, as EventBridge writes it
    time: time.toISOString().replace(/\.\d{3}Z$/, "Z"),
    region,
    resources: [`arn:aws:events:${region}:${LOCAL_ACCOUNT_ID}:rule/local-${job}`],
    detail: {},
  };
}

function describeError(error: unknown): { name: string; message: string } {
  if (error instanceof Error) return { name: error.name, message: error.message };
  return { name: "Error", message: String(error) };
}
