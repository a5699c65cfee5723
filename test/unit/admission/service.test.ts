import { describe, expect, it } from "vitest";
import { MemoryBudgetStore, MemoryPoolStore, MemoryUsageTruth, StaticPolicySource } from "../../../shared/admission/adapters/memory";
import { AdmissionRefusedError } from "../../../shared/admission/errors";
import { parseAdmissionConfig, type AdmissionConfigInput } from "../../../shared/admission/model";
import { Admission, type AdmitRequest } from "../../../shared/admission/service";
import { DEFAULT_TIERS, type TierPolicy } from "../../../shared/quota/tiers";

const SONNET = "anthropic.claude-3-5-sonnet-20240620-v1:0";
const HAIKU = "anthropic.claude-3-haiku-20240307-v1:0";
const NOW = Date.parse("2026-11-25T12:00:00Z");

function call(tenantId: string, inputTokens: number, maxOutputTokens: number, over: Partial<AdmitRequest> = {}): AdmitRequest {
  return { tenantId, provider: "bedrock", modelId: SONNET, baseModelId: SONNET, inputTokens, maxOutputTokens, nanoUsd: 0, canDowngrade: true, ...over };
}

function setup(opts: { policy?: Partial<TierPolicy>; config?: AdmissionConfigInput; delayMs?: number; processes?: number } = {}) {
  let now = NOW;
  const clock = () => now;
  const budgets = new MemoryBudgetStore({ delayMs: opts.delayMs ?? 1, now: clock });
  const pools = new MemoryPoolStore({ delayMs: opts.delayMs ?? 1 });
  const truth = new MemoryUsageTruth();
  const policy = { ...DEFAULT_TIERS.basic, monthlyTokens: 100_000, ...opts.policy } as TierPolicy;
  const policies = new StaticPolicySource({}, policy);
  const config = parseAdmissionConfig({ leaseIdleMs: 0, ...opts.config });
  const make = (holder: string) => new Admission({ config, budgets, pools, truth, policies, clock, holder });
  const processes = Array.from({ length: opts.processes ?? 1 }, (_, i) => make(`p${i}`));
  return { budgets, pools, truth, processes, make, advance: (ms: number) => (now += ms), month: "2026-11" };
}

async function settleAll(xs: Promise<unknown>[]) {
  return Promise.allSettled(xs);
}

