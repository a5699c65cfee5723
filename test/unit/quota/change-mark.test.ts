import { describe, expect, it } from "vitest";
import type { Transition } from "../../../shared/quota/model";
import { changeMonths, QuotaEvaluator } from "../../../shared/quota/service";
import { InMemoryQuotaStore, RecordingPublisher } from "./fakes";

/** The in-memory store, recording the change marks and the writes they bracket, in order. */
class MarkingStore extends InMemoryQuotaStore {
  trail: string[] = [];
  async changeBegins(tenantId: string, months: readonly string[]): Promise<boolean[]> {
    this.trail.push(`begin ${tenantId} ${months.join(",")}`);
    return months.map(() => true);
  }
  async changeEnds(tenantId: string, months: readonly string[]): Promise<void> {
    this.trail.push(`end ${tenantId} ${months.join(",")}`);
  }
  async apply(tenantId: string, t: Transition) {
    this.trail.push(`apply ${t.kind}`);
    return super.apply(tenantId, t);
  }
  async putConfig(c: Parameters<InMemoryQuotaStore["putConfig"]>[0]) {
    this.trail.push("config");
    return super.putConfig(c);
  }
}

const NOW = new Date("2026-11-25T20:36:30.000Z");

describe("the change mark", () => {
  it("brackets a config write, and an evaluation's transitions, begin before the first write and end after the last", async () => {
    const store = new MarkingStore();
    const service = new QuotaEvaluator({ store, publisher: new RecordingPublisher(), clock: () => NOW });
    await service.putConfig("t", { tier: "advanced", monthlyTokens: 1000, warningThresholds: [0.5] });
    expect(store.trail).toEqual(["begin t 2026-11", "config", "end t 2026-11"]);
    store.trail = [];
    store.addUsage("t", "2026-11-25T20:36", { requests: 1, inputTokens: 2000 });
    await service.evaluate({ tenantId: "t", month: "2026-11", minutes: [], now: NOW });
    expect(store.trail).toEqual(["begin t 2026-11", "apply cross", "apply restrict", "end t 2026-11"]);
  });

  it("makes no mark for an evaluation with nothing to record", async () => {
    const store = new MarkingStore();
    const service = new QuotaEvaluator({ store, publisher: new RecordingPublisher(), clock: () => NOW });
    store.addUsage("t", "2026-11-25T20:36", { requests: 1, inputTokens: 10 });
    await service.evaluate({ tenantId: "t", month: "2026-11", minutes: [], now: NOW });
    expect(store.trail).toEqual([]);
  });

  /** A store whose `op` records itself in the trail and fails, and a service on it. */
  function failing(op: "apply" | "putConfig", name: string) {
    const store = new MarkingStore();
    store[op] = async () => {
      store.trail.push(name);
      throw new Error("throttled");
    };
    return { store, service: new QuotaEvaluator({ store, publisher: new RecordingPublisher(), clock: () => NOW }) };
  }

  it("closes the mark when a write fails", async () => {
    const { store, service } = failing("apply", "apply");
    store.addUsage("t", "2026-11-25T20:36", { requests: 1, inputTokens: 3_000_000 });
    await expect(service.evaluate({ tenantId: "t", month: "2026-11", minutes: [], now: NOW })).rejects.toThrow("throttled");
    expect(store.trail).toEqual(["begin t 2026-11", "apply", "end t 2026-11"]);
  });

  it("closes the mark when the config write fails", async () => {
    const { store, service } = failing("putConfig", "config");
    await expect(service.putConfig("t", { tier: "basic" })).rejects.toThrow("throttled");
    expect(store.trail).toEqual(["begin t 2026-11", "config", "end t 2026-11"]);
  });

  it("marks the adjacent month within a minute of the boundary (another process's clock may be on the other side)", () => {
    expect(changeMonths("2026-11", new Date("2026-11-15T12:00:00Z"))).toEqual(["2026-11"]);
    expect(changeMonths("2026-11", new Date("2026-11-30T23:59:30Z"))).toEqual(["2026-11", "2026-12"]);
    expect(changeMonths("2026-12", new Date("2026-12-31T23:59:01Z"))).toEqual(["2026-12", "2027-01"]);
    expect(changeMonths("2026-12", new Date("2026-12-01T00:00:45Z"))).toEqual(["2026-12", "2026-11"]);
    expect(changeMonths("2027-01", new Date("2027-01-01T00:00:10Z"))).toEqual(["2027-01", "2026-12"]);
    expect(changeMonths("2026-12", new Date("2026-12-01T00:01:01Z"))).toEqual(["2026-12"]);
  });
});
