import { EventBridgeClient, PutEventsCommand, type EventBridgeClientConfig } from "@aws-sdk/client-eventbridge";
import type { BusEntry } from "../batching";
import { UsageEmitter, type BusPublisher, type PutEntryResult, type UsageEmitterOptions } from "../emitter";

/** {@link BusPublisher} over PutEvents: maps per-entry `ErrorCode`s; a whole-call failure throws. */
export class EventBridgePublisher implements BusPublisher {
  constructor(private readonly client: EventBridgeClient) {}

  async put(entries: readonly BusEntry[]): Promise<PutEntryResult[]> {
    const out = await this.client.send(
      new PutEventsCommand({
        Entries: entries.map((e) => ({
          Source: e.source,
          DetailType: e.detailType,
          Detail: e.detail,
          EventBusName: e.eventBusName,
          Time: e.time,
          Resources: e.resources,
        })),
      }),
    );
    const results = out.Entries ?? [];
    return entries.map((_, i): PutEntryResult => {
      const r = results[i];
      if (r?.ErrorCode) return { ok: false, errorCode: r.ErrorCode, errorMessage: r.ErrorMessage };
      // No result for an entry while others failed: treat as failed, so it is retried, not lost.
      if (!r || (!r.EventId && (out.FailedEntryCount ?? 0) > 0)) return { ok: false, errorCode: "MissingResult" };
      return { ok: true };
    });
  }
}

export interface CreateUsageEmitterOptions extends Omit<UsageEmitterOptions, "publisher"> {
  /** An existing client, or config for a new one (`endpoint: "http://127.0.0.1:<port>"` for the local bus). */
  client?: EventBridgeClient;
  clientConfig?: EventBridgeClientConfig;
}

/** A {@link UsageEmitter} publishing to EventBridge. */
export function createUsageEmitter(opts: CreateUsageEmitterOptions): UsageEmitter {
  const { client, clientConfig, ...rest } = opts;
  return new UsageEmitter({ ...rest, publisher: new EventBridgePublisher(client ?? new EventBridgeClient(clientConfig ?? {})) });
}
