/**
 * The one list of cdk-nag (AwsSolutions pack) findings this app accepts, each with its reason.
 * Applied by the stack tests (test/stacks/nag.ts) to every synthesized app; any other
 * AwsSolutions error fails the test suite. Pure data: cdk-nag itself is a dev dependency.
 *
 * `constructs` scopes an entry to constructs with those ids (and their children); without it the
 * entry applies to every stack. `appliesTo` narrows IAM findings to the named finding (cdk-nag's
 * `Resource::...` / `Policy::...` strings, or a `{ regex }`).
 */
export interface NagSuppressionEntry {
  id: string;
  reason: string;
  appliesTo?: (string | { regex: string })[];
  constructs?: string[];
}

/** Actions that may have `Resource: "*"` (checked by test/stacks/trust.test.ts): none of them supports resource-level permissions. */
export const WILDCARD_RESOURCE_ACTIONS = [
  // X-Ray tracing (tracing: "active" on every function)
  "xray:PutTraceSegments",
  "xray:PutTelemetryRecords",
  // CDK's LogRetention provider (logRetention on the functions): it sets the retention of log groups it creates
  "logs:PutRetentionPolicy",
  "logs:DeleteRetentionPolicy",
  // Bedrock's account-level invocation-logging setting (only with BEDROCK_INVOCATION_LOGGING=managed)
  "bedrock:PutModelInvocationLoggingConfiguration",
  "bedrock:DeleteModelInvocationLoggingConfiguration",
  // The reconcile job reads AWS/Bedrock and AWS/SageMaker metrics: CloudWatch metric reads have no resource-level permissions
  "cloudwatch:ListMetrics",
  "cloudwatch:GetMetricData",
] as const;

export const NAG_SUPPRESSIONS: readonly NagSuppressionEntry[] = [
  {
    id: "AwsSolutions-L1",
    reason:
      "Our functions run nodejs22.x on purpose: the Node LTS the code is built and tested for (a runtime upgrade is a deliberate change, not a lint fix). The other functions are CDK/SST custom-resource providers whose runtime the library picks.",
  },
  {
    id: "AwsSolutions-IAM4",
    reason: "AWSLambdaBasicExecutionRole only lets a function write its own CloudWatch Logs; every other permission is an inline least-privilege statement asserted in test/stacks.",
    appliesTo: ["Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"],
  },
  {
    id: "AwsSolutions-IAM5",
    reason: `Resource "*" only for actions without resource-level permissions (${WILDCARD_RESOURCE_ACTIONS.join(", ")}); test/stacks/trust.test.ts fails if any other action gets "*".`,
    appliesTo: ["Resource::*"],
  },
  {
    id: "AwsSolutions-IAM5",
    reason:
      "execute-api ARNs of the caller policies: `*` is the stage and the route's path parameter ({tenantId}, {month}), or the data plane's own-tenant prefix from its principal tag; each policy names its methods and routes.",
    appliesTo: [{ regex: "/^Resource::arn:<AWS::Partition>:execute-api:.*$/g" }],
    constructs: ["BillingReaderPolicy", "OperatorPolicy", "DataPlanePolicy"],
  },
  {
    id: "AwsSolutions-IAM5",
    reason:
      "Object keys are not known in advance: the invocation-log function reads any object of its own bucket (Bedrock writes them), the billing export writes billing/<month>/ objects and the reconcile job reconciliation/<day>/<hour> reports, in the exports bucket. One bucket each, one action each.",
    appliesTo: [{ regex: "/^Resource::.*(invocation-logs|BillingExports).*\\/\\*$/g" }],
    constructs: ["InvocationLogProcessor", "BillingExport", "Reconcile"],
  },
  {
    id: "AwsSolutions-SMG4",
    reason:
      "The cursor HMAC key is resolved into the API functions' environment at deploy; a rotation Lambda could not reach them. Rotate by replacing the secret and redeploying (open cursors then get a 400 and the client starts over).",
    constructs: ["CursorSecret"],
  },
  {
    id: "AwsSolutions-SQS3",
    reason:
      "These queues are dead-letter queues themselves (an EventBridge target DLQ or a Lambda on-failure destination, not a redrive policy, so cdk-nag does not see them as DLQs); each has a depth alarm in Ops.",
    constructs: ["DeliveryDlq", "InvocationLogFailures", "JobFailures"],
  },
  {
    id: "AwsSolutions-S1",
    reason:
      "Server access logs would need another bucket per bucket; object access to these private, TLS-only, bucket-owner-only buckets is audited with CloudTrail data events, an account-level setting outside this app.",
    constructs: ["InvocationLogBucket", "BillingExports"],
  },
];
