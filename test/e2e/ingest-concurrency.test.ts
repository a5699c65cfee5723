import { PutEventsCommand } from "@aws-sdk/client-eventbridge";
import type { SQSEvent } from "aws-lambda";
import { spawnSync } from "node:child_process";
import { afterAll, describe, expect, it } from "vitest";
import { INGEST_RULE } from "../../shared/events/rules";
import type { LocalQueueRule, LocalStack } from "../../local/stack";
import { eventBridgeClient, startTestStack } from "./stack-harness";

/**
 * Issue 13, item 4: the local queue runs up to N ingest batches at once, like the deployed event
 * source (`maxConcurrency`), instead of one at a time. (The CLI default is asserted by
 * crash-durability.test.ts, which starts `local/main.ts`.)
 */
describe("local ingest concurrency", () => {
  const stacks: LocalStack[] = [];
  afterAll(async () => {
    for (const s of stacks) await s.stop();
  });

  /** A stand-in ingest rule whose handler takes 150 ms and records how many batches overlap. */
  function slowIngest() {
    let running = 0;
    const seen = { max: 0, records: 0 };
    const rule: LocalQueueRule = {
      ...INGEST_RULE,
      pattern: { source: ["test.concurrency"] },
      batchSize: 5,
      maxBatchingWindowSeconds: 0,
      handler: async (event: SQSEvent) => {
        running++;
        seen.max = Math.max(seen.max, running);
        await new Promise((r) => setTimeout(r, 150));
        seen.records += event.Records.length;
        running--;
      },
    };
    return { rule, seen };
  }

  async function run(opts: { concurrencyByRule?: Record<string, number> }) {
    const { rule, seen } = slowIngest();
    const { stack } = await startTestStack({ rules: [rule], batchingWindowMs: 0, ...opts });
    stacks.push(stack);
    const client = eventBridgeClient(stack);
    // 40 messages = 8 batches of 5, all enqueued before the first batch ends
    for (let i = 0; i < 40; i += 10) {
      const out = await client.send(
        new PutEventsCommand({
          Entries: Array.from({ length: 10 }, (_, j) => ({ Source: "test.concurrency", DetailType: "T", Detail: JSON.stringify({ k: i + j }), EventBusName: stack.busName })),
        }),
      );
      expect(out.FailedEntryCount).toBe(0);
    }
    await stack.drain({ timeoutMs: 30_000 });
    client.destroy();
    return { seen, stats: stack.queues()[0] };
  }

  it("runs up to N batches of the ingest queue at once with concurrencyByRule (what --ingest-concurrency sets)", async () => {
    const { seen, stats } = await run({ concurrencyByRule: { [INGEST_RULE.name]: 3 } });
    expect(stats.concurrency).toBe(3);
    expect(seen.max).toBe(3);
    expect(seen.records).toBe(40);
  });

  it("runs one batch at a time without it (the programmatic default, for deterministic tests)", async () => {
    const { seen, stats } = await run({});
    expect(stats.concurrency).toBe(1);
    expect(seen.max).toBe(1);
    expect(seen.records).toBe(40);
  });

  it("the CLI refuses an --ingest-concurrency that is not a positive integer, before starting anything", () => {
    const r = spawnSync(process.execPath, ["--import", "tsx", "local/main.ts", "--ingest-concurrency", "0"], { encoding: "utf8", timeout: 60_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--ingest-concurrency must be an integer from 1 to 100, got '0'/);
  });
});
