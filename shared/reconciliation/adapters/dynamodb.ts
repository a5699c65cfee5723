import { ConditionalCheckFailedException } from "@aws-sdk/client-dynamodb";
import { GetCommand, PutCommand, UpdateCommand, type DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { keys } from "../../storage/keys";
import type { SignalRecord, SignalStore } from "../ports";

/** One item per reconciled hour: the digest of its last report and the unmetered tokens it signalled. */
export class DynamoSignalStore implements SignalStore {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly opts: { ttlDays?: number } = {},
  ) {}

  async record(hour: string, digest: string, unmeteredTokens: number, now: Date): Promise<SignalRecord> {
    const key = keys.reconciliationSignal(hour);
    for (let attempt = 0; attempt < 5; attempt++) {
      const current = await this.doc.send(new GetCommand({ TableName: this.tableName, Key: key, ConsistentRead: true }));
      const item = current.Item as { digest?: string; unmeteredTokens?: number } | undefined;
      try {
        if (!item) {
          await this.doc.send(
            new PutCommand({
              TableName: this.tableName,
              Item: { ...key, type: "reconciliation-signal", hour, digest, unmeteredTokens, at: now.toISOString(), expiresAt: this.expiresAt(now) },
              // two runs of the same hour at once: only one of them signals the hour as new
              ConditionExpression: "attribute_not_exists(pk)",
            }),
          );
          return { kind: "new" };
        }
        if (item.digest === digest) return { kind: "same" };
        await this.doc.send(
          new UpdateCommand({
            TableName: this.tableName,
            Key: key,
            UpdateExpression: "SET digest = :d, unmeteredTokens = :u, #at = :at",
            // two runs that both saw the old report: only one emits the difference to it
            ConditionExpression: "digest = :old",
            ExpressionAttributeNames: { "#at": "at" },
            ExpressionAttributeValues: { ":d": digest, ":u": unmeteredTokens, ":at": now.toISOString(), ":old": item.digest },
          }),
        );
        return { kind: "changed", previousUnmeteredTokens: Number(item.unmeteredTokens ?? 0) };
      } catch (error) {
        if (!(error instanceof ConditionalCheckFailedException)) throw error;
        // another run of the hour wrote first: read what it wrote and decide again
      }
    }
    throw new Error(`reconciliation signal of hour ${hour}: five concurrent writers in a row`);
  }

  private expiresAt(now: Date): number {
    return Math.floor(now.getTime() / 1000 + (this.opts.ttlDays ?? 400) * 86_400);
  }
}
