import type { Context, S3Event } from "aws-lambda";
import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { createInvocationLogHandler } from "../../../functions/s3/invocation-log";
import type { BusEntry } from "../../../shared/dataplane/batching";
import { UsageEmitter, type PutEntryResult } from "../../../shared/dataplane/emitter";
import { INVOCATION_SOURCES } from "../../../shared/events/invocation";
import type { RejectedRecord } from "../../../shared/invocation-log/ports";
import { quarantineRejected } from "../../../shared/invocation-log/quarantine";
import { trustMap } from "../../../shared/invocation-log/tenant-binding";
import { InvocationLogDeliveryError, InvocationLogSource, skipReason } from "../../../shared/invocation-log/source";
import type { QuarantineRecord } from "../../../shared/usage/ports";
import { converseRecord, invokeModelRecord, jsonLines } from "./samples";

const LOG_KEY = "logs/AWSLogs/123456789012/BedrockModelInvocationLogs/us-west-2/2026/11/25/14/20261125T140900Z_3f4b.json.gz";

function s3Event(bucket: string, ...keys: string[]): S3Event {
  return {
    Records: keys.map((key) => ({
      eventName: "ObjectCreated:Put",
      s3: { bucket: { name: bucket }, object: { key } },
    })),
  } as unknown as S3Event;
}

function setup(objects: Record<string, Uint8Array>, publish: (entries: readonly BusEntry[]) => PutEntryResult[] = (e) => e.map(() => ({ ok: true }))) {
  const sent: BusEntry[] = [];
  const kept: RejectedRecord[] = [];
  const emitter = new UsageEmitter({
    publisher: { put: async (entries) => (sent.push(...entries), publish(entries)) },
    eventBusName: "metering-bus",
    flushIntervalMs: 0,
    maxAttempts: 2,
    sleep: async () => undefined,
    logger: { warn: () => undefined, error: () => undefined },
  });
  const source = new InvocationLogSource({
    reader: { read: async (_bucket, key) => objects[key] ?? Promise.reject(new Error(`NoSuchKey ${key}`)) },
    sink: emitter,
    rejected: { keep: async (records) => void kept.push(...records) },
    parse: { binding: trustMap({ "*": ["*"] }) },
  });
  return { sent, kept, handler: createInvocationLogHandler(() => source) };
}

describe("invocation-log handler", () => {
  it("emits one event per attributed record of a gzip'd log object and keeps the others with their reason", async () => {
    const records = [converseRecord(), invokeModelRecord(), converseRecord({ requestId: "b2c4e6f8-0000-4000-8000-000000000001", requestMetadata: { tenantId: "tenant-a" } })];
    const { sent, kept, handler } = setup({ [LOG_KEY]: gzipSync(jsonLines(...records)) });

    const result = await handler(s3Event("bedrock-logs", LOG_KEY), {} as Context);

    expect(sent.map((e) => e.source)).toEqual([INVOCATION_SOURCES.invocationLog, INVOCATION_SOURCES.invocationLog]);
    expect(sent.map((e) => JSON.parse(e.detail).eventId)).toEqual(["915a6a04-3f83-4c70-a277-7fbf7ea546b3", "b2c4e6f8-0000-4000-8000-000000000001"]);
    expect(kept).toEqual([
      expect.objectContaining({ bucket: "bedrock-logs", key: LOG_KEY, line: 2, reason: "missing-tenant", requestId: "3abacd58-8693-4a25-b1c0-e80ab9efb812" }),
    ]);
    expect(result.objects[0]).toMatchObject({ records: 3, emitted: 2, rejected: 1, rejectReasons: { "missing-tenant": 1 } });
  });

  it("decodes URL-encoded S3 keys", async () => {
    const key = "logs/my folder/AWSLogs/x.json.gz";
    const { sent, handler } = setup({ [key]: gzipSync(jsonLines(converseRecord())) });
    await handler(s3Event("b", "logs/my+folder/AWSLogs/x.json.gz"), {} as Context);
    expect(sent).toHaveLength(1);
  });

  it("skips objects that are not invocation logs", async () => {
    const { sent, handler } = setup({});
    const result = await handler(s3Event("b", "logs/AWSLogs/123/BedrockModelInvocationLogs/amazon-bedrock-logs-permission-check"), {} as Context);
    expect(result.objects[0].skipped).toBe("permission-check object");
    expect(sent).toHaveLength(0);
    expect(skipReason("logs/AWSLogs/1/BedrockModelInvocationLogs/us-west-2/2026/11/25/14/data/abc.json")).toBe("large-data payload object");
  });

  it("fails the invocation when events could not be delivered, so the object is redelivered", async () => {
    const { handler } = setup({ [LOG_KEY]: gzipSync(jsonLines(converseRecord())) }, (e) => e.map(() => ({ ok: false, errorCode: "InternalFailure" })));
    await expect(handler(s3Event("b", LOG_KEY), {} as Context)).rejects.toBeInstanceOf(InvocationLogDeliveryError);
  });

  it("fails the invocation when the object cannot be read", async () => {
    const { handler } = setup({});
    await expect(handler(s3Event("b", LOG_KEY), {} as Context)).rejects.toThrow("NoSuchKey");
  });
});

describe("quarantineRejected", () => {
  it("keeps rejected records in the ingest quarantine with reason, location and a key-safe message id", async () => {
    const stored: QuarantineRecord[] = [];
    const sink = quarantineRejected({ quarantine: async (r) => void stored.push(r) }, () => new Date("2026-11-25T15:00:00.000Z"));
    await sink.keep([{ bucket: "b", key: "a#b.json.gz", line: 7, reason: "missing-tenant", message: "no tenant", shape: { bytes: 2, json: true, fields: ["(root): object(0)"] }, requestId: "r-1" }]);
    expect(stored).toEqual([
      {
        messageId: "invocation-log:b/a%23b.json.gz:7",
        receivedAt: "2026-11-25T15:00:00.000Z",
        reason: "invocation-log:missing-tenant",
        message: "s3://b/a#b.json.gz line 7: no tenant",
        shape: { bytes: 2, json: true, fields: ["(root): object(0)"] },
        source: INVOCATION_SOURCES.invocationLog,
        tenantId: undefined,
        eventId: "r-1",
      },
    ]);
  });
});
