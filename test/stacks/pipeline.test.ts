import { Match, type Template } from "aws-cdk-lib/assertions";
import { beforeAll, describe, expect, it } from "vitest";
import { HTTP_ROUTES } from "../../shared/http/routes";
import { QUEUE_RULES, UNCONSUMED_METERING_RULE } from "../../shared/events/rules";
import { PIPELINE_METRICS } from "../../shared/observability/metric-names";
import { USAGE_TABLE } from "../../shared/storage/table";
import { Alerts } from "../../stacks/Alerts";
import { Api, CONFIG_WRITE_ACTIONS, routeKey } from "../../stacks/Api";
import { ENFORCEMENT_DETAIL_TYPES, ENFORCEMENT_SOURCE, DECISIONS_MAX_RECEIVE_COUNT, Enforcement } from "../../stacks/Enforcement";
import { INGEST_TABLE_ACTIONS, Ingest } from "../../stacks/Ingest";
import { InvocationLogs } from "../../stacks/InvocationLogs";
import { ALLOCATE_SCHEDULE, BILLING_EXPORT_SCHEDULE, Jobs } from "../../stacks/Jobs";
import { Ops, THRESHOLDS } from "../../stacks/Ops";
import { Storage } from "../../stacks/Storage";
import { DYNAMO_READ_ACTIONS } from "../../stacks/support";
import { ENFORCEMENT_DETAIL_TYPES as QUOTA_DETAIL_TYPES, ENFORCEMENT_SOURCE as QUOTA_SOURCE } from "../../shared/quota/events";
import {
  allowedActions,
  asArray,
  everyResource,
  functionRoleId,
  refId,
  roleStatements,
  routeFunctionId,
  statements,
  synth,
  type Synth,
} from "./synth";

type Resource = { Type: string; Properties: Record<string, any>; [k: string]: any };

/** Cross-stack reference to the ops topic, as CloudFormation imports it. */
const TOPIC_ARN = { "Fn::ImportValue": Match.stringLikeRegexp("-Alerts:ExportsOutputRefOpsTopic") };

let s: Synth;
let storage: Template,
  ingest: Template,
  alerts: Template,
  enforcement: Template,
  api: Template,
  jobs: Template,
  invocationLogs: Template,
  ops: Template;

function resources(t: Template, type: string, props?: Record<string, unknown>): [string, Resource][] {
  return Object.entries(t.findResources(type, props ? { Properties: props } : undefined)) as [string, Resource][];
}

function only<T>(items: T[], what: string): T {
  expect(items, what).toHaveLength(1);
  return items[0];
}

beforeAll(async () => {
  // Given the whole app synthesized for a non-dev stage, in sst.config.ts order
  s = await synth({ stage: "test", env: { DATA_PLANE_BUS_ARN: undefined, OPS_ALERT_EMAIL: undefined } });
  [storage, ingest, alerts, enforcement, api, jobs, invocationLogs, ops] = [Storage, Ingest, Alerts, Enforcement, Api, Jobs, InvocationLogs, Ops].map(
    (f) => s.template(f as never),
  );
});

describe("Storage", () => {
  it("builds the usage table from shared/storage/table.ts: keys, gsi1 (ALL), TTL, on-demand", () => {
    storage.hasResourceProperties("AWS::DynamoDB::Table", {
      KeySchema: [
        { AttributeName: USAGE_TABLE.partitionKey, KeyType: "HASH" },
        { AttributeName: USAGE_TABLE.sortKey, KeyType: "RANGE" },
      ],
      AttributeDefinitions: Match.arrayWith([
        { AttributeName: USAGE_TABLE.gsi1.partitionKey, AttributeType: "S" },
        { AttributeName: USAGE_TABLE.gsi1.sortKey, AttributeType: "S" },
      ]),
      GlobalSecondaryIndexes: [
        {
          IndexName: USAGE_TABLE.gsi1.name,
          KeySchema: [
            { AttributeName: USAGE_TABLE.gsi1.partitionKey, KeyType: "HASH" },
            { AttributeName: USAGE_TABLE.gsi1.sortKey, KeyType: "RANGE" },
          ],
          Projection: { ProjectionType: "ALL" },
        },
      ],
      TimeToLiveSpecification: { AttributeName: USAGE_TABLE.timeToLiveAttribute, Enabled: true },
      BillingMode: "PAY_PER_REQUEST",
    });
  });

  it("turns on point-in-time recovery and KMS encryption at rest", () => {
    storage.hasResourceProperties("AWS::DynamoDB::Table", {
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      // SSEEnabled without a key id = the AWS-managed KMS key aws/dynamodb.
      SSESpecification: { SSEEnabled: true },
    });
  });

  it("retains the table and protects it from deletion on a non-dev stage", () => {
    storage.hasResource("AWS::DynamoDB::Table", {
      DeletionPolicy: "Retain",
      UpdateReplacePolicy: "Retain",
      Properties: Match.objectLike({ DeletionProtectionEnabled: true }),
    });
  });
});

