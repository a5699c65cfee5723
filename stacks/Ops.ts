import { Duration } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import { SnsAction } from "aws-cdk-lib/aws-cloudwatch-actions";
import type * as sqs from "aws-cdk-lib/aws-sqs";
import { use, type StackContext } from "sst/constructs";
import { ADMISSION_METRICS, COST_METRICS, DIMENSIONS, PIPELINE_METRICS } from "../shared/observability/metric-names";
import { Alerts } from "./Alerts";
import { Enforcement } from "./Enforcement";
import { Ingest } from "./Ingest";
import { InvocationLogs } from "./InvocationLogs";
import { Jobs } from "./Jobs";
import { METRICS_NAMESPACE, SERVICE_NAME } from "./support";

/** Alarm thresholds. Named here so the README and the tests quote one value. */
export const THRESHOLDS = {
  /** Oldest ingest message older than this: consumers are not keeping up (or are failing). */
  ingestQueueAgeSeconds: 300,
  /** p99 of occurredAt -> aggregated above this for three 5-minute periods. */
  ingestLagP99Ms: 300_000,
} as const;

/**
 * CloudWatch alarms (-> ops topic) and the pipeline dashboard. Last in the stack order because it
 * watches resources of every other stack; the metric names come from
 * shared/observability/metric-names.ts, the list the handlers emit from.
 */
export function Ops({ stack, app }: StackContext) {
  const { topic } = use(Alerts);
  const { consumers, ingest } = use(Ingest);
  const enforcement = use(Enforcement);
  const { jobs, failures: jobsFailures, driftThreshold } = use(Jobs);
  const invocationLogs = use(InvocationLogs);
  const action = new SnsAction(topic);

  const alarm = (id: string, props: cloudwatch.CreateAlarmOptions & { metric: cloudwatch.IMetric }) => {
    const created = new cloudwatch.Alarm(stack, id, {
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      ...props,
      alarmName: app.logicalPrefixedName(id),
    });
    created.addAlarmAction(action);
    return created;
  };

  const dlqs: { name: string; queue: sqs.IQueue }[] = [
    ...consumers.map((c) => ({ name: `${c.rule.name}-dlq`, queue: c.dlq })),
    ...enforcement.dlqs,
    // S3 events the invocation-log function failed on after its async retries: those log
    // objects are not on the bus yet (a redrive re-reads them; same ids, counted once).
    { name: "invocation-log-dlq", queue: invocationLogs.failures },
    { name: "jobs-dlq", queue: jobsFailures },
  ];
  const dlqDepth = (queue: sqs.IQueue, name: string) =>
    queue.metricApproximateNumberOfMessagesVisible({ statistic: "Maximum", period: Duration.minutes(1), label: name });

  for (const { name, queue } of dlqs) {
    alarm(`DlqDepth-${name}`, {
      alarmDescription: `Messages in ${name}: events that failed every retry and were not counted or delivered. Inspect and redrive.`,
      metric: dlqDepth(queue, name),
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
    });
  }

  alarm("IngestErrors", {
    alarmDescription: "The ingest consumer threw (whole batch retried), not a per-record failure.",
    metric: ingest.fn.metricErrors({ statistic: "Sum", period: Duration.minutes(5) }),
    threshold: 0,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
    evaluationPeriods: 1,
  });

  alarm("InvocationLogErrors", {
    alarmDescription:
      "The invocation-log function threw on an S3 event (Lambda retries it, then parks it in invocation-log-dlq): Bedrock invocation-log usage is late or missing.",
    metric: invocationLogs.fn.metricErrors({ statistic: "Sum", period: Duration.minutes(5) }),
    threshold: 0,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
    evaluationPeriods: 1,
  });

  alarm("IngestQueueAge", {
    alarmDescription: `Oldest ingest message older than ${THRESHOLDS.ingestQueueAgeSeconds}s: usage is being counted late.`,
    metric: ingest.queue.metricApproximateAgeOfOldestMessage({ statistic: "Maximum", period: Duration.minutes(1) }),
    threshold: THRESHOLDS.ingestQueueAgeSeconds,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
    evaluationPeriods: 5,
    datapointsToAlarm: 3,
  });

  alarm("IngestLagP99", {
    alarmDescription: `p99 of occurredAt -> aggregated above ${THRESHOLDS.ingestLagP99Ms} ms.`,
    metric: pipelineMetric(PIPELINE_METRICS.ingestLag, "p99", Duration.minutes(5)),
    threshold: THRESHOLDS.ingestLagP99Ms,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
    evaluationPeriods: 3,
  });

  alarm("QuotaBreaches", {
    alarmDescription: "A tenant crossed 100% of a quota; enforcement events were published.",
    metric: pipelineMetric(PIPELINE_METRICS.quotaBreaches, "Sum", Duration.minutes(5)),
    threshold: 0,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
    evaluationPeriods: 1,
  });

  // Reconciliation (shared/reconciliation): our counts and AWS's own CloudWatch figures differ by more than the threshold
  alarm("ReconciliationDrift", {
    alarmDescription: `Metered usage and AWS's own CloudWatch figures (AWS/Bedrock, AWS/SageMaker) differ by more than ${driftThreshold}% in an hour: usage that bypassed the wrappers (unmetered) or counted beyond AWS's figures. See the hour's report under reconciliation/ in the billing-exports bucket.`,
    metric: pipelineMetric("DriftPercent", "Maximum", Duration.hours(1)),
    threshold: driftThreshold,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
    evaluationPeriods: 1,
  });

  jobs.forEach(({ name, fn, failureImpact }) =>
    alarm(`JobErrors-${name}`, {
      alarmDescription: `The scheduled job ${name} failed: ${failureImpact}`,
      metric: fn.metricErrors({ statistic: "Sum", period: Duration.minutes(5) }),
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
    }),
  );

  const fiveMin = Duration.minutes(5);
  const dashboard = new cloudwatch.Dashboard(stack, "Dashboard", {
    dashboardName: app.logicalPrefixedName("pipeline"),
    defaultInterval: Duration.days(1),
  });
  dashboard.addWidgets(
    graph("Events ingested", [pipelineMetric(PIPELINE_METRICS.eventsIngested, "Sum", fiveMin)]),
    graph("Duplicates", [pipelineMetric(PIPELINE_METRICS.duplicates, "Sum", fiveMin)]),
    graph("Quarantined", [pipelineMetric(PIPELINE_METRICS.quarantined, "Sum", fiveMin)]),
  );
  dashboard.addWidgets(
    graph("Ingest lag (ms)", [
      pipelineMetric(PIPELINE_METRICS.ingestLag, "p50", fiveMin),
      pipelineMetric(PIPELINE_METRICS.ingestLag, "p99", fiveMin),
    ]),
    graph("DLQ depth", dlqs.map(({ name, queue }) => dlqDepth(queue, name))),
    graph("Enforcement events", [pipelineMetric(PIPELINE_METRICS.enforcementEvents, "Sum", fiveMin)]),
  );
  dashboard.addWidgets(
    graph(
      "Cost per tier (USD)",
      [
        // Metrics Insights groups over every dimension set the emitter uses (tenant, tier, model),
        // so the widget does not depend on one exact dimension combination.
        new cloudwatch.MathExpression({
          expression: `SELECT SUM(${COST_METRICS.costUsd}) FROM ${METRICS_NAMESPACE} WHERE ${DIMENSIONS.service} = '${SERVICE_NAME}' GROUP BY ${DIMENSIONS.tier}`,
          period: Duration.hours(1),
          label: "Cost per tier",
        }),
      ],
      24,
    ),
  );

  // Admission before the call (shared/admission): counted by the data plane's own processes.
  dashboard.addWidgets(
    ...ADMISSION_PANELS.map((p) =>
      // A grouped query draws a line per group, named by its dimension values (no label of ours over them).
      graph(p.title, [new cloudwatch.MathExpression({ expression: p.expression, period: fiveMin, label: p.groupBy.length ? "" : p.label })], 8),
    ),
  );

  return { dashboard };
}