describe("budget: no double spend under races", () => {
  it("hard mode: 300 concurrent calls of 4 processes against room for 50 admit exactly 50", async () => {
    const { processes, budgets, month } = setup({ config: { tiers: { basic: { mode: "hard", leaseTokens: 1, defaultMaxTokens: 1 } } }, processes: 4 });
    // Given a 100,000-token budget and calls reserving 1,500 + 500 = 2,000 tokens each
    const results = await settleAll(Array.from({ length: 300 }, (_, i) => processes[i % 4].admit(call("t1", 1_500, 500))));
    const admitted = results.filter((r) => r.status === "fulfilled");
    const refused = results.filter((r) => r.status === "rejected");
    expect(admitted).toHaveLength(50);
    expect(refused.every((r) => (r as PromiseRejectedResult).reason instanceof AdmissionRefusedError)).toBe(true);
    const state = await budgets.read({ tenantId: "t1", month });
    expect(state?.remainingTokens).toBe(0);
    expect(state?.grants).toHaveLength(50);
  });

  it("lease mode: processes lend themselves chunks, and what they admit never exceeds the budget", async () => {
    const { processes, budgets, month } = setup({ config: { tiers: { basic: { mode: "lease", leaseTokens: 12_000, defaultMaxTokens: 1 } } }, processes: 3 });
    const results = await settleAll(Array.from({ length: 300 }, (_, i) => processes[i % 3].admit(call("t1", 700, 300))));
    const admitted = results.filter((r) => r.status === "fulfilled").length;
    // 100 calls of 1,000 fit; leases are carved from the remaining budget, so never more
    expect(admitted).toBeLessThanOrEqual(100);
    expect(admitted).toBeGreaterThanOrEqual(100 - 3 * 12); // at most one lease's worth stranded per process
    const state = await budgets.read({ tenantId: "t1", month });
    expect(state!.remainingTokens).toBeGreaterThanOrEqual(0);
    // every lease written is a grant out, one write per chunk, not per call
    expect(state!.grants.length).toBeLessThan(admitted / 5);
  });

  it("settles with the real usage and gives the rest back, so later calls fit", async () => {
    const { processes, budgets, month } = setup({ config: { tiers: { basic: { mode: "hard", leaseTokens: 1, defaultMaxTokens: 1 } } } });
    const [a] = processes;
    const tickets = await Promise.all(Array.from({ length: 50 }, () => a.admit(call("t1", 1_500, 500))));
    await expect(a.admit(call("t1", 1_500, 500))).rejects.toBeInstanceOf(AdmissionRefusedError);
    await Promise.all(tickets.map((t) => t.settle({ inputTokens: 1_000, outputTokens: 200 })));
    const state = await budgets.read({ tenantId: "t1", month });
    expect(state).toMatchObject({ usedTokens: 50 * 1_200, remainingTokens: 100_000 - 50 * 1_200, grants: [] });
    await expect(a.admit(call("t1", 1_500, 500))).resolves.toBeDefined();
  });

  it("releases everything of a call that failed", async () => {
    const { processes, budgets, month } = setup({ config: { tiers: { basic: { mode: "hard", leaseTokens: 1, defaultMaxTokens: 1 } } } });
    const t = await processes[0].admit(call("t1", 1_500, 500));
    await t.release();
    await t.settle({ inputTokens: 9, outputTokens: 9 }); // a second finish is ignored
    expect(await budgets.read({ tenantId: "t1", month })).toMatchObject({ usedTokens: 0, remainingTokens: 100_000 });
  });

  it("starts the month from the ingest aggregates (usage before admission existed)", async () => {
    const { processes, truth, budgets, month } = setup({ config: { tiers: { basic: { mode: "hard", leaseTokens: 1, defaultMaxTokens: 1 } } } });
    truth.months.set(`t1|${month}`, { tokens: 99_000, nanoUsd: 0 });
    await expect(processes[0].admit(call("t1", 1_500, 500))).rejects.toMatchObject({ reason: "budget" });
    expect(await budgets.read({ tenantId: "t1", month })).toMatchObject({ usedTokens: 99_000, remainingTokens: 1_000 });
  });
});

describe("dead callers", () => {
  const hard = { tiers: { basic: { mode: "hard" as const, leaseTokens: 1, defaultMaxTokens: 1 } }, leaseSeconds: 30, settleGraceSeconds: 60 };

  it("a grant whose caller died expires after its lease and is charged in full (never lent twice)", async () => {
    const { processes, budgets, advance, month } = setup({ config: hard, processes: 2 });
    const [dead, alive] = processes;
    await Promise.all(Array.from({ length: 50 }, () => dead.admit(call("t1", 1_500, 500)))); // never settled
    await expect(alive.admit(call("t1", 1_500, 500))).rejects.toBeInstanceOf(AdmissionRefusedError);
    advance(31_000);
    // the next refusal sweeps: no event ids, so each grant is charged what it reserved
    await expect(alive.admit(call("t1", 1_500, 500))).rejects.toBeInstanceOf(AdmissionRefusedError);
    const state = await budgets.read({ tenantId: "t1", month });
    expect(state).toMatchObject({ grants: [], usedTokens: 100_000, remainingTokens: 0 });
  });

  it("the usage event with the same eventId settles a dead caller's grant with the counted usage", async () => {
    const { processes, budgets, truth, advance, month } = setup({ config: hard });
    const [a] = processes;
    const t = await a.admit(call("t1", 1_500, 500));
    t.bind("req-123"); // the stream started: Bedrock's request id is the usage event's id
    await new Promise((r) => setTimeout(r, 10));
    advance(31_000);
    // not counted yet: within the grace period the grant waits for its event
    expect(await a.sweep("t1", month)).toEqual({ settled: 0, charged: 0, waiting: 1 });
    truth.events.set("t1|req-123", { inputTokens: 1_000, outputTokens: 120, costNanoUsd: 7 });
    expect(await a.sweep("t1", month)).toEqual({ settled: 1, charged: 0, waiting: 0 });
    expect(await budgets.read({ tenantId: "t1", month })).toMatchObject({ usedTokens: 1_120, usedNanoUsd: 7, remainingTokens: 100_000 - 1_120, grants: [] });
    // the caller coming back late changes nothing (the grant is settled once)
    await t.settle({ inputTokens: 1_000, outputTokens: 500 });
    expect((await budgets.read({ tenantId: "t1", month }))?.usedTokens).toBe(1_120);
  });

  it("an event that never comes: charged in full after the grace period", async () => {
    const { processes, budgets, advance, month } = setup({ config: hard });
    const t = await processes[0].admit(call("t1", 1_500, 500));
    t.bind("req-lost");
    await new Promise((r) => setTimeout(r, 10));
    advance(31_000 + 60_000);
    expect(await processes[0].sweep("t1", month)).toEqual({ settled: 0, charged: 1, waiting: 0 });
    expect((await budgets.read({ tenantId: "t1", month }))?.usedTokens).toBe(2_000);
  });
});