describe("Ingest", () => {
  it("exports the bus name", () => {
    const outputs = ingest.findOutputs("EventBusName");
    expect(outputs.EventBusName.Export.Name).toBe("test-genai-metering-EventBusName");
    expect(outputs.EventBusName.Value).toEqual({ Ref: only(resources(ingest, "AWS::Events::EventBus"), "bus")[0] });
  });

  for (const rule of QUEUE_RULES) {
    describe(`rule ${rule.name}`, () => {
      const queueName = `test-genai-metering-${rule.name}`;
      const queueId = () => only(resources(ingest, "AWS::SQS::Queue", { QueueName: queueName }), "queue")[0];
      const dlqId = () => only(resources(ingest, "AWS::SQS::Queue", { QueueName: `${queueName}-dlq` }), "dlq")[0];
      const ruleEntry = () =>
        only(
          resources(ingest, "AWS::Events::Rule").filter(([, r]) => JSON.stringify(r.Properties.EventPattern) === JSON.stringify(rule.pattern)),
          "rule with the shared pattern",
        );
      const esm = () =>
        only(resources(ingest, "AWS::Lambda::EventSourceMapping", { EventSourceArn: { "Fn::GetAtt": [queueId(), "Arn"] } }), "event source")[1];

      it("routes the shared pattern from the bus to the queue, undeliverable events to the DLQ", () => {
        const [, r] = ruleEntry();
        expect(r.Properties.EventBusName).toEqual({ Ref: only(resources(ingest, "AWS::Events::EventBus"), "bus")[0] });
        const target = only(r.Properties.Targets as any[], "target");
        expect(target.Arn).toEqual({ "Fn::GetAtt": [queueId(), "Arn"] });
        expect(target.DeadLetterConfig.Arn).toEqual({ "Fn::GetAtt": [dlqId(), "Arn"] });
      });

      it("redrives to the DLQ after the rule's maxReceiveCount; both queues use SSE", () => {
        ingest.hasResourceProperties("AWS::SQS::Queue", {
          QueueName: queueName,
          RedrivePolicy: { deadLetterTargetArn: { "Fn::GetAtt": [dlqId(), "Arn"] }, maxReceiveCount: rule.maxReceiveCount },
          SqsManagedSseEnabled: true,
        });
        ingest.hasResourceProperties("AWS::SQS::Queue", { QueueName: `${queueName}-dlq`, SqsManagedSseEnabled: true });
      });

      it("lets only the EventBridge rules targeting the queue (this rule, and the catch rule's for the ingest) send to it", () => {
        const policy = only(resources(ingest, "AWS::SQS::QueuePolicy", { Queues: [{ Ref: queueId() }] }), "queue policy")[1];
        const allows = (policy.Properties.PolicyDocument.Statement as any[]).filter((st) => st.Effect === "Allow");
        const senders = resources(ingest, "AWS::Events::Rule")
          .filter(([, r]) => (r.Properties.Targets as any[]).some((t) => JSON.stringify(t.Arn) === JSON.stringify({ "Fn::GetAtt": [queueId(), "Arn"] })))
          .map(([id]) => id);
        expect(senders).toContain(ruleEntry()[0]);
        expect(senders).toHaveLength(rule.name === UNCONSUMED_METERING_RULE.target ? 1 + UNCONSUMED_METERING_RULE.patterns.length : 1);
        for (const allow of allows) {
          expect(allow.Principal).toEqual({ Service: "events.amazonaws.com" });
          expect(asArray(allow.Action)).toContain("sqs:SendMessage");
        }
        expect(allows.map((a) => a.Condition.ArnEquals["aws:SourceArn"]["Fn::GetAtt"][0]).sort()).toEqual([...senders].sort());
      });

      it("consumes with the rule's batch size, window and concurrency and reports partial batch failures", () => {
        expect(esm()).toMatchObject({
          Properties: {
            BatchSize: rule.batchSize,
            MaximumBatchingWindowInSeconds: rule.maxBatchingWindowSeconds,
            // bounds one aggregate item's writes per second (one write per batch in flight)
            ScalingConfig: { MaximumConcurrency: rule.maxConcurrency },
            FunctionResponseTypes: ["ReportBatchItemFailures"],
          },
        });
      });

      it("keeps the visibility timeout >= 6x the function timeout (+ batching window) and >= the rule's", () => {
        const fn = ingest.toJSON().Resources[refId(esm().Properties.FunctionName)] as Resource;
        const queue = ingest.toJSON().Resources[queueId()] as Resource;
        expect(queue.Properties.VisibilityTimeout).toBeGreaterThanOrEqual(6 * fn.Properties.Timeout + rule.maxBatchingWindowSeconds);
        expect(queue.Properties.VisibilityTimeout).toBeGreaterThanOrEqual(rule.visibilityTimeoutSeconds);
      });

      it("leases ledger claims for the consumer's timeout, below the visibility timeout (a crashed run's claims are free on redelivery)", () => {
        const fn = ingest.toJSON().Resources[refId(esm().Properties.FunctionName)] as Resource;
        const queue = ingest.toJSON().Resources[queueId()] as Resource;
        const lease = Number(fn.Properties.Environment.Variables.INGEST_CLAIM_LEASE_SECONDS);
        expect(lease).toBe(fn.Properties.Timeout);
        expect(lease).toBeLessThan(queue.Properties.VisibilityTimeout);
      });

      it("gives the consumer the table and bus names", () => {
        const fn = ingest.toJSON().Resources[refId(esm().Properties.FunctionName)] as Resource;
        expect(fn.Properties.Environment.Variables).toMatchObject({
          USAGE_TABLE_NAME: expect.objectContaining({ "Fn::ImportValue": expect.stringMatching(/-Storage:ExportsOutputRefUsageTable/) }),
          EVENT_BUS_NAME: { Ref: only(resources(ingest, "AWS::Events::EventBus"), "bus")[0] },
        });
      });

      it("allows the consumer exactly the ingest table actions on the table, PutEvents on the bus", () => {
        const fnId = refId(esm().Properties.FunctionName);
        const stmts = roleStatements(ingest, functionRoleId(ingest, fnId));
        const dynamo = stmts.filter((st) => asArray<string>(st.Action).some((a) => a.startsWith("dynamodb:")));
        const stmt = only(dynamo, "dynamodb statements");
        expect([...asArray<string>(stmt.Action)].sort()).toEqual([...INGEST_TABLE_ACTIONS].sort());
        expect(stmt.Resource).toMatchObject({ "Fn::ImportValue": expect.stringMatching(/-Storage:ExportsOutputFnGetAttUsageTable.*Arn/) });
        const events = only(stmts.filter((st) => asArray<string>(st.Action).some((a) => a.startsWith("events:"))), "events statements");
        expect(events.Action).toBe("events:PutEvents");
        expect(events.Resource).toEqual({ "Fn::GetAtt": [only(resources(ingest, "AWS::Events::EventBus"), "bus")[0], "Arn"] });
        // enforcement events only: the ingest cannot forge usage events
        expect(events.Condition).toEqual({ StringEquals: { "events:source": "genai.metering.quota" } });
      });
    });
  }
});

