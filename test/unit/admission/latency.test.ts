import { describe, expect, it } from "vitest";
import { MemoryBudgetStore, MemoryPoolStore, MemoryUsageTruth, StaticPolicySource } from "../../../shared/admission/adapters/memory";
import { AdmissionRefusedError } from "../../../shared/admission/errors";
import { parseAdmissionConfig, type AdmissionConfigInput } from "../../../shared/admission/model";
import type { BudgetStore } from "../../../shared/admission/ports";
import { Admission, type AdmitRequest } from "../../../shared/admission/service";
import { DEFAULT_TIERS, type TierPolicy } from "../../../shared/quota/tiers";

const SONNET = "anthropic.claude-3-5-sonnet-20240620-v1:0";
const call = (inputTokens: number, maxOutputTokens: number): AdmitRequest => ({
  tenantId: "t1", provider: "bedrock", modelId: SONNET, baseModelId: SONNET, inputTokens, maxOutputTokens, nanoUsd: 0, canDowngrade: false,
});

/** A budget store whose takes wait until the test lets them through (the store's round trip, held open). */
function gatedStore() {
  const inner = new MemoryBudgetStore({ delayMs: 0 });
  const held: (() => void)[] = [];
  let takes = 0;
  let landed = 0;
  let gated = false;
  const store: BudgetStore = Object.assign(Object.create(inner) as BudgetStore, {
    take: async (...args: Parameters<BudgetStore["take"]>) => {
      takes++;
      if (gated) await new Promise<void>((r) => held.push(r));
      try {
        return await inner.take(...args);
      } finally {
        landed++;
      }
    },
  });
  return {
    store,
    inner,
    takes: () => takes,
    /** Takes that have returned (or thrown). */
    landed: () => landed,
    gate: (on: boolean) => (gated = on),
    /** Lets every held take through. */
    open: () => held.splice(0).forEach((r) => r()),
    heldTakes: () => held.length,
  };
}

function admission(store: BudgetStore, tiers: AdmissionConfigInput["tiers"], opts: { monthlyTokens?: number; monthlyUsd?: number; clock?: () => number } = {}) {
  return new Admission({
    config: parseAdmissionConfig({ leaseIdleMs: 60_000, tiers }),
    budgets: store,
    pools: new MemoryPoolStore(),
    truth: new MemoryUsageTruth(),
    policies: new StaticPolicySource({}, { ...DEFAULT_TIERS.basic, monthlyTokens: opts.monthlyTokens ?? 1_000_000, monthlyUsd: opts.monthlyUsd } as TierPolicy),
    clock: opts.clock,
  });
}

const flush = () => new Promise((r) => setTimeout(r, 5));

/** Waits until `done()` holds (a background take reaching the gate takes a few ticks, more on a loaded machine), at most 2 s. */
async function until(done: () => boolean): Promise<void> {
  for (const t0 = Date.now(); !done() && Date.now() - t0 < 2_000; ) await flush();
}

