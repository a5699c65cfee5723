import { describe, expect, it } from "vitest";
import { coalesce, coalesceCounting, correctionDeltas, targetId, targetsOf } from "../../../shared/usage/coalesce";
import { zeroCounters, type PricedEvent } from "../../../shared/usage/model";
import { daysBetween, monthsBetween, periodsOf } from "../../../shared/usage/periods";
import { invocation } from "../../helpers/events";

function priced(over: Parameters<typeof invocation>[0] = {}): PricedEvent {
  const event = invocation(over);
  const counters = zeroCounters();
  counters.requests = 1;
  counters.inputTokens = event.inputTokens;
  counters.outputTokens = event.outputTokens;
  counters.costNanoUsd = 10;
  return { event, baseModelId: event.modelId, counters };
}

describe("periods", () => {
  it("derives UTC month/day/hour/minute from the event time, whatever the offset", () => {
    expect(periodsOf("2026-12-01T08:30:00+09:00")).toEqual({ month: "2026-11", day: "2026-11-30", hour: "2026-11-30T23", minute: "2026-11-30T23:30" });
  });
  it("enumerates days and months across year ends", () => {
    expect(daysBetween("2026-12-30", "2027-01-02")).toEqual(["2026-12-30", "2026-12-31", "2027-01-01", "2027-01-02"]);
    expect(monthsBetween("2026-11", "2027-02")).toEqual(["2026-11", "2026-12", "2027-01", "2027-02"]);
  });
});

describe("coalescing", () => {
  it("sums events of one tenant/model/hour into one delta per aggregate item", () => {
    const events = Array.from({ length: 50 }, () => priced({ occurredAt: "2026-11-25T10:15:00Z" }));
    const deltas = coalesce(events);
    expect(deltas).toHaveLength(6); // month, day, hour, model-month, model-day, model-hour (the minute rides on the hour)
    for (const d of deltas) {
      expect(d.counters.requests).toBe(50);
      expect(d.counters.inputTokens).toBe(50 * 307);
      expect(d.counters.costNanoUsd).toBe(500);
    }
  });

  it("puts the minute windows on the tenant-hour delta only: requests and tokens (input + output + cache write) per minute", () => {
    const events = [
      ...Array.from({ length: 3 }, () => priced({ occurredAt: "2026-11-25T10:15:10Z" })),
      priced({ occurredAt: "2026-11-25T10:16:59Z" }),
      priced({ occurredAt: "2026-11-25T11:00:00Z" }),
    ];
    events[0].counters.cacheWriteInputTokens = 1000;
    events[0].counters.cacheReadInputTokens = 5000; // not counted by the limits
    const deltas = coalesce(events);
    const withMinutes = deltas.filter((d) => d.minutes);
    expect(withMinutes.map((d) => d.target)).toEqual([
      { kind: "tenant", tenantId: "tenant-a", granularity: "hour", period: "2026-11-25T10" },
      { kind: "tenant", tenantId: "tenant-a", granularity: "hour", period: "2026-11-25T11" },
    ]);
    expect(withMinutes[0].minutes).toEqual({
      "2026-11-25T10:15": { requests: 3, tokens: 3 * (307 + 533) + 1000 },
      "2026-11-25T10:16": { requests: 1, tokens: 307 + 533 },
    });
    expect(withMinutes[1].minutes).toEqual({ "2026-11-25T11:00": { requests: 1, tokens: 307 + 533 } });
  });

  it("leaves the minute windows out of corrections", () => {
    const before = priced({ occurredAt: "2026-11-25T10:15:10Z" });
    const after = { ...before, counters: { ...before.counters, requests: 0, inputTokens: 100 } };
    const deltas = correctionDeltas([after]);
    expect(deltas).toHaveLength(6);
    expect(deltas.some((d) => d.minutes !== undefined)).toBe(false);
  });

  it("puts a late event into its own period and SageMaker events on the endpoint-hour", () => {
    const late = priced({ occurredAt: "2026-10-31T23:59:59Z", provider: "sagemaker", endpointName: "llama", modelId: "llama" });
    const ids = targetsOf(late).map((t) => JSON.stringify(t));
    expect(ids.some((t) => t.includes('"period":"2026-10"'))).toBe(true);
    expect(targetsOf(late).find((t) => t.kind === "endpoint")).toMatchObject({ endpointName: "llama", hour: "2026-10-31T23" });
  });

  it("puts a hot tenant's whole batch on one delta per aggregate item, however many events it has", () => {
    const events = Array.from({ length: 2000 }, (_, i) => priced({ tenantId: "hot", occurredAt: `2026-11-25T10:0${i % 2}:00Z` }));
    const deltas = coalesceCounting(events.map((event) => ({ event })));
    expect(deltas).toHaveLength(6); // month, day, hour, model month, day and hour (both minutes on the hour item)
    expect(deltas.every((d) => d.counters.requests === 2000)).toBe(true);
    expect(deltas.find((d) => d.target.kind === "tenant" && d.target.granularity === "hour")?.minutes).toEqual({
      "2026-11-25T10:00": expect.objectContaining({ requests: 1000 }),
      "2026-11-25T10:01": expect.objectContaining({ requests: 1000 }),
    });
  });

  it("adds a taken-over event only to the items its dead holder's writes did not reach", () => {
    const a = priced({ tenantId: "k", occurredAt: "2026-11-25T10:00:00Z" });
    const b = priced({ tenantId: "k", occurredAt: "2026-11-25T10:00:00Z" });
    const reached = new Set(targetsOf(a).slice(0, 4).map(targetId));
    const deltas = coalesceCounting([{ event: a, skip: reached }, { event: b }]);
    for (const d of deltas) expect(d.counters.requests, targetId(d.target)).toBe(reached.has(targetId(d.target)) ? 1 : 2);
  });
});
