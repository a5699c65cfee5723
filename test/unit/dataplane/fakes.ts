import type { InvocationEventV1, InvocationSource } from "../../../shared/events/invocation";
import { invocationEventV1Schema } from "../../../shared/events/invocation";
import type { UsageSink } from "../../../shared/dataplane/ports";

/** Collects what a wrapper emits, checking each event against the v1 contract like the emitter would. */
export class CollectingSink implements UsageSink {
  readonly events: InvocationEventV1[] = [];
  readonly sources: InvocationSource[] = [];
  emit(event: InvocationEventV1, source: InvocationSource): boolean {
    invocationEventV1Schema.parse(event);
    this.events.push(event);
    this.sources.push(source);
    return true;
  }
}

export const quietLogger = { warn: () => undefined, error: () => undefined };

const enc = new TextEncoder();
export const bytes = (v: unknown) => enc.encode(typeof v === "string" ? v : JSON.stringify(v));

/** An async iterable over items that records whether the consumer closed it early. */
export function trackedStream<T>(items: T[], failAfter?: number) {
  const state = { returned: false, yielded: 0 };
  async function* gen() {
    try {
      for (const item of items) {
        if (failAfter !== undefined && state.yielded >= failAfter) throw new Error("stream reset");
        state.yielded++;
        yield item;
      }
    } finally {
      state.returned = true;
    }
  }
  return { stream: gen(), state };
}
