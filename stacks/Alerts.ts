import { Aws } from "aws-cdk-lib";
import { Effect, PolicyStatement, ServicePrincipal } from "aws-cdk-lib/aws-iam";
import * as sns from "aws-cdk-lib/aws-sns";
import * as subscriptions from "aws-cdk-lib/aws-sns-subscriptions";
import { use, type StackContext } from "sst/constructs";
import { Ingest } from "./Ingest";

/**
 * The ops SNS topic: CloudWatch alarms (Ops stack) and quota-enforcement events (Enforcement
 * stack) publish here. Its own stack so that both can depend on it without depending on each other.
 *
 * Parameter: OPS_ALERT_EMAIL (env or `.env.<stage>`) subscribes one address.
 */
export function Alerts({ stack }: StackContext) {
  const { bus } = use(Ingest);

  // Not KMS-encrypted: neither CloudWatch alarms nor EventBridge can publish to a topic under the
  // AWS-managed key (aws/sns). Alerts carry tenant ids and counters, no usage payloads.
  const topic = new sns.Topic(stack, "OpsTopic", { displayName: "GenAI metering ops", enforceSSL: true });

  // A topic policy replaces SNS's default policy, so both publishers are allowed explicitly, each
  // scoped to this account (and EventBridge to rules on the pipeline bus) against confused deputies.
  topic.addToResourcePolicy(
    new PolicyStatement({
      sid: "CloudWatchAlarms",
      effect: Effect.ALLOW,
      principals: [new ServicePrincipal("cloudwatch.amazonaws.com")],
      actions: ["sns:Publish"],
      resources: [topic.topicArn],
      conditions: {
        ArnLike: { "aws:SourceArn": `arn:${Aws.PARTITION}:cloudwatch:${Aws.REGION}:${Aws.ACCOUNT_ID}:alarm:*` },
        StringEquals: { "aws:SourceAccount": Aws.ACCOUNT_ID },
      },
    }),
  );
  topic.addToResourcePolicy(
    new PolicyStatement({
      sid: "PipelineBusRules",
      effect: Effect.ALLOW,
      principals: [new ServicePrincipal("events.amazonaws.com")],
      actions: ["sns:Publish"],
      resources: [topic.topicArn],
      conditions: {
        ArnLike: { "aws:SourceArn": `arn:${Aws.PARTITION}:events:${Aws.REGION}:${Aws.ACCOUNT_ID}:rule/${bus.eventBusName}/*` },
      },
    }),
  );

  const email = process.env.OPS_ALERT_EMAIL;
  if (email) topic.addSubscription(new subscriptions.EmailSubscription(email));

  stack.addOutputs({ OpsTopicArn: topic.topicArn });
  return { topic };
}
