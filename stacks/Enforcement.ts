import { Duration } from "aws-cdk-lib";
import * as events from "aws-cdk-lib/aws-events";
import * as targets from "aws-cdk-lib/aws-events-targets";
import * as iam from "aws-cdk-lib/aws-iam";
import * as sns from "aws-cdk-lib/aws-sns";
import * as sqs from "aws-cdk-lib/aws-sqs";
import { use, type StackContext } from "sst/constructs";
import { Alerts } from "./Alerts";
import { Ingest } from "./Ingest";
import { deadLetterQueue, putEventsStatement, workQueueProps } from "./support";

/** Source of the quota domain's enforcement events on the pipeline bus. */
export const ENFORCEMENT_SOURCE = "genai.metering.quota";

/**
 * Detail-types of enforcement events. They mirror the quota domain's ENFORCEMENT_DETAIL_TYPES
 * (shared/quota); the stack keeps its own copy so infrastructure does not import a domain module
 * that is still being written.
 */
export const ENFORCEMENT_DETAIL_TYPES = [
  "Tenant Quota Warning",
  "Tenant Downgraded",
  "Tenant Throttled",
  "Tenant Restored",
] as const;

/** Receives before a decision the data plane failed to apply moves to the decisions DLQ. */
export const DECISIONS_MAX_RECEIVE_COUNT = 5;
/** EventBridge delivery retries per target before the event goes to the delivery DLQ. */
const TARGET_RETRY_ATTEMPTS = 8;

/**
 * Routes quota-enforcement events (throttle/downgrade/warning/restore) from the pipeline bus to
 * operators (ops topic) and to the data plane (the `decisions` queue, and when DATA_PLANE_BUS_ARN
 * is set, a bus in the data-plane account).
 */
export function Enforcement({ stack, app }: StackContext) {
  const { bus } = use(Ingest);
  const { topic } = use(Alerts);
  const pattern: events.EventPattern = { source: [ENFORCEMENT_SOURCE], detailType: [...ENFORCEMENT_DETAIL_TYPES] };

  // Events EventBridge could not deliver to a target after its retries (e.g. a missing permission
  // on the data-plane bus); kept 14 days and alarmed on by the Ops stack.
  const deliveryDlq = deadLetterQueue(stack, "DeliveryDlq", app, "enforcement-delivery");

  // Imported by ARN: the Alerts stack owns the topic policy (scoped to rules on this bus), so the
  // target does not add a second, unconditioned statement for events.amazonaws.com.
  const opsTopic = sns.Topic.fromTopicArn(stack, "OpsTopicRef", topic.topicArn);
  new events.Rule(stack, "ToOps", {
    eventBus: bus.cdk.eventBus,
    description: "Quota enforcement events -> ops topic",
    eventPattern: pattern,
    targets: [new targets.SnsTopic(opsTopic, { deadLetterQueue: deliveryDlq, retryAttempts: TARGET_RETRY_ATTEMPTS })],
  });

  const decisionsDlq = deadLetterQueue(stack, "DecisionsDlq", app, "decisions");
  const decisions = new sqs.Queue(stack, "Decisions", {
    queueName: app.logicalPrefixedName("decisions"),
    ...workQueueProps(decisionsDlq, DECISIONS_MAX_RECEIVE_COUNT, Duration.seconds(60)),
  });

  const dataPlaneTargets: events.IRuleTarget[] = [
    new targets.SqsQueue(decisions, { deadLetterQueue: deliveryDlq, retryAttempts: TARGET_RETRY_ATTEMPTS }),
  ];
  const dataPlaneBusArn = process.env.DATA_PLANE_BUS_ARN;
  if (dataPlaneBusArn) {
    // Cross-account: EventBridge forwards through a role allowed events:PutEvents on that bus only,
    // and only for enforcement events; the data-plane bus's resource policy must allow this account.
    const remote = events.EventBus.fromEventBusArn(stack, "DataPlaneBus", dataPlaneBusArn);
    const role = new iam.Role(stack, "DataPlaneBusRole", { assumedBy: new iam.ServicePrincipal("events.amazonaws.com") });
    role.addToPolicy(putEventsStatement(remote, [ENFORCEMENT_SOURCE]));
    // withoutPolicyUpdates: the target would otherwise add its own, unconditioned PutEvents grant.
    dataPlaneTargets.push(new targets.EventBus(remote, { deadLetterQueue: deliveryDlq, role: role.withoutPolicyUpdates() }));
  }
  new events.Rule(stack, "ToDataPlane", {
    eventBus: bus.cdk.eventBus,
    description: "Quota enforcement events -> data plane",
    eventPattern: pattern,
    targets: dataPlaneTargets,
  });

  stack.addOutputs({
    DecisionsQueueUrl: decisions.queueUrl,
    DecisionsQueueArn: decisions.queueArn,
  });
  return {
    decisions,
    dlqs: [
      { name: "decisions-dlq", queue: decisionsDlq },
      { name: "enforcement-delivery-dlq", queue: deliveryDlq },
    ],
  };
}
