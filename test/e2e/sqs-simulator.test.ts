import { PutEventsCommand, type EventBridgeClient } from "@aws-sdk/client-eventbridge";
import type { SQSBatchResponse, SQSEvent, SQSRecord } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LocalQueueRule, LocalStack } from "../../local/stack";
import type { DeadLetter } from "../../local/sqs";
import { eventBridgeClient, startTestStack } from "./stack-harness";

interface Seen {
  rule: string;
  key: string;
  receiveCount: number;
  batch: number;
}

/**
 * One local stack with test rules (handlers injected as functions, so this does not depend
 * on the pipeline's own handlers). Each test uses its own source, hence its own queue.
 */
describe("local SQS simulator (event source mapping semantics)", () => {
  let stack: LocalStack;
  let client: EventBridgeClient;
  const seen: Seen[] = [];
  const batchSizes = new Map<string, number[]>();
  const thrownOnce = new Set<string>();
  let batchSeq = 0;

  const keyOf = (r: SQSRecord) => (JSON.parse(r.body) as { detail: { key: string } }).detail.key;
  const rule = (name: string, handler: (event: SQSEvent, batch: number) => unknown, batchSize = 10): LocalQueueRule => ({
    name,
    pattern: { source: [`test.${name}`] },
    handler: async (event: SQSEvent) => {
      const batch = batchSeq++;
      (batchSizes.get(name) ?? batchSizes.set(name, []).get(name)!).push(event.Records.length);
      for (const r of event.Records) seen.push({ rule: name, key: keyOf(r), receiveCount: Number(r.attributes.ApproximateReceiveCount), batch });
      return handler(event, batch);
    },
    batchSize,
    maxReceiveCount: 3,
    visibilityTimeoutSeconds: 30,
    maxBatchingWindowSeconds: 0,
    maxConcurrency: 2,
  });

  beforeAll(async () => {
    ({ stack } = await startTestStack({
      visibilityTimeoutMs: 30,
      batchingWindowMs: 20,
      rules: [
        // fails every message whose key starts with "flaky" on its first receive
        rule("flaky", (event): SQSBatchResponse => ({
          batchItemFailures: event.Records.filter((r) => keyOf(r).startsWith("flaky") && r.attributes.ApproximateReceiveCount === "1").map(
            (r) => ({ itemIdentifier: r.messageId }),
          ),
        })),
        // never accepts "poison"
        rule("poison", (event): SQSBatchResponse => ({
          batchItemFailures: event.Records.filter((r) => keyOf(r) === "poison").map((r) => ({ itemIdentifier: r.messageId })),
        })),
        // throws the first time it sees a batch containing "boom"
        rule("thrower", (event) => {
          const keys = event.Records.map(keyOf);
          if (keys.includes("boom") && !thrownOnce.has("boom")) {
            thrownOnce.add("boom");
            throw new Error("downstream unavailable");
          }
          return { batchItemFailures: [] };
        }),
        // reports an identifier that is not in the batch: Lambda fails the whole batch
        rule("bogus", (event): SQSBatchResponse =>
          event.Records.some((r) => r.attributes.ApproximateReceiveCount === "1") ? { batchItemFailures: [{ itemIdentifier: "not-a-message-id" }] } : { batchItemFailures: [] },
        ),
        rule("sizes", () => undefined, 10),
      ],
    }));
    client = eventBridgeClient(stack);
  });
  afterAll(async () => {
    client?.destroy();
    await stack?.stop();
  });

  async function publish(source: string, keys: string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += 10) {
      const out = await client.send(
        new PutEventsCommand({
          Entries: keys.slice(i, i + 10).map((key) => ({ Source: `test.${source}`, DetailType: "Test", Detail: JSON.stringify({ key }), EventBusName: stack.busName })),
        }),
      );
      expect(out.FailedEntryCount).toBe(0);
    }
  }
  const of = (name: string) => seen.filter((s) => s.rule === name);

  it("redelivers only the items reported in batchItemFailures, with a higher receive count", async () => {
    // act
    await publish("flaky", ["ok-1", "flaky-1", "ok-2", "flaky-2", "ok-3"]);
    await stack.drain({ timeoutMs: 10_000 });
    // assess
    const got = of("flaky");
    expect(got.filter((s) => s.key.startsWith("ok")).map((s) => [s.key, s.receiveCount]).sort()).toEqual([
      ["ok-1", 1],
      ["ok-2", 1],
      ["ok-3", 1],
    ]);
    expect(got.filter((s) => s.key.startsWith("flaky")).map((s) => [s.key, s.receiveCount]).sort()).toEqual([
      ["flaky-1", 1],
      ["flaky-1", 2],
      ["flaky-2", 1],
      ["flaky-2", 2],
    ]);
    expect(stack.deadLetters()).toEqual([]);
  });

  it("moves a message to the DLQ with its reason after maxReceiveCount receives, and lists it at /local/dlq", async () => {
    // act
    await publish("poison", ["good", "poison"]);
    await stack.drain({ timeoutMs: 10_000 });
    // assess
    expect(of("poison").filter((s) => s.key === "poison").map((s) => s.receiveCount)).toEqual([1, 2, 3]);
    expect(of("poison").filter((s) => s.key === "good").map((s) => s.receiveCount)).toEqual([1]);
    const res = await fetch(`${stack.url}/local/dlq?queue=local-poison-queue`);
    const { deadLetters } = (await res.json()) as { deadLetters: DeadLetter[] };
    expect(deadLetters).toHaveLength(1);
    expect(deadLetters[0]).toMatchObject({ queue: "local-poison-queue", receiveCount: 3, reason: "reported in batchItemFailures" });
    expect(JSON.parse(deadLetters[0].body).detail).toEqual({ key: "poison" });
    const queues = (await (await fetch(`${stack.url}/local/queues`)).json()) as { queues: { rule: string; deadLetters: number; visible: number; inFlight: number }[] };
    expect(queues.queues.find((q) => q.rule === "poison")).toMatchObject({ deadLetters: 1, visible: 0, inFlight: 0 });
  });

  it("retries the whole batch when the handler throws", async () => {
    // act
    await publish("thrower", ["a", "boom", "c"]);
    await stack.drain({ timeoutMs: 10_000 });
    // assess: all three were in the failed batch and all three came back once
    const got = of("thrower");
    expect(got.map((s) => [s.key, s.receiveCount]).sort()).toEqual([
      ["a", 1],
      ["a", 2],
      ["boom", 1],
      ["boom", 2],
      ["c", 1],
      ["c", 2],
    ]);
    expect(stack.deadLetters().filter((d) => d.queue === "local-thrower-queue")).toEqual([]);
  });

  it("fails the whole batch when batchItemFailures names an unknown message, as Lambda does", async () => {
    await publish("bogus", ["x", "y"]);
    await stack.drain({ timeoutMs: 10_000 });
    expect(of("bogus").map((s) => [s.key, s.receiveCount]).sort()).toEqual([
      ["x", 1],
      ["x", 2],
      ["y", 1],
      ["y", 2],
    ]);
  });

  it("delivers batches of at most batchSize, one batch at a time, every message once", async () => {
    // act
    const keys = Array.from({ length: 25 }, (_, i) => `m-${i}`);
    await publish("sizes", keys);
    await stack.drain({ timeoutMs: 10_000 });
    // assess
    const sizes = batchSizes.get("sizes")!;
    expect(Math.max(...sizes)).toBeLessThanOrEqual(10);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(25);
    expect(of("sizes").map((s) => s.key).sort()).toEqual([...keys].sort());
  });
});
