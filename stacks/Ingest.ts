import { Duration } from "aws-cdk-lib";
import * as events from "aws-cdk-lib/aws-events";
import * as targets from "aws-cdk-lib/aws-events-targets";
import { Effect, PolicyStatement } from "aws-cdk-lib/aws-iam";
import type * as sqs from "aws-cdk-lib/aws-sqs";
import { EventBus, Queue, use, type App, type Function as SstFunction, type Stack, type StackContext, type Table } from "sst/constructs";
import { QUEUE_RULES, UNCONSUMED_METERING_RULE, type QueueRule } from "../shared/events/rules";
import { ENFORCEMENT_SOURCE } from "../shared/quota/events";
import { Storage } from "./Storage";
import {
  baseEnvironment,
  baseFunctionProps,
  consumerVisibilityTimeout,
  deadLetterQueue,
  putEventsStatement,
  tableStatement,
  workQueueProps,
} from "./support";

/**
 * Seconds a consumer may run on one batch. A batch is at most `batchSize` events: ledger claims
 * 25 a request, then one UpdateItem per aggregate item; 30 s leaves room for a cold start and SDK
 * retries on throttling. The queue's visibility timeout is derived from it (see
 * consumerVisibilityTimeout), and the ingest's epoch lease from it (INGEST_CLAIM_LEASE_SECONDS).
 */
export const CONSUMER_TIMEOUT_SECONDS = 30;

/** EventBridge delivery retries to the queue before the event goes to the DLQ. */
const TARGET_RETRY_ATTEMPTS = 8;

/** What the ingest consumer may do on the usage table: record events once, bump aggregates, evaluate quotas. */
export const INGEST_TABLE_ACTIONS = [
  // aggregate ADDs with their high-water marks, epoch records (Put, Update); estimate and reprice
  // corrections in a transaction (Put, Update, ConditionCheck items); no deletes
  "dynamodb:UpdateItem",
  "dynamodb:PutItem",
  // ledger claims: INSERT in BatchExecuteStatement (a conditional put, 25 per request)
  "dynamodb:PartiQLInsert",
  "dynamodb:GetItem",
  "dynamodb:ConditionCheckItem",
  "dynamodb:Query",
  // quota evaluation after each batch reads config, month totals and enforcement state at once;
  // the holders' epochs and a take-over's item marks
  "dynamodb:BatchGetItem",
] as const;

export interface QueueConsumer {
  rule: QueueRule;
  queue: sqs.IQueue;
  dlq: sqs.IQueue;
  fn: SstFunction;
}

/**
 * The event bus the data plane publishes invocation events to, and for every entry of
 * `QUEUE_RULES`: rule -> SQS queue (with DLQ) -> consumer Lambda with partial batch responses.
 */
export function Ingest({ stack, app }: StackContext) {
  const { table } = use(Storage);
  const bus = new EventBus(stack, "Bus");

  const consumers = QUEUE_RULES.map((rule) => queueConsumer(stack, app, bus, table, rule));
  const ingest = consumers.find((c) => c.rule.name === "ingest");
  if (!ingest) throw new Error("QUEUE_RULES has no 'ingest' rule; the Ops alarms depend on it");
  catchRule(stack, bus, consumers);

  stack.addOutputs({
    EventBusName: { value: bus.eventBusName, exportName: app.logicalPrefixedName("EventBusName") },
    EventBusArn: { value: bus.eventBusArn, exportName: app.logicalPrefixedName("EventBusArn") },
    IngestQueueUrl: ingest.queue.queueUrl,
  });
  return { bus, consumers, ingest };
}

