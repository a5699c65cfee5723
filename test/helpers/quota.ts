import { UpdateCommand, type DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { expect } from "vitest";
import { addAndSetUpdate } from "../../shared/storage/adapters/dynamodb";
import { createQuotaEvaluator } from "../../shared/quota/adapters/wiring";
import { QuotaPublishError } from "../../shared/quota/errors";
import type { TierName } from "../../shared/quota/tiers";
import { keys } from "../../shared/storage/keys";
import { RecordingPublisher } from "../unit/quota/fakes";

/**
 * Leaves one enforcement event pending in the tenant's outbox: a 1,000-token monthly quota
 * without warnings, `usage` ADDed to the tenant's month aggregate of `now`, then an evaluation
 * whose publish fails (the bus threw). Nothing evaluates the tenant again.
 */
export async function leavePendingEnforcement(
  doc: DynamoDBDocumentClient,
  table: string,
  opts: { tenantId: string; tier: TierName; usage: Record<string, number>; now: Date },
): Promise<void> {
  const { tenantId, now } = opts;
  const month = now.toISOString().slice(0, 7);
  const evaluator = (publisher: RecordingPublisher) => createQuotaEvaluator({ dynamo: doc, tableName: table, publisher, clock: () => now });
  await evaluator(new RecordingPublisher()).putConfig(tenantId, { tier: opts.tier, monthlyTokens: 1000, warningThresholds: [] });
  const aggregate = keys.aggregate(tenantId, { kind: "tenant", granularity: "month", period: month });
  await doc.send(new UpdateCommand(addAndSetUpdate(table, aggregate, opts.usage, {}).Update));
  const down = new RecordingPublisher();
  down.failNext = 1;
  await expect(evaluator(down).evaluate({ tenantId, month, minutes: [], now })).rejects.toBeInstanceOf(QuotaPublishError);
}