describe("tier rules", () => {
  const hard = { tiers: { basic: { mode: "hard" as const, leaseTokens: 1, defaultMaxTokens: 1 }, advanced: { mode: "hard" as const, leaseTokens: 1, defaultMaxTokens: 1 } } };

  it("advanced: an exhausted budget downgrades the call to the tier's model instead of refusing", async () => {
    const { processes } = setup({ policy: { ...DEFAULT_TIERS.advanced, monthlyTokens: 1_000 }, config: hard });
    const t = await processes[0].admit(call("t1", 1_500, 500));
    expect(t.downgradeTo).toBe(HAIKU);
    expect(t.mode).toBe("none");
  });

  it("premium is never refused on budget", async () => {
    const { processes } = setup({ policy: { ...DEFAULT_TIERS.premium, monthlyTokens: 1_000 }, config: hard });
    await expect(processes[0].admit(call("t1", 1_500, 500))).resolves.toMatchObject({ mode: "none" });
  });

  it("maps tiers to Bedrock service tiers when configured", async () => {
    const { processes } = setup({ config: { ...hard, serviceTiers: { basic: "flex" } } });
    expect((await processes[0].admit(call("t1", 10, 10))).serviceTier).toBe("flex");
  });
});

describe("reconciliation with the ingest aggregates", () => {
  it("adds what the ingest counted beyond admission's used + held, never lowers it", async () => {
    const { processes, truth, budgets, month } = setup({ config: { tiers: { basic: { mode: "hard", leaseTokens: 1, defaultMaxTokens: 1 } } } });
    const [a] = processes;
    const t = await a.admit(call("t1", 1_000, 1_000));
    await t.settle({ inputTokens: 800, outputTokens: 200 });
    // ingest lags: it has counted nothing yet -> no change
    expect(await a.reconcile("t1", month)).toBe(0);
    // it counted the call (1,000) plus 5,000 of traffic outside the wrappers
    truth.months.set(`t1|${month}`, { tokens: 6_000, nanoUsd: 0 });
    expect(await a.reconcile("t1", month)).toBe(5_000);
    expect(await budgets.read({ tenantId: "t1", month })).toMatchObject({ usedTokens: 6_000, remainingTokens: 94_000 });
    expect(await a.reconcile("t1", month)).toBe(0);
  });
});