function queueConsumer(stack: Stack, app: App, bus: EventBus, table: Table, rule: QueueRule): QueueConsumer {
  const id = pascal(rule.name);
  const dlq = deadLetterQueue(stack, `${id}Dlq`, app, rule.name);
  const queue = new Queue(stack, `${id}Queue`, {
    cdk: {
      queue: {
        queueName: app.logicalPrefixedName(rule.name),
        ...workQueueProps(
          dlq,
          rule.maxReceiveCount,
          consumerVisibilityTimeout(CONSUMER_TIMEOUT_SECONDS, rule.maxBatchingWindowSeconds, rule.visibilityTimeoutSeconds),
        ),
      },
    },
    consumer: {
      function: {
        ...baseFunctionProps(),
        handler: rule.handler,
        timeout: CONSUMER_TIMEOUT_SECONDS,
        environment: {
          ...baseEnvironment(table),
          EVENT_BUS_NAME: bus.eventBusName,
          // a run lives at most the timeout; its claims are respected that long
          INGEST_CLAIM_LEASE_SECONDS: String(CONSUMER_TIMEOUT_SECONDS),
        },
        permissions: [
          tableStatement(table.cdk.table, INGEST_TABLE_ACTIONS),
          // enforcement events only: a consumer can never publish usage (Model Invocation) events
          putEventsStatement(bus, [ENFORCEMENT_SOURCE]),
        ],
      },
      cdk: {
        eventSource: {
          batchSize: rule.batchSize,
          maxBatchingWindow: Duration.seconds(rule.maxBatchingWindowSeconds),
          maxConcurrency: rule.maxConcurrency,
          // The handler returns { batchItemFailures }: only failed records are retried and, after
          // maxReceiveCount receives, moved to the DLQ; the rest of the batch is deleted.
          reportBatchItemFailures: true,
        },
      },
    },
  });

  // The SqsQueue target adds the queue policies: events.amazonaws.com may SendMessage only when
  // aws:SourceArn is this rule. An event EventBridge could not deliver lands in the same DLQ as
  // one the consumer gave up on: both bodies are the EventBridge event, so one redrive to the
  // queue recounts either (the ledger makes a recount of an already-counted event a no-op).
  bus.addRules(stack, {
    [rule.name]: {
      pattern: { source: rule.pattern.source, detailType: rule.pattern["detail-type"] },
      targets: {
        queue: { type: "queue", queue, cdk: { target: { deadLetterQueue: dlq, retryAttempts: TARGET_RETRY_ATTEMPTS } } },
      },
    },
  });

  return { rule, queue: queue.cdk.queue, dlq, fn: queue.consumerFunction as SstFunction };
}

/**
 * `genai.metering.*` entries no consumer takes go to the catch rule's queue (the ingest), which
 * quarantines them with their reason instead of EventBridge dropping them silently. One rule per
 * pattern of UNCONSUMED_METERING_RULE (disjoint patterns: no entry is delivered twice).
 */
function catchRule(stack: Stack, bus: EventBus, consumers: QueueConsumer[]): void {
  const rule = UNCONSUMED_METERING_RULE;
  const target = consumers.find((c) => c.rule.name === rule.target);
  if (!target) throw new Error(`the ${rule.name} rule targets '${rule.target}', which QUEUE_RULES does not have`);
  rule.patterns.forEach((pattern, i) => {
    new events.Rule(stack, `${pascal(rule.name)}${i + 1}`, {
      eventBus: bus.cdk.eventBus,
      description: `genai.metering.* entries no consumer takes (${i + 1}/${rule.patterns.length}) -> ${rule.target} queue, which quarantines them`,
      // Matchers ({ prefix }, { "anything-but" }) are EventBridge pattern syntax; CDK's types only say string[].
      eventPattern: { source: pattern.source as string[] | undefined, detailType: pattern["detail-type"] as string[] | undefined },
      targets: [new targets.SqsQueue(target.queue, { deadLetterQueue: target.dlq, retryAttempts: TARGET_RETRY_ATTEMPTS })],
    });
  });
}

function pascal(name: string): string {
  return name
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map((p) => p[0].toUpperCase() + p.slice(1))
    .join("");
}