/**
 * The admission panels of the dashboard (three to a row): refusals by tier and reason, downgrades
 * by tier, the budget writes (leases or hard grants taken, and given back), and the calls account
 * quota pools shed, by tier and pool. Metrics Insights over the whole namespace, not filtered on
 * `service`: the data plane's processes emit these with their own service name
 * (shared/admission/adapters/metrics.ts, Powertools adds `service` to every document), so only the
 * namespace and the grouped dimensions have to match what they emit.
 */
export const ADMISSION_PANELS: readonly { title: string; label: string; metric: string; groupBy: readonly string[]; expression: string }[] = [
  { title: "Admission refusals (per 5 min)", label: "refused", metric: ADMISSION_METRICS.refused, groupBy: [DIMENSIONS.tier, DIMENSIONS.reason] },
  { title: "Admission downgrades (per 5 min)", label: "downgraded", metric: ADMISSION_METRICS.downgraded, groupBy: [DIMENSIONS.tier] },
  { title: "Admission budget leases taken (writes, per 5 min)", label: "taken", metric: ADMISSION_METRICS.leaseTaken, groupBy: [] },
  { title: "Admission budget leases given back (writes, per 5 min)", label: "given back", metric: ADMISSION_METRICS.leaseReturned, groupBy: [] },
  { title: "Admission calls shed by account quota pools (per 5 min)", label: "shed", metric: ADMISSION_METRICS.shed, groupBy: [DIMENSIONS.tier, DIMENSIONS.pool] },
].map((p) => ({
  ...p,
  expression: `SELECT SUM(${p.metric}) FROM ${METRICS_NAMESPACE}${p.groupBy.length ? ` GROUP BY ${p.groupBy.join(", ")}` : ""}`,
}));

function pipelineMetric(metricName: string, statistic: string, period: Duration): cloudwatch.Metric {
  return new cloudwatch.Metric({
    namespace: METRICS_NAMESPACE,
    metricName,
    dimensionsMap: { [DIMENSIONS.service]: SERVICE_NAME },
    statistic,
    period,
  });
}

function graph(title: string, left: cloudwatch.IMetric[], width = 8): cloudwatch.GraphWidget {
  return new cloudwatch.GraphWidget({ title, left, width, height: 6 });
}