describe("admission latency: budget in hand before it is needed", () => {
  it("takes the next lease in the background past half of the current one: a steady stream never waits for the store", async () => {
    const g = gatedStore();
    const a = admission(g.store, { basic: { mode: "lease", leaseTokens: 10_000, defaultMaxTokens: 1 } });
    // The first call waits for the first take (nothing in hand yet).
    const admitted = [await a.admit(call(800, 200))];
    expect(g.takes()).toBe(1);
    // From now on the store holds every take open: calls must be served from what is in hand.
    g.gate(true);
    for (let i = 0; i < 9; i++) admitted.push(await a.admit(call(800, 200))); // 10 x 1,000 = the first lease
    // Past half of the lease (after the 6th call) the next take started in the background, once.
    expect(g.takes()).toBe(2);
    expect(g.heldTakes()).toBe(1);
    // It lands; the next calls use it without another round trip in their path.
    g.open();
    await flush();
    for (let i = 0; i < 4; i++) admitted.push(await a.admit(call(800, 200)));
    expect(g.takes()).toBe(2);
    expect(admitted).toHaveLength(14);
    g.gate(false);
    for (const t of admitted) await t.settle({ inputTokens: 700, outputTokens: 100 });
    await a.close();
    const state = await g.inner.read({ tenantId: "t1", month: new Date().toISOString().slice(0, 7) });
    expect(state).toMatchObject({ usedTokens: 14 * 800, grants: [] });
  });

  it("close() waits for a lease taken in the background and gives it back: nothing is left out to expire", async () => {
    const g = gatedStore();
    const a = admission(g.store, { basic: { mode: "lease", leaseTokens: 10_000, defaultMaxTokens: 1 } });
    const tickets = [await a.admit(call(800, 200))];
    g.gate(true);
    for (let i = 0; i < 5; i++) tickets.push(await a.admit(call(800, 200))); // past half: the next lease is being taken
    expect(g.heldTakes()).toBe(1);
    for (const t of tickets) await t.settle({ inputTokens: 800, outputTokens: 200 });
    const closing = a.close();
    await flush();
    g.open(); // the background take lands while the process is closing
    g.gate(false);
    await closing;
    const state = await g.inner.read({ tenantId: "t1", month: new Date().toISOString().slice(0, 7) });
    expect(state).toMatchObject({ usedTokens: 6 * 1_000, remainingTokens: 1_000_000 - 6 * 1_000, grants: [] });
  });

  it("maxWaitMs bounds the wait: a call nothing in hand covers is refused (budget-wait, retry in 1 s) while the take goes on", async () => {
    const g = gatedStore();
    const a = admission(g.store, { basic: { mode: "lease", leaseTokens: 10_000, defaultMaxTokens: 1, maxWaitMs: 20 } });
    g.gate(true);
    const started = Date.now();
    const refused = await a.admit(call(800, 200)).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(AdmissionRefusedError);
    expect(refused).toMatchObject({ reason: "budget-wait", retryAfterSeconds: 1 });
    expect(Date.now() - started).toBeLessThan(1_000);
    // The take it started was not abandoned: once it lands, the retry is served from its lease.
    expect(g.heldTakes()).toBe(1);
    g.open();
    await flush();
    const ticket = await a.admit(call(800, 200));
    expect(g.takes()).toBe(1);
    await ticket.settle({ inputTokens: 800, outputTokens: 200 });
    g.gate(false);
    await a.close();
  });

  it("without maxWaitMs a call waits for the store's answer instead of being refused", async () => {
    const g = gatedStore();
    const a = admission(g.store, { basic: { mode: "lease", leaseTokens: 10_000, defaultMaxTokens: 1 } });
    g.gate(true);
    const pending = a.admit(call(800, 200));
    await new Promise((r) => setTimeout(r, 50));
    g.open();
    const ticket = await pending;
    expect(ticket.mode).toBe("lease");
    g.gate(false);
    await ticket.release();
    await a.close();
  });

  it("a budget seen short less than a second ago refuses at once while one take in the background reads it again", async () => {
    const g = gatedStore();
    let now = Date.UTC(2026, 11, 2, 8, 0, 0);
    const a = admission(g.store, { basic: { mode: "lease", leaseTokens: 10_000, maxLeaseTokens: 10_000, defaultMaxTokens: 1 } }, { monthlyTokens: 3_000, clock: () => now });
    // The budget lends what it has left (3,000) and reads 0 left: the lease holds three calls.
    const tickets = [await a.admit(call(800, 200)), await a.admit(call(800, 200)), await a.admit(call(800, 200))];
    expect(g.takes()).toBe(2); // 10,000 refused, then the 3,000 left
    // Within 100 ms of that reading a fourth call is refused without asking the store.
    await expect(a.admit(call(800, 200))).rejects.toBeInstanceOf(AdmissionRefusedError);
    expect(g.takes()).toBe(2);
    // 200 ms later the reading is stale but less than a second old: the store is asked again,
    // in the background (held open here), and the calls meanwhile are refused at once.
    now += 200;
    g.gate(true);
    for (let i = 0; i < 5; i++) {
      const refused = await a.admit(call(800, 200)).catch((e: unknown) => e);
      // retry when a grant out may come back: leaseIdleMs (60 s here)
      expect(refused).toBeInstanceOf(AdmissionRefusedError);
      expect(refused).toMatchObject({ retryAfterSeconds: 60 });
    }
    expect(g.takes()).toBe(3);
    expect(g.heldTakes()).toBe(1);
    // The take lands (nothing left): it renews the reading; still nothing waits.
    g.open();
    // (waited for: on a loaded machine a 5 ms tick can pass before the released take returns, and a reading
    // it renewed after the clock moved on below would look fresh)
    await until(() => g.landed() === g.takes());
    await flush();
    await expect(a.admit(call(800, 200))).rejects.toBeInstanceOf(AdmissionRefusedError);
    expect(g.takes()).toBe(3);
    // With no reading for over a second, a call waits for the store's answer again.
    now += 1_500;
    const pending = a.admit(call(800, 200)).then(
      () => "admitted",
      (e: unknown) => (e instanceof AdmissionRefusedError ? "refused" : String(e)),
    );
    await until(() => g.heldTakes() === 1);
    expect(g.heldTakes()).toBe(1);
    let settled = false;
    void pending.then(() => (settled = true));
    await flush();
    expect(settled).toBe(false);
    g.gate(false);
    g.open();
    expect(await pending).toBe("refused");
    // What the lease did not spend goes back when it is given back; then a call fits again.
    for (const t of tickets) await t.settle({ inputTokens: 500, outputTokens: 100 });
    await a.close();
    const state = await g.inner.read({ tenantId: "t1", month: "2026-12" });
    expect(state).toMatchObject({ usedTokens: 1_800, remainingTokens: 1_200, grants: [] });
  });

  it("a token budget: a call of a costlier token mix is served from the lease in hand (its USD only keeps the books)", async () => {
    const g = gatedStore();
    const a = admission(g.store, { basic: { mode: "lease", leaseTokens: 10_000, defaultMaxTokens: 1 } });
    // The lease is taken by a cheap call: its USD is lent in proportion, 10 x this call's.
    const first = await a.admit({ ...call(800, 200), nanoUsd: 1_000 });
    g.gate(true);
    // Twenty times the USD per token: more than the lease's USD, well within its tokens.
    const costly = await a.admit({ ...call(200, 800), nanoUsd: 20_000 });
    expect(g.takes()).toBe(1);
    g.gate(false);
    await first.settle({ inputTokens: 800, outputTokens: 200, nanoUsd: 1_000 });
    await costly.settle({ inputTokens: 200, outputTokens: 800, nanoUsd: 20_000 });
    await a.close();
    const state = await g.inner.read({ tenantId: "t1", month: new Date().toISOString().slice(0, 7) });
    expect(state).toMatchObject({ usedTokens: 2_000, usedNanoUsd: 21_000, grants: [] });
  });

  it("a USD budget: the same call needs USD the lease does not have, so it waits for a take", async () => {
    const g = gatedStore();
    const a = admission(g.store, { basic: { mode: "lease", leaseTokens: 10_000, defaultMaxTokens: 1 } }, { monthlyUsd: 100 });
    const first = await a.admit({ ...call(800, 200), nanoUsd: 1_000 });
    g.gate(true);
    const costly = a.admit({ ...call(200, 800), nanoUsd: 20_000 });
    await until(() => g.heldTakes() === 1);
    expect(g.heldTakes()).toBe(1);
    g.gate(false);
    g.open();
    const t = await costly;
    expect(g.takes()).toBe(2);
    await first.release();
    await t.release();
    await a.close();
  });
});
