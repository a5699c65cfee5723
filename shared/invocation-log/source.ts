import { gunzipSync } from "node:zlib";
import { INVOCATION_SOURCES } from "../events/invocation";
import { parseInvocationLogText, type InvocationLogParseOptions } from "./parse";
import { describeShape } from "../usage/quarantine";
import type { EventSink, ObjectReader, RejectedRecord, RejectedRecordSink } from "./ports";

export class InvocationLogDeliveryError extends Error {
  constructor(
    message: string,
    readonly bucket: string,
    readonly key: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "InvocationLogDeliveryError";
  }
}

export interface ObjectResult {
  bucket: string;
  key: string;
  /** Set when the object is not an invocation log (permission probe, large-data payload). */
  skipped?: string;
  records: number;
  emitted: number;
  /** Records of calls that failed (`errorCode`): nothing to count; reported here. */
  failedInvocations: number;
  rejected: RejectedRecord[];
}

export interface InvocationLogSourceOptions {
  reader: ObjectReader;
  sink: EventSink;
  rejected: RejectedRecordSink;
  /** Parse options; `binding` decides which principals' tenant claims count. */
  parse: InvocationLogParseOptions;
  /**
   * Flush the sink after this many events, so a large object never outgrows the sink's
   * buffer (whose overflow drops events). Default 500.
   */
  flushEvery?: number;
}

/**
 * Turns one Bedrock invocation-log object into invocation events. Every record ends in exactly
 * one place: emitted as an event, reported as a failed invocation, or kept as rejected with
 * its reason. When events could not be delivered, or rejected records could not be kept, it
 * throws, so the trigger redelivers the object; re-emitted events are the same events (same
 * `eventId`), which the ingest ledger counts once.
 */
export class InvocationLogSource {
  constructor(private readonly opts: InvocationLogSourceOptions) {}

  async processObject(bucket: string, key: string): Promise<ObjectResult> {
    const result: ObjectResult = { bucket, key, records: 0, emitted: 0, failedInvocations: 0, rejected: [] };
    const skip = skipReason(key);
    if (skip) return { ...result, skipped: skip };

    const text = decode(await this.opts.reader.read(bucket, key));
    const before = { ...this.opts.sink.stats };
    let notAccepted = 0;
    for (const outcome of parseInvocationLogText(text, this.opts.parse)) {
      result.records++;
      if (outcome.kind === "event") {
        if (this.opts.sink.emit(outcome.event, INVOCATION_SOURCES.invocationLog)) result.emitted++;
        else notAccepted++;
        if ((result.emitted + notAccepted) % (this.opts.flushEvery ?? 500) === 0) await this.opts.sink.flush();
      } else if (outcome.kind === "failed-invocation") {
        result.failedInvocations++;
      } else {
        result.rejected.push({
          bucket,
          key,
          line: outcome.line,
          reason: outcome.error.reason,
          message: outcome.error.message,
          shape: describeShape(outcome.raw),
          requestId: outcome.error.requestId,
          tenantId: outcome.error.tenantId,
        });
      }
    }
    if (result.rejected.length > 0) await this.opts.rejected.keep(result.rejected);
    await this.opts.sink.flush();
    const after = this.opts.sink.stats;
    const lost = notAccepted + (after.failed - before.failed);
    if (lost > 0) {
      throw new InvocationLogDeliveryError(`${lost} of ${result.emitted + notAccepted} events from s3://${bucket}/${key} were not delivered`, bucket, key);
    }
    return result;
  }
}

/** Objects in the log bucket that are not invocation-log records. */
export function skipReason(key: string): string | undefined {
  const name = key.slice(key.lastIndexOf("/") + 1);
  if (name === "amazon-bedrock-logs-permission-check") return "permission-check object";
  // Large request/response bodies are delivered as separate objects under a `data/` folder.
  if (/(^|\/)data\//.test(key)) return "large-data payload object";
  if (!/\.json(\.gz)?$/.test(name)) return "not a .json or .json.gz object";
  return undefined;
}

function decode(bytes: Uint8Array): string {
  const gz = bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
  return new TextDecoder().decode(gz ? gunzipSync(bytes) : bytes);
}
