import { INVOCATION_SOURCES } from "../events/invocation";
import type { QuarantineRecord } from "../usage/ports";
import type { RejectedRecord, RejectedRecordSink } from "./ports";

/**
 * Keeps rejected log records in the ingest's quarantine (the same listing operators read
 * through GET /quarantine), with reason `invocation-log:<reason>`, the S3 location and line, the
 * request id, the claimed tenant and the record's shape: never the record, whose
 * `input.inputBodyJson` / `output.outputBodyJson` hold the prompt and the answer.
 * Keyed by object and line, so a redelivered object rewrites its own quarantine items.
 */
export function quarantineRejected(
  store: { quarantine(record: QuarantineRecord): Promise<void> },
  clock: () => Date = () => new Date(),
): RejectedRecordSink {
  return {
    async keep(records: readonly RejectedRecord[]) {
      const receivedAt = clock().toISOString();
      for (const r of records) {
        await store.quarantine({
          // '#' is the key delimiter of the table: S3 keys may contain it.
          messageId: `invocation-log:${r.bucket}/${r.key}:${r.line}`.replaceAll("#", "%23"),
          receivedAt,
          reason: `invocation-log:${r.reason}`,
          message: `s3://${r.bucket}/${r.key} line ${r.line}: ${r.message}`,
          shape: r.shape,
          source: INVOCATION_SOURCES.invocationLog,
          tenantId: r.tenantId,
          eventId: r.requestId,
        });
      }
    },
  };
}
