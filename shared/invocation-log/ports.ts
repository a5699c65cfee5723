import type { RecordShape } from "../usage/quarantine";
import type { InvocationEventV1, InvocationSource } from "../events/invocation";

/** Port: reads one stored log object's bytes (gzip'd or plain). */
export interface ObjectReader {
  read(bucket: string, key: string): Promise<Uint8Array>;
}

/** Port: delivers events and reports whether everything emitted so far got through (a `UsageEmitter` fits). */
export interface EventSink {
  emit(event: InvocationEventV1, source: InvocationSource): boolean;
  flush(): Promise<void>;
  readonly stats: { failed: number; dropped: number; invalid: number };
}

/** A log record that could not become an event, kept with its reason for an operator (no content). */
export interface RejectedRecord {
  bucket: string;
  key: string;
  line: number;
  reason: string;
  message: string;
  /**
   * Field names and sizes of the record, never the record: with text delivery on, a log record
   * holds the whole prompt and answer.
   */
  shape: RecordShape;
  requestId?: string;
  tenantId?: string;
}

/** Port: where rejected records are kept. */
export interface RejectedRecordSink {
  keep(records: readonly RejectedRecord[]): Promise<void>;
}