describe("pools through the service", () => {
  const poolCfg = {
    tiers: { basic: { mode: "hard" as const, leaseTokens: 1, defaultMaxTokens: 1 } },
    pools: [{ id: "sonnet@us-west-2", models: [SONNET], scope: "us-west-2", tpm: 100_000, rpm: 1_000 }],
  };

  it("sheds basic near saturation while premium still gets its floor, and settles the pool with the real burn", async () => {
    const basicPolicy = { ...DEFAULT_TIERS.basic, monthlyTokens: 10_000_000 };
    const b = setup({ policy: basicPolicy, config: poolCfg });
    const premium = new Admission({
      config: parseAdmissionConfig(poolCfg),
      budgets: b.budgets,
      pools: b.pools,
      truth: b.truth,
      policies: new StaticPolicySource({}, DEFAULT_TIERS.premium),
      clock: () => NOW,
    });
    const basicResults = await settleAll(Array.from({ length: 20 }, () => b.processes[0].admit(call("basic-1", 1_000, 1_000))));
    // 30% of the pool is neither premium's (50%) nor advanced's (20%) floor: 15 calls of 2,000
    expect(basicResults.filter((r) => r.status === "fulfilled")).toHaveLength(15);
    expect(basicResults.filter((r) => r.status === "rejected").every((r) => (r as PromiseRejectedResult).reason.reason === "pool-shed")).toBe(true);
    const premiumResults = await settleAll(Array.from({ length: 25 }, () => premium.admit(call("prem-1", 1_000, 1_000))));
    expect(premiumResults.filter((r) => r.status === "fulfilled")).toHaveLength(25);
    // settling gives back what the call did not burn
    const t = (premiumResults[0] as PromiseFulfilledResult<Awaited<ReturnType<Admission["admit"]>>>).value;
    await t.settle({ inputTokens: 1_000, outputTokens: 100 });
    const w = await b.pools.read("sonnet@us-west-2", Math.floor(NOW / 60_000) * 60);
    expect(w.use.tokens.premium).toBe(25 * 2_000 - 900);
  });

  it("a burst of one process enters the pool in batches (a write per batch, not per call), higher tiers decided first", async () => {
    const b = setup({ policy: { ...DEFAULT_TIERS.basic, monthlyTokens: 10_000_000 }, config: { ...poolCfg, tiers: { basic: { mode: "lease", leaseTokens: 1_000_000, defaultMaxTokens: 1 }, premium: { mode: "lease", leaseTokens: 1_000_000, defaultMaxTokens: 1 } } } });
    // One process serving both tiers (a shared data plane): the policy depends on the tenant.
    const shared = new Admission({
      config: parseAdmissionConfig({ ...poolCfg, tiers: { basic: { mode: "lease", leaseTokens: 1_000_000, defaultMaxTokens: 1 } } }),
      budgets: b.budgets,
      pools: b.pools,
      truth: b.truth,
      policies: new StaticPolicySource({ "prem-1": DEFAULT_TIERS.premium }, { ...DEFAULT_TIERS.basic, monthlyTokens: 10_000_000 } as TierPolicy),
      clock: () => NOW,
    });
    // The pool holds 50 calls of 2,000; Basic may use 30% of it beyond the free floors (15 calls).
    // 40 Basic calls arrive just before 25 Premium calls, in the same moment.
    const basic = Array.from({ length: 40 }, () => shared.admit(call("basic-1", 1_000, 1_000)));
    const premium = Array.from({ length: 25 }, () => shared.admit(call("prem-1", 1_000, 1_000)));
    const [br, pr] = [await settleAll(basic), await settleAll(premium)];
    expect(pr.filter((r) => r.status === "fulfilled")).toHaveLength(25);
    expect(br.filter((r) => r.status === "fulfilled")).toHaveLength(15);
    // 65 calls, a handful of window writes: the calls waiting while one write was in flight went together
    expect(b.pools.adds).toBeGreaterThan(0);
    expect(b.pools.adds).toBeLessThanOrEqual(5);
    const w = await b.pools.read("sonnet@us-west-2", Math.floor(NOW / 60_000) * 60);
    expect(w.use).toEqual({ tokens: { basic: 15 * 2_000, advanced: 0, premium: 25 * 2_000 }, requests: { basic: 15, advanced: 0, premium: 25 } });
  });

  it("pool credit: after a window's first round a tier's calls are admitted from credit without a round trip, until it runs out or the window ends", async () => {
    let now = NOW;
    const pools = new MemoryPoolStore({ delayMs: 1 });
    const premium = new Admission({
      config: parseAdmissionConfig({ pools: [{ ...poolCfg.pools[0], creditShare: 0.1 }] }),
      budgets: new MemoryBudgetStore({ delayMs: 0 }),
      pools,
      truth: new MemoryUsageTruth(),
      policies: new StaticPolicySource({}, DEFAULT_TIERS.premium),
      clock: () => now,
    });
    // The first call's round reserves it (2,000) and a credit of 10% of the window (10,000).
    await premium.admit(call("prem-1", 1_000, 1_000));
    expect(pools.adds).toBe(1);
    for (let i = 0; i < 5; i++) await premium.admit(call("prem-1", 1_000, 1_000)); // 5 x 2,000 from the credit
    expect(pools.adds).toBe(1);
    const window = Math.floor(NOW / 60_000) * 60;
    expect((await pools.read("sonnet@us-west-2", window)).use.tokens.premium).toBe(12_000);
    // The credit is spent: the next call has its round (and a new credit).
    await premium.admit(call("prem-1", 1_000, 1_000));
    expect(pools.adds).toBe(2);
    expect((await pools.read("sonnet@us-west-2", window)).use.tokens.premium).toBe(24_000);
    // A new window: the credit left in the old one is void, the next call has its round there.
    now += 60_000;
    await premium.admit(call("prem-1", 1_000, 1_000));
    expect(pools.adds).toBe(3);
    expect((await pools.read("sonnet@us-west-2", window + 60)).use.tokens.premium).toBe(12_000);
    // Closing gives the unused credit back to the window (10,000 tokens, 5 requests).
    await premium.close();
    expect((await pools.read("sonnet@us-west-2", window + 60)).use).toMatchObject({ tokens: { premium: 2_000 }, requests: { premium: 1 } });
  });

  it("pool credit never comes out of a higher tier's floor: Basic's credit shrinks to what borrowing allows, Premium keeps its 50%", async () => {
    const pools = new MemoryPoolStore({ delayMs: 1 });
    const cfg = { pools: [{ ...poolCfg.pools[0], creditShare: 0.5 }], tiers: { basic: { mode: "lease" as const, leaseTokens: 1_000_000, defaultMaxTokens: 1 } } };
    const mk = (policy: TierPolicy) =>
      new Admission({ config: parseAdmissionConfig(cfg), budgets: new MemoryBudgetStore({ delayMs: 0 }), pools, truth: new MemoryUsageTruth(), policies: new StaticPolicySource({}, policy), clock: () => NOW });
    const basic = mk({ ...DEFAULT_TIERS.basic, monthlyTokens: 10_000_000 } as TierPolicy);
    const premium = mk(DEFAULT_TIERS.premium);
    // Basic may use 30% (30,000) beyond the free floors. Its first round asks a 50,000 credit, gets
    // 25,000 (halved until the rule admits it); 12 calls fit it, one more round admits one call
    // (29,000) and no credit, and the next is shed. Without credit Basic gets 15 calls: the 1,000
    // of credit left unused counts as used for the window.
    const results: string[] = [];
    for (let i = 0; i < 20; i++) {
      results.push(await basic.admit(call("basic-1", 1_000, 1_000)).then(() => "ok", (e: unknown) => (e as AdmissionRefusedError).reason));
    }
    expect(results.filter((r) => r === "ok")).toHaveLength(14);
    expect(results.slice(14).every((r) => r === "pool-shed")).toBe(true);
    const window = Math.floor(NOW / 60_000) * 60;
    expect((await pools.read("sonnet@us-west-2", window)).use.tokens.basic).toBe(29_000);
    // Premium's floor is whole: 25 calls of 2,000.
    const premiumResults = await settleAll(Array.from({ length: 25 }, () => premium.admit(call("prem-1", 1_000, 1_000))));
    expect(premiumResults.filter((r) => r.status === "fulfilled")).toHaveLength(25);
  });

  it("within a batch, Premium is decided before Basic that arrived earlier", async () => {
    const pools = new MemoryPoolStore({ delayMs: 20 }); // the window's round trip: calls queue behind it
    const budgets = new MemoryBudgetStore({ delayMs: 0 });
    const shared = new Admission({
      config: parseAdmissionConfig({ ...poolCfg, leaseIdleMs: 0, tiers: { basic: { mode: "lease", leaseTokens: 1_000_000, defaultMaxTokens: 1 } } }),
      budgets,
      pools,
      truth: new MemoryUsageTruth(),
      policies: new StaticPolicySource({ "prem-1": DEFAULT_TIERS.premium }, { ...DEFAULT_TIERS.basic, monthlyTokens: 10_000_000 } as TierPolicy),
      clock: () => NOW,
    });
    // One Basic call opens the pool's first round; 30 more Basic calls, then 40 Premium calls, queue behind it.
    const first = shared.admit(call("basic-1", 1_000, 1_000));
    await new Promise((r) => setTimeout(r, 5));
    const basic = Array.from({ length: 30 }, () => shared.admit(call("basic-1", 1_000, 1_000)));
    const premium = Array.from({ length: 40 }, () => shared.admit(call("prem-1", 1_000, 1_000)));
    const [f, br, pr] = [await settleAll([first]), await settleAll(basic), await settleAll(premium)];
    expect(f[0].status).toBe("fulfilled");
    // In arrival order Basic would have taken 30% of the pool (15 calls) first, leaving Premium 35.
    expect(pr.filter((r) => r.status === "fulfilled")).toHaveLength(40);
    expect(br.filter((r) => r.status === "fulfilled")).toHaveLength(0);
    expect(pools.adds).toBe(2);
  });
});
