import { EventBridgeClient, PutEventsCommand, type PutEventsCommandInput } from "@aws-sdk/client-eventbridge";
import { mockClient } from "aws-sdk-client-mock";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { INVOCATION_DETAIL_TYPE, INVOCATION_SOURCES } from "../../../shared/events/invocation";
import { PIPELINE_METRICS } from "../../../shared/observability/metric-names";
import { createUsageEmitter } from "../../../shared/dataplane/adapters/eventbridge";
import { PUT_EVENTS_MAX_BYTES } from "../../../shared/dataplane/batching";
import type { DataplaneLogger, DataplaneMetrics } from "../../../shared/dataplane/ports";
import { invocation } from "../../helpers/events";

const eb = mockClient(EventBridgeClient);

function fakeLogger() {
  const warn = vi.fn<DataplaneLogger["warn"]>();
  const error = vi.fn<DataplaneLogger["error"]>();
  return { warn, error };
}

function emitterWith(over: Partial<Parameters<typeof createUsageEmitter>[0]> = {}) {
  const logger = fakeLogger();
  const counts: Array<[string, number]> = [];
  const metrics: DataplaneMetrics = { count: (name, value) => counts.push([name, value]) };
  const sleeps: number[] = [];
  const emitter = createUsageEmitter({
    client: new EventBridgeClient({ region: "us-west-2" }),
    eventBusName: "metering",
    flushIntervalMs: 0,
    logger,
    metrics,
    sleep: async (ms) => void sleeps.push(ms),
    random: () => 0.5,
    ...over,
  });
  return { emitter, logger, counts, sleeps };
}

function sentEntries() {
  return eb.commandCalls(PutEventsCommand).flatMap((c) => (c.args[0].input as PutEventsCommandInput).Entries ?? []);
}

beforeEach(() => {
  eb.reset();
  eb.on(PutEventsCommand).callsFake((input: PutEventsCommandInput) => ({
    FailedEntryCount: 0,
    Entries: (input.Entries ?? []).map((_, i) => ({ EventId: `eb-${i}` })),
  }));
});
afterEach(() => vi.restoreAllMocks());