describe("Alerts", () => {
  it("lets CloudWatch alarms of this account and rules on the pipeline bus publish, nobody else", () => {
    const policy = only(resources(alerts, "AWS::SNS::TopicPolicy"), "topic policy")[1];
    const allows = (policy.Properties.PolicyDocument.Statement as any[]).filter((st) => st.Effect === "Allow");
    expect(allows.map((st) => st.Principal.Service).sort()).toEqual(["cloudwatch.amazonaws.com", "events.amazonaws.com"]);
    for (const st of allows) {
      expect(st.Action).toBe("sns:Publish");
      expect(st.Condition?.ArnLike?.["aws:SourceArn"], "every allow is scoped by source ARN").toBeDefined();
    }
    const events = allows.find((st) => st.Principal.Service === "events.amazonaws.com");
    expect(JSON.stringify(events.Condition)).toMatch(/:rule\/".*-Ingest:ExportsOutputRefBusEventBus.*"\/\*"/);
  });
});

describe("Enforcement", () => {
  const pattern = { source: [ENFORCEMENT_SOURCE], "detail-type": [...ENFORCEMENT_DETAIL_TYPES] };
  const rules = () => resources(enforcement, "AWS::Events::Rule", { EventPattern: pattern });
  const busRef = { "Fn::ImportValue": Match.stringLikeRegexp("-Ingest:ExportsOutputRefBusEventBus") };

  it("routes exactly the source and detail-types the quota domain publishes", () => {
    // The stack keeps its own copy of the names; this catches drift until they are unified.
    expect(ENFORCEMENT_SOURCE).toBe(QUOTA_SOURCE);
    expect([...ENFORCEMENT_DETAIL_TYPES].sort()).toEqual(Object.values(QUOTA_DETAIL_TYPES).sort());
  });

  it("sends warning/downgrade/throttle/restore events on the pipeline bus to the ops topic", () => {
    enforcement.hasResourceProperties("AWS::Events::Rule", {
      EventBusName: busRef,
      EventPattern: pattern,
      Targets: [Match.objectLike({ Arn: TOPIC_ARN, DeadLetterConfig: Match.anyValue() })],
    });
  });

  it("sends them to the data-plane decisions queue, which redrives to its DLQ", () => {
    const decisionsId = only(resources(enforcement, "AWS::SQS::Queue", { QueueName: "test-genai-metering-decisions" }), "decisions")[0];
    const dlqId = only(resources(enforcement, "AWS::SQS::Queue", { QueueName: "test-genai-metering-decisions-dlq" }), "dlq")[0];
    const toQueue = rules().filter(([, r]) => r.Properties.Targets.some((t: any) => t.Arn?.["Fn::GetAtt"]?.[0] === decisionsId));
    expect(only(toQueue, "rule to decisions")[1].Properties.EventBusName).toMatchObject({ "Fn::ImportValue": expect.any(String) });
    enforcement.hasResourceProperties("AWS::SQS::Queue", {
      QueueName: "test-genai-metering-decisions",
      RedrivePolicy: { deadLetterTargetArn: { "Fn::GetAtt": [dlqId, "Arn"] }, maxReceiveCount: DECISIONS_MAX_RECEIVE_COUNT },
      SqsManagedSseEnabled: true,
    });
  });

  it("has no cross-account bus target when DATA_PLANE_BUS_ARN is unset", () => {
    const targets = rules().flatMap(([, r]) => r.Properties.Targets as any[]);
    expect(targets.filter((t) => t.RoleArn)).toEqual([]);
    expect(rules()).toHaveLength(2);
  });
});

describe("Api", () => {
  it("declares one route per HTTP_ROUTES entry, each behind IAM auth", () => {
    const routes = resources(api, "AWS::ApiGatewayV2::Route");
    expect(routes.map(([, r]) => r.Properties.RouteKey).sort()).toEqual(HTTP_ROUTES.map(routeKey).sort());
    for (const [, r] of routes) expect(r.Properties.AuthorizationType, r.Properties.RouteKey).toBe("AWS_IAM");
  });

  for (const route of HTTP_ROUTES) {
    it(`${routeKey(route)}: only the config PUT writes (TENANT#/ENFORCEMENT# partitions) or publishes`, () => {
      const stmts = roleStatements(api, functionRoleId(api, routeFunctionId(api, routeKey(route))));
      const dynamo = stmts.filter((st) => asArray<string>(st.Action).some((a) => a.startsWith("dynamodb:")));
      expect(dynamo.length).toBeGreaterThan(0);
      const writes = allowedActions(dynamo).filter((a) => !(DYNAMO_READ_ACTIONS as readonly string[]).includes(a));
      if (route.method === "GET") {
        expect(writes).toEqual([]);
      } else {
        expect(writes.sort()).toEqual([...CONFIG_WRITE_ACTIONS].sort());
        const write = only(dynamo.filter((st) => asArray<string>(st.Action).includes("dynamodb:PutItem")), "write statement");
        expect(write.Condition).toEqual({ "ForAllValues:StringLike": { "dynamodb:LeadingKeys": ["TENANT#*", "ENFORCEMENT#*"] } });
      }
      const publishes = stmts.filter((st) => asArray<string>(st.Action).includes("events:PutEvents"));
      expect(publishes.map((st) => st.Resource)).toEqual(
        route.method === "GET" ? [] : [{ "Fn::ImportValue": expect.stringMatching(/-Ingest:ExportsOutputFnGetAttBusEventBus.*Arn/) }],
      );
      for (const st of publishes) expect(st.Condition).toEqual({ StringEquals: { "events:source": "genai.metering.quota" } });
      for (const st of dynamo) {
        for (const resource of asArray<any>(st.Resource)) expect(JSON.stringify(resource)).toMatch(/-Storage:ExportsOutputFnGetAttUsageTable.*Arn/);
      }
    });
  }
});

describe("Jobs", () => {
  it("keeps exports in an encrypted, private, TLS-only, versioned bucket that is retained", () => {
    jobs.hasResource("AWS::S3::Bucket", {
      DeletionPolicy: "Retain",
      Properties: Match.objectLike({
        BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: "AES256" } }] },
        PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
        VersioningConfiguration: { Status: "Enabled" },
      }),
    });
    jobs.hasResourceProperties("AWS::S3::BucketPolicy", {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: "Deny", Action: "s3:*", Condition: { Bool: { "aws:SecureTransport": "false" } } }),
        ]),
      },
    });
  });

  it("runs allocate hourly and the billing export monthly on day 1, with the table name", () => {
    for (const schedule of [ALLOCATE_SCHEDULE, BILLING_EXPORT_SCHEDULE]) {
      const rule = only(resources(jobs, "AWS::Events::Rule", { ScheduleExpression: schedule }), schedule)[1];
      const fn = jobs.toJSON().Resources[refId(only(rule.Properties.Targets as any[], "target").Arn)] as Resource;
      expect(fn.Properties.Environment.Variables.USAGE_TABLE_NAME).toMatchObject({ "Fn::ImportValue": expect.any(String) });
    }
    expect(ALLOCATE_SCHEDULE).toMatch(/^cron\(\d+ \* \* \* \? \*\)$/);
    expect(BILLING_EXPORT_SCHEDULE).toMatch(/^cron\(\d+ \d+ 1 \* \? \*\)$/);
  });

  it("lets only the billing export write objects, and only into the exports bucket", () => {
    const bucketId = only(resources(jobs, "AWS::S3::Bucket"), "bucket")[0];
    // the reconciliation job's puts under reconciliation/ are asserted in reconcile.test.ts
    const s3 = statements(jobs).filter(
      ({ statement }) => asArray<string>(statement.Action).some((a) => a.startsWith("s3:")) && !JSON.stringify(statement.Resource).includes("/reconciliation/*"),
    );
    const { statement } = only(s3, "s3 statements");
    expect(statement.Action).toBe("s3:PutObject");
    expect(statement.Resource).toEqual({ "Fn::Join": ["", [{ "Fn::GetAtt": [bucketId, "Arn"] }, "/*"]] });
  });
});

