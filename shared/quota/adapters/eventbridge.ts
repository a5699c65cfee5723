import { PutEventsCommand, type EventBridgeClient } from "@aws-sdk/client-eventbridge";
import { ENFORCEMENT_DETAIL_TYPES, ENFORCEMENT_SOURCE, type EnforcementEventDetail } from "../events";
import type { EnforcementPublisher, PublishResult } from "../ports";

/** EventBridge adapter of {@link EnforcementPublisher}: one PutEvents call per (<= 10) details. */
export class EventBridgeEnforcementPublisher implements EnforcementPublisher {
  constructor(
    private readonly client: EventBridgeClient,
    private readonly eventBusName: string,
  ) {}

  async publish(details: readonly EnforcementEventDetail[]): Promise<PublishResult> {
    if (details.length === 0) return { published: [], failed: [] };
    if (details.length > 10) throw new RangeError("PutEvents takes at most 10 entries");
    const res = await this.client.send(
      new PutEventsCommand({
        Entries: details.map((d) => ({
          EventBusName: this.eventBusName,
          Source: ENFORCEMENT_SOURCE,
          DetailType: ENFORCEMENT_DETAIL_TYPES[d.action],
          Detail: JSON.stringify(d),
          Time: new Date(d.occurredAt),
          Resources: [],
        })),
      }),
    );
    // Entries come back in request order; a failed entry carries an ErrorCode instead of an EventId.
    const out: PublishResult = { published: [], failed: [] };
    details.forEach((d, i) => {
      const e = res.Entries?.[i];
      if (e?.EventId && !e.ErrorCode) out.published.push(d.enforcementId);
      else out.failed.push({ enforcementId: d.enforcementId, reason: e?.ErrorCode ? `${e.ErrorCode}: ${e.ErrorMessage ?? ""}` : "no result entry" });
    });
    return out;
  }
}