describe("UsageEmitter", () => {
  it("sends buffered events in PutEvents batches of at most 10 entries and 256 KiB", async () => {
    const { emitter } = emitterWith();
    const events = Array.from({ length: 25 }, () => invocation());
    for (const e of events) expect(emitter.emit(e, INVOCATION_SOURCES.bedrock)).toBe(true);
    await emitter.flush();

    const calls = eb.commandCalls(PutEventsCommand);
    expect(calls.length).toBe(3);
    for (const call of calls) {
      const entries = call.args[0].input.Entries ?? [];
      expect(entries.length).toBeLessThanOrEqual(10);
      const bytes = entries.reduce((s, e) => s + Buffer.byteLength(e.Source!) + Buffer.byteLength(e.DetailType!) + Buffer.byteLength(e.Detail!), 0);
      expect(bytes).toBeLessThanOrEqual(PUT_EVENTS_MAX_BYTES);
    }
    const entries = sentEntries();
    expect(entries.map((e) => JSON.parse(e.Detail!).eventId)).toEqual(events.map((e) => e.eventId));
    expect(entries[0]).toMatchObject({ Source: INVOCATION_SOURCES.bedrock, DetailType: INVOCATION_DETAIL_TYPE, EventBusName: "metering" });
    expect(emitter.stats).toMatchObject({ sent: 25, failed: 0, retried: 0, dropped: 0, buffered: 0 });
  });

  it("retries only the entries EventBridge reported as failed, with backoff", async () => {
    let call = 0;
    eb.on(PutEventsCommand).callsFake((input: PutEventsCommandInput) => {
      call++;
      const n = input.Entries?.length ?? 0;
      if (call === 1) {
        return {
          FailedEntryCount: 2,
          Entries: Array.from({ length: n }, (_, i) =>
            i === 1 || i === 3 ? { ErrorCode: "ThrottlingException", ErrorMessage: "slow down" } : { EventId: `e${i}` },
          ),
        };
      }
      return { FailedEntryCount: 0, Entries: Array.from({ length: n }, (_, i) => ({ EventId: `r${i}` })) };
    });
    const { emitter, sleeps } = emitterWith();
    const events = Array.from({ length: 5 }, () => invocation());
    for (const e of events) emitter.emit(e, INVOCATION_SOURCES.bedrock);
    await emitter.flush();

    const calls = eb.commandCalls(PutEventsCommand);
    expect(calls).toHaveLength(2);
    expect((calls[1].args[0].input.Entries ?? []).map((e) => JSON.parse(e.Detail!).eventId)).toEqual([events[1].eventId, events[3].eventId]);
    expect(emitter.stats).toMatchObject({ sent: 5, retried: 2, failed: 0 });
    expect(sleeps).toHaveLength(1);
    expect(sleeps[0]).toBeGreaterThan(0);
  });

  it("retries a whole failed call, then gives up after maxAttempts and logs the event ids", async () => {
    eb.on(PutEventsCommand).rejects(new Error("socket hang up"));
    const failed = vi.fn();
    const { emitter, logger, sleeps } = emitterWith({ maxAttempts: 3, onFailed: failed });
    const e = invocation();
    emitter.emit(e, INVOCATION_SOURCES.sagemaker);
    await emitter.flush();

    expect(eb.commandCalls(PutEventsCommand)).toHaveLength(3);
    expect(sleeps).toHaveLength(2);
    expect(sleeps[1]).toBeGreaterThanOrEqual(sleeps[0]); // exponential (same jitter draw)
    expect(emitter.stats).toMatchObject({ sent: 0, failed: 1, retried: 2, buffered: 0 });
    expect(failed).toHaveBeenCalledWith([e], "Error");
    expect(logger.error).toHaveBeenCalledWith("usage events not delivered", expect.objectContaining({ events: [`${e.tenantId}/${e.eventId}`] }));
  });

  it("does not retry entries with a permanent error code", async () => {
    eb.on(PutEventsCommand).resolves({ FailedEntryCount: 1, Entries: [{ ErrorCode: "MalformedDetail", ErrorMessage: "bad" }] });
    const { emitter } = emitterWith();
    emitter.emit(invocation(), INVOCATION_SOURCES.bedrock);
    await emitter.flush();
    expect(eb.commandCalls(PutEventsCommand)).toHaveLength(1);
    expect(emitter.stats).toMatchObject({ failed: 1, retried: 0 });
  });

  it("drops events beyond the buffer bound only after counting them in EmitterBufferOverflow and warning", async () => {
    const { emitter, logger, counts } = emitterWith({ maxBuffered: 3, flushAt: 100 });
    const accepted = Array.from({ length: 5 }, () => emitter.emit(invocation(), INVOCATION_SOURCES.bedrock));
    expect(accepted).toEqual([true, true, true, false, false]);
    expect(counts).toEqual([
      [PIPELINE_METRICS.emitterDropped, 1],
      [PIPELINE_METRICS.emitterDropped, 1],
    ]);
    expect(emitter.stats).toMatchObject({ dropped: 2, buffered: 3 });
    expect(logger.warn).toHaveBeenCalledWith(
      "usage event dropped (buffer full)",
      expect.objectContaining({ droppedTotal: 1, metric: "EmitterBufferOverflow" }),
    );
    await emitter.flush();
    expect(sentEntries()).toHaveLength(3);
  });

  it("rejects an event that fails the v1 schema without throwing", () => {
    const { emitter, logger } = emitterWith();
    expect(emitter.emit(invocation({ tenantId: "bad#tenant" }), INVOCATION_SOURCES.bedrock)).toBe(false);
    expect(emitter.stats).toMatchObject({ invalid: 1, buffered: 0 });
    expect(logger.error).toHaveBeenCalledOnce();
  });

  it("flushes on close and refuses (and counts) events after it", async () => {
    const { emitter, counts } = emitterWith({ flushAt: 100 });
    emitter.emit(invocation(), INVOCATION_SOURCES.bedrock);
    emitter.emit(invocation(), INVOCATION_SOURCES.bedrock);
    expect(eb.commandCalls(PutEventsCommand)).toHaveLength(0);
    await emitter.close();
    expect(sentEntries()).toHaveLength(2);
    expect(emitter.emit(invocation(), INVOCATION_SOURCES.bedrock)).toBe(false);
    expect(emitter.stats.dropped).toBe(1);
    expect(counts).toHaveLength(1);
  });

  it("flushes in the background on its timer", async () => {
    const { emitter } = emitterWith({ flushIntervalMs: 5, flushAt: 100 });
    emitter.emit(invocation(), INVOCATION_SOURCES.bedrock);
    await vi.waitFor(() => expect(sentEntries()).toHaveLength(1));
    await emitter.close();
  });

  it("starts sending as soon as a full batch is buffered, without waiting for the timer", async () => {
    const { emitter } = emitterWith({ flushIntervalMs: 0 });
    for (let i = 0; i < 10; i++) emitter.emit(invocation(), INVOCATION_SOURCES.bedrock);
    await vi.waitFor(() => expect(sentEntries()).toHaveLength(10));
  });

  it("registers the optional beforeExit flush only when asked, and removes it on close", async () => {
    const before = process.listenerCount("beforeExit");
    const { emitter: plain } = emitterWith();
    expect(process.listenerCount("beforeExit")).toBe(before);
    const { emitter } = emitterWith({ flushOnBeforeExit: true });
    expect(process.listenerCount("beforeExit")).toBe(before + 1);
    await emitter.close();
    await plain.close();
    expect(process.listenerCount("beforeExit")).toBe(before);
  });
});