describe("Ops", () => {
  const alarms = () => resources(ops, "AWS::CloudWatch::Alarm");

  it("alarms on every DLQ of the app when a message is visible", () => {
    const dlqs = [ingest, enforcement, invocationLogs].flatMap((t) =>
      resources(t, "AWS::SQS::Queue").filter(([, r]) => String(r.Properties.QueueName).endsWith("-dlq")),
    );
    expect(dlqs.length).toBeGreaterThanOrEqual(QUEUE_RULES.length + 1);
    // the invocation-log function's failure queue is one of them
    expect(dlqs.map(([, r]) => r.Properties.QueueName)).toContain("test-genai-metering-invocation-log-dlq");
    for (const [dlqId] of dlqs) {
      const watching = alarms().filter(([, a]) =>
        JSON.stringify(a.Properties.Metrics ?? a.Properties.Dimensions).includes(`GetAtt${dlqId}QueueName`),
      );
      const [, alarm] = only(watching, `alarm on ${dlqId}`);
      expect(alarm.Properties).toMatchObject({ Threshold: 0, ComparisonOperator: "GreaterThanThreshold" });
      expect(alarm.Properties.Metrics[0].MetricStat.Metric).toMatchObject({ Namespace: "AWS/SQS", MetricName: "ApproximateNumberOfMessagesVisible" });
    }
  });

  it("alarms on ingest Lambda errors and on the age of the oldest ingest message", () => {
    ops.hasResourceProperties("AWS::CloudWatch::Alarm", {
      Namespace: "AWS/Lambda",
      MetricName: "Errors",
      Dimensions: [{ Name: "FunctionName", Value: { "Fn::ImportValue": Match.stringLikeRegexp("-Ingest:ExportsOutputRefIngestQueueConsumer") } }],
      Threshold: 0,
      ComparisonOperator: "GreaterThanThreshold",
    });
    ops.hasResourceProperties("AWS::CloudWatch::Alarm", {
      Namespace: "AWS/SQS",
      MetricName: "ApproximateAgeOfOldestMessage",
      Dimensions: [{ Name: "QueueName", Value: { "Fn::ImportValue": Match.stringLikeRegexp("-Ingest:ExportsOutputFnGetAttIngestQueue.*QueueName") } }],
      Threshold: THRESHOLDS.ingestQueueAgeSeconds,
    });
  });

  it("alarms on errors of the invocation-log function", () => {
    const [fnId] = only(
      resources(invocationLogs, "AWS::Lambda::Function").filter(([, r]) => r.Properties.Environment?.Variables?.SST_APP),
      "invocation-log function",
    );
    const watching = alarms().filter(([, a]) => JSON.stringify(a.Properties.Dimensions ?? []).includes(`-InvocationLogs:ExportsOutputRef${fnId}`));
    const [, alarm] = only(watching, "alarm on the invocation-log function");
    expect(alarm.Properties).toMatchObject({
      Namespace: "AWS/Lambda",
      MetricName: "Errors",
      Statistic: "Sum",
      Dimensions: [{ Name: "FunctionName", Value: { "Fn::ImportValue": expect.any(String) } }],
      Threshold: 0,
      ComparisonOperator: "GreaterThanThreshold",
    });
  });

  it("alarms on IngestLagMs p99 and on any quota breach, filtered to the service dimension", () => {
    const service = [{ Name: "service", Value: "genai-metering" }];
    ops.hasResourceProperties("AWS::CloudWatch::Alarm", {
      Namespace: "GenAIMetering",
      MetricName: PIPELINE_METRICS.ingestLag,
      ExtendedStatistic: "p99",
      Dimensions: service,
      Threshold: THRESHOLDS.ingestLagP99Ms,
    });
    ops.hasResourceProperties("AWS::CloudWatch::Alarm", {
      Namespace: "GenAIMetering",
      MetricName: PIPELINE_METRICS.quotaBreaches,
      Statistic: "Sum",
      Dimensions: service,
      Threshold: 0,
      ComparisonOperator: "GreaterThanThreshold",
    });
  });

  it("sends every alarm to the ops topic", () => {
    expect(alarms().length).toBeGreaterThan(0);
    for (const [id, a] of alarms()) expect(a.Properties.AlarmActions, id).toEqual([expect.objectContaining({ "Fn::ImportValue": expect.stringMatching(/-Alerts:ExportsOutputRefOpsTopic/) })]);
  });

  it("has a dashboard with ingested, duplicates, quarantined, lag, DLQ depth, enforcement and cost per tier", () => {
    const [, dashboard] = only(resources(ops, "AWS::CloudWatch::Dashboard"), "dashboard");
    const body = JSON.stringify(dashboard.Properties.DashboardBody);
    for (const needle of [
      PIPELINE_METRICS.eventsIngested,
      PIPELINE_METRICS.duplicates,
      PIPELINE_METRICS.quarantined,
      PIPELINE_METRICS.ingestLag,
      "ApproximateNumberOfMessagesVisible",
      PIPELINE_METRICS.enforcementEvents,
      "SUM(CostUsd)",
      "GROUP BY tier",
    ]) {
      expect(body, needle).toContain(needle);
    }
  });
});

