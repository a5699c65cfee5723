import { describe, expect, it } from "vitest";
import { enforcementEventDetailSchema, ENFORCEMENT_DETAIL_TYPES } from "../../../shared/quota/events";
import { QuotaPublishError } from "../../../shared/quota/errors";
import { QuotaEvaluator } from "../../../shared/quota/service";
import { MODELS } from "../../../shared/quota/tiers";
import { InMemoryQuotaStore, RecordingPublisher } from "./fakes";

const NOW = new Date("2026-11-25T20:36:30.000Z");

function setup(tier?: "basic" | "advanced" | "premium", overrides: Record<string, unknown> = {}) {
  const store = new InMemoryQuotaStore();
  const publisher = new RecordingPublisher();
  const service = new QuotaEvaluator({ store, publisher, clock: () => NOW });
  if (tier) store.configs.set("t1", { tenantId: "t1", tier, updatedAt: NOW.toISOString(), ...overrides });
  const evaluate = (now = NOW, month = now.toISOString().slice(0, 7), minutes: string[] = [now.toISOString().slice(0, 16)]) =>
    service.evaluate({ tenantId: "t1", month, minutes, now });
  return { store, publisher, service, evaluate };
}

/** Adds monthly tokens on an earlier day (so no minute window of `now` is touched). */
function addMonthTokens(store: InMemoryQuotaStore, tokens: number, at = "2026-11-02T10:00:00.000Z") {
  store.addUsage("t1", at, { requests: 1, inputTokens: Math.floor(tokens / 2), outputTokens: tokens - Math.floor(tokens / 2) });
}

describe("monthly thresholds", () => {
  it("warns once at 80% (exactly 1,600,000 of 2,000,000 basic tokens), not below", async () => {
    const { store, publisher, evaluate } = setup("basic");
    addMonthTokens(store, 1_599_999);
    expect(await evaluate()).toEqual([]);
    addMonthTokens(store, 1);
    const outcomes = await evaluate();
    expect(outcomes.map((o) => [o.action, o.threshold, o.status])).toEqual([["warning", 0.8, "published"]]);
    // Re-evaluation (SQS redelivery, next batch) publishes nothing more.
    expect(await evaluate()).toEqual([]);
    expect(publisher.actions()).toEqual(["warning@0.8"]);
    expect(publisher.published[0].enforcementId).toBe("t1#2026-11#0.8:basic:t2000000:u-#warning");
  });

  it("throttles basic at exactly 100% until the end of the month", async () => {
    const { store, publisher, evaluate, service } = setup("basic");
    addMonthTokens(store, 2_000_000);
    const outcomes = await evaluate();
    expect(outcomes.map((o) => o.action)).toEqual(["warning", "throttle"]);
    expect(outcomes.find((o) => o.action === "throttle")?.breach).toBe(true);
    const throttle = publisher.published[1];
    // 2026-11-25T20:36:30Z -> 2026-12-01T00:00:00Z
    expect(throttle.retryAfterSeconds).toBe(5 * 86_400 + 3 * 3600 + 23 * 60 + 30);
    expect(throttle.targetModelId).toBeUndefined();
    const d = await service.decision("t1", NOW);
    expect(d).toMatchObject({ decision: "throttle", tier: "basic", period: "2026-11", retryAfterSeconds: throttle.retryAfterSeconds });
  });

  it("downgrades advanced to the mid-performance model and tells the data plane", async () => {
    const { store, publisher, evaluate, service } = setup("advanced");
    addMonthTokens(store, 10_000_000);
    await evaluate();
    expect(publisher.actions()).toEqual(["warning@0.8", "downgrade@1"]);
    expect(publisher.published[1].targetModelId).toBe(MODELS.midPerformance);
    expect(publisher.published[1].retryAfterSeconds).toBeUndefined();
    expect(await service.decision("t1", NOW)).toMatchObject({ decision: "downgrade", targetModelId: MODELS.midPerformance });
  });

  it("never throttles or downgrades premium: warnings at 80% and 100% only, whatever the usage", async () => {
    const { store, publisher, evaluate, service } = setup("premium");
    addMonthTokens(store, 500_000_000);
    // A minute far above any basic/advanced per-minute limit.
    store.addUsage("t1", NOW.toISOString(), { requests: 10_000, inputTokens: 5_000_000 });
    await evaluate();
    await evaluate();
    expect(publisher.actions()).toEqual(["warning@0.8", "warning@1"]);
    expect(publisher.published.every((d) => d.action === "warning")).toBe(true);
    expect((await service.decision("t1", NOW)).decision).toBe("allow");
  });

  it("counts USD quotas (premium $2,000) as well as tokens", async () => {
    const { store, publisher, evaluate } = setup("premium");
    store.addUsage("t1", "2026-11-02T10:00:00Z", { requests: 1, inputTokens: 1000, costNanoUsd: 1_600 * 1e9 });
    await evaluate();
    expect(publisher.actions()).toEqual(["warning@0.8"]);
    expect(publisher.published[0].usage.costUsd).toBe(1600);
  });

  it("uses tenant overrides of quota and thresholds", async () => {
    const { store, publisher, evaluate } = setup("basic", { monthlyTokens: 1000, warningThresholds: [0.5, 0.9] });
    addMonthTokens(store, 600);
    await evaluate();
    expect(publisher.actions()).toEqual(["warning@0.5"]);
    addMonthTokens(store, 400);
    await evaluate();
    expect(publisher.actions()).toEqual(["warning@0.5", "warning@0.9", "throttle@1"]);
    expect(publisher.published[2].quota.monthlyTokens).toBe(1000);
  });

  it("restores when an override raises the quota above usage, and thresholds of the new quota apply", async () => {
    const { store, publisher, evaluate, service } = setup("advanced", { monthlyTokens: 1000 });
    addMonthTokens(store, 1000);
    await evaluate();
    expect(publisher.actions()).toEqual(["warning@0.8", "downgrade@1"]);
    const res = await service.putConfig("t1", { tier: "advanced", monthlyTokens: 1200 });
    expect(res.outcomes.map((o) => o.action)).toEqual(["restore", "warning"]);
    expect(publisher.actions().slice(2)).toEqual(["restore@1", "warning@0.8"]);
    expect(publisher.published[2].enforcementId).toBe("t1#2026-11#1:advanced:t1000:u-#restore");
    expect((await service.decision("t1", NOW)).decision).toBe("allow");
    addMonthTokens(store, 200);
    await evaluate();
    expect(publisher.actions().slice(4)).toEqual(["downgrade@1"]);
    expect(publisher.published[4].enforcementId).toBe("t1#2026-11#1:advanced:t1200:u-#downgrade");
  });

  it("refuses invalid config with the reasons", async () => {
    const { service } = setup();
    await expect(service.putConfig("t1", { tier: "gold", monthlyTokens: -1 })).rejects.toMatchObject({
      name: "QuotaConfigInvalidError",
      reasons: expect.arrayContaining([expect.stringMatching(/^tier:/), expect.stringMatching(/^monthlyTokens:/)]),
    });
    await expect(service.putConfig("t1", { tier: "premium", tokensPerMinute: 10 })).rejects.toMatchObject({ name: "QuotaConfigInvalidError" });
  });
});

