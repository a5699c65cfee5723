/**
 * Schedules of the scheduled jobs (EventBridge Scheduler expressions, UTC), as pure data: the
 * SST stack (`stacks/Jobs.ts`) creates the crons from them and the local stack (`local/jobs.ts`)
 * runs the same handlers on them, without loading aws-cdk-lib.
 */

/** Five minutes past each hour, so the previous hour's endpoint usage is complete when it is split. */
export const ALLOCATE_SCHEDULE = "cron(5 * * * ? *)";
/** 03:00 UTC on day 1 of every month: export the month that just ended. */
export const BILLING_EXPORT_SCHEDULE = "cron(0 3 1 * ? *)";
/** Bound on how long an enforcement event whose publish failed waits when its tenant is not evaluated again. */
export const OUTBOX_SWEEP_SCHEDULE = "rate(5 minutes)";

/**
 * Twenty-five past each hour: reconciles the hour that ended RECONCILE_LAG_HOURS (1) full hours
 * earlier against AWS's CloudWatch figures (Bedrock publishes its metrics within minutes; the
 * invocation logs that complete our counts arrive within the lag).
 */
export const RECONCILE_SCHEDULE = "cron(25 * * * ? *)";

/** A scheduled job as both the stack and the local stack run it. */
export interface ScheduledJobSpec {
  /** `functions/...` module and export. */
  handler: string;
  schedule: string;
  timeoutSeconds: number;
}

export const SCHEDULED_JOBS = {
  allocate: { handler: "functions/scheduled/allocate.handler", schedule: ALLOCATE_SCHEDULE, timeoutSeconds: 300 },
  "billing-export": { handler: "functions/scheduled/billing-export.handler", schedule: BILLING_EXPORT_SCHEDULE, timeoutSeconds: 900 },
  /** The sweep stops starting index pages 15 s before its timeout (see the handler). */
  "outbox-sweep": { handler: "functions/scheduled/outbox-sweep.handler", schedule: OUTBOX_SWEEP_SCHEDULE, timeoutSeconds: 120 },
  reconcile: { handler: "functions/scheduled/reconcile.handler", schedule: RECONCILE_SCHEDULE, timeoutSeconds: 300 },
} as const satisfies Record<string, ScheduledJobSpec>;