describe("IAM across the app (least privilege)", () => {
  const templates = () => [storage, ingest, alerts, enforcement, api, jobs, invocationLogs, ops];
  const allStatements = () => templates().flatMap((t) => statements(t).map(({ statement }) => statement));

  it("grants no wildcard action anywhere", () => {
    const wild = allowedActions(allStatements()).filter((a) => a === "*" || a.endsWith(":*"));
    expect(wild).toEqual([]);
  });

  it("never grants DynamoDB on Resource '*', nor deletes or table administration", () => {
    for (const st of allStatements().filter((x) => x.Effect === "Allow")) {
      const actions = asArray<string>(st.Action);
      if (!actions.some((a) => a.startsWith("dynamodb:"))) continue;
      expect(asArray(st.Resource)).not.toContain("*");
      expect(actions.filter((a) => /^dynamodb:(Delete|CreateTable|UpdateTable|BatchWriteItem|Scan)/.test(a))).toEqual([]);
    }
  });

  it("uses Resource '*' only for X-Ray (which has no resource ARNs) and CDK's log-retention helper", () => {
    // cloudwatch:ListMetrics / GetMetricData (reconciliation job) support no resource-level permissions either
    const allowed = ["xray:PutTraceSegments", "xray:PutTelemetryRecords", "logs:PutRetentionPolicy", "logs:DeleteRetentionPolicy", "cloudwatch:ListMetrics", "cloudwatch:GetMetricData"];
    const starActions = allStatements()
      .filter((st) => st.Effect === "Allow" && asArray(st.Resource).includes("*"))
      .flatMap((st) => asArray<string>(st.Action));
    expect(starActions.length).toBeGreaterThan(0);
    expect(starActions.filter((a) => !allowed.includes(a))).toEqual([]);
  });

  it("encrypts every queue in the app", () => {
    const queues = everyResource(templates()).filter(([, r]) => r.Type === "AWS::SQS::Queue");
    expect(queues.length).toBeGreaterThan(0);
    for (const [id, q] of queues) expect(q.Properties?.SqsManagedSseEnabled ?? q.Properties?.KmsMasterKeyId, id).toBeTruthy();
  });
});

describe("Functions", () => {
  // Runtime and handler are only real after bundling (placeholders before): see bundle.test.ts.
  it("every app function gets the table name in its environment", () => {
    const fns = everyResource([ingest, api, jobs, invocationLogs]).filter(
      ([, r]) => r.Type === "AWS::Lambda::Function" && r.Properties?.Environment?.Variables?.SST_APP,
    );
    // consumers, one per route, the four jobs (allocate, billing export, outbox sweep, reconcile), the invocation-log function
    expect(fns.length).toBe(QUEUE_RULES.length + HTTP_ROUTES.length + 4 + 1);
    for (const [id, fn] of fns) {
      expect(fn.Properties!.Environment.Variables.USAGE_TABLE_NAME, id).toMatchObject(
        expect.objectContaining({ "Fn::ImportValue": expect.stringMatching(/-Storage:ExportsOutputRefUsageTable/) }),
      );
    }
  });
});