describe("period rollover and late events", () => {
  it("restores a tenant throttled last month at its first evaluation this month, once", async () => {
    const { store, publisher, evaluate } = setup("basic");
    addMonthTokens(store, 2_000_000);
    await evaluate();
    const december = new Date("2026-12-01T00:00:05Z");
    await evaluate(december);
    await evaluate(december);
    expect(publisher.actions()).toEqual(["warning@0.8", "throttle@1", "restore@1"]);
    expect(publisher.published[2]).toMatchObject({ period: "2026-11", enforcementId: "t1#2026-11#1:basic:t2000000:u-#restore" });
  });

  it("a decision asked in the new month is allow and publishes the due restore once", async () => {
    const { store, publisher, evaluate, service } = setup("advanced");
    addMonthTokens(store, 10_000_000);
    await evaluate();
    const december = new Date("2026-12-01T08:00:00Z");
    expect(await service.decision("t1", december)).toMatchObject({ decision: "allow", period: "2026-12" });
    expect(await service.decision("t1", december)).toMatchObject({ decision: "allow" });
    expect(publisher.actions()).toEqual(["warning@0.8", "downgrade@1", "restore@1"]);
  });

  it("late events of a closed month are billed but never enforced now", async () => {
    const { store, publisher, evaluate, service } = setup("basic");
    const december = new Date("2026-12-02T09:00:00Z");
    addMonthTokens(store, 3_000_000, "2026-11-30T23:59:00Z");
    const outcomes = await evaluate(december, "2026-11", ["2026-11-30T23:59"]);
    expect(outcomes).toEqual([]);
    expect(publisher.published).toEqual([]);
    expect((await service.decision("t1", december)).decision).toBe("allow");
  });
});

describe("noisy-neighbour windows", () => {
  const minute = NOW.toISOString().slice(0, 16);

  it("throttles at the RPM limit until the minute ends, once, then restores once in a later minute", async () => {
    const { store, publisher, evaluate, service } = setup("basic");
    store.addUsage("t1", NOW.toISOString(), { requests: 59, inputTokens: 100 });
    expect(await evaluate()).toEqual([]);
    store.addUsage("t1", NOW.toISOString(), { requests: 1, inputTokens: 1 });
    await evaluate();
    await evaluate();
    expect(publisher.actions()).toEqual(["throttle@rpm"]);
    expect(publisher.published[0]).toMatchObject({ period: minute, periodKind: "minute", retryAfterSeconds: 30, enforcementId: `t1#${minute}#rpm#throttle` });
    expect(await service.decision("t1", NOW)).toMatchObject({ decision: "throttle", retryAfterSeconds: 30 });

    const later = new Date("2026-11-25T20:37:10Z");
    expect((await service.decision("t1", later)).decision).toBe("allow");
    store.addUsage("t1", later.toISOString(), { requests: 1, inputTokens: 10 });
    await evaluate(later);
    await evaluate(later);
    expect(publisher.actions()).toEqual(["throttle@rpm", "restore@rate"]);
    expect(publisher.published[1]).toMatchObject({ period: minute, enforcementId: `t1#${minute}#rate#restore` });
  });

  it("records RPM and TPM crossings of one minute separately, and a busy next minute throttles again without a restore", async () => {
    const { store, publisher, evaluate } = setup("basic");
    store.addUsage("t1", NOW.toISOString(), { requests: 60 });
    await evaluate();
    store.addUsage("t1", NOW.toISOString(), { inputTokens: 40_000 });
    await evaluate();
    const next = new Date("2026-11-25T20:37:01Z");
    store.addUsage("t1", next.toISOString(), { requests: 70 });
    await evaluate(next);
    expect(publisher.actions()).toEqual(["throttle@rpm", "throttle@tpm", "throttle@rpm"]);
    expect(publisher.published[2].period).toBe("2026-11-25T20:37");
  });

  it("does not throttle a minute that has already ended (late batch)", async () => {
    const { store, publisher, evaluate } = setup("basic");
    store.addUsage("t1", "2026-11-25T20:35:59Z", { requests: 500 });
    await evaluate(NOW, "2026-11", ["2026-11-25T20:35"]);
    expect(publisher.published).toEqual([]);
  });

  it("uses the advanced tier's higher TPM limit", async () => {
    const { store, publisher, evaluate } = setup("advanced");
    store.addUsage("t1", NOW.toISOString(), { requests: 10, inputTokens: 150_000 });
    await evaluate();
    expect(publisher.published).toEqual([]);
    store.addUsage("t1", NOW.toISOString(), { outputTokens: 50_000 });
    await evaluate();
    expect(publisher.actions()).toEqual(["throttle@tpm"]);
  });
});

describe("publishing", () => {
  it("keeps a failed publish pending and republishes it with the same id", async () => {
    const { store, publisher, evaluate } = setup("basic");
    addMonthTokens(store, 1_700_000);
    publisher.failNext = 1;
    await expect(evaluate()).rejects.toBeInstanceOf(QuotaPublishError);
    expect(publisher.published).toEqual([]);
    expect(store.log).toEqual([]);
    const outcomes = await evaluate();
    expect(outcomes.map((o) => o.status)).toEqual(["republished"]);
    await evaluate();
    expect(publisher.published.map((d) => d.enforcementId)).toEqual(["t1#2026-11#0.8:basic:t2000000:u-#warning"]);
    expect(store.log).toHaveLength(1);
  });

  it("publishes details that match the schema and the detail-type table", async () => {
    const { store, publisher, evaluate } = setup("basic");
    addMonthTokens(store, 2_000_000);
    store.addUsage("t1", NOW.toISOString(), { requests: 60 });
    await evaluate();
    await evaluate(new Date("2026-12-01T00:00:01Z"));
    expect(new Set(publisher.published.map((d) => d.action))).toEqual(new Set(["warning", "throttle", "restore"]));
    for (const d of publisher.published) expect(enforcementEventDetailSchema.parse(d)).toEqual(d);
    expect(store.log.map((l) => l.detailType)).toEqual(publisher.published.map((d) => ENFORCEMENT_DETAIL_TYPES[d.action]));
  });
});
