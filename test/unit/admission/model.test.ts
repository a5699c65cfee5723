import { describe, expect, it } from "vitest";
import {
  calibrate,
  estimateInputTokens,
  outputBurnRate,
  parseAdmissionConfig,
  poolBurnOf,
  poolDecide,
  profileModelId,
  type PoolUse,
} from "../../../shared/admission/model";

const pool = { tpm: 100_000, rpm: 1_000, windowSeconds: 60, floors: { premium: 0.5, advanced: 0.2, basic: 0 }, ceilings: { basic: 0.8, advanced: 0.95, premium: 1 } };
const use = (tokens: PoolUse["tokens"]): PoolUse => ({ tokens, requests: {} });

describe("poolDecide: tier floors, borrowing and shedding", () => {
  it("lets basic borrow idle capacity outside premium's and advanced's unused floors", () => {
    // Given an idle pool: premium's 50k and advanced's 20k floors are unused and protected
    expect(poolDecide(pool, use({}), "basic", 30_000)).toEqual({ admit: true, borrowed: true });
    // When basic would go past 100k - 50k - 20k = 30k
    expect(poolDecide(pool, use({ basic: 30_000 }), "basic", 1)).toEqual({ admit: false, reason: "shed" });
  });

  it("admits premium within its floor even when basic has used every token it may", () => {
    const full = use({ basic: 30_000, advanced: 20_000 });
    expect(poolDecide(pool, full, "premium", 50_000)).toEqual({ admit: true, borrowed: false });
    expect(poolDecide(pool, use({ basic: 30_000, advanced: 20_000, premium: 50_000 }), "premium", 1)).toEqual({ admit: false, reason: "saturated" });
  });

  it("lets premium borrow lower tiers' unused floors and idle capacity up to the whole pool", () => {
    expect(poolDecide(pool, use({ premium: 50_000 }), "premium", 50_000)).toEqual({ admit: true, borrowed: true });
  });

  it("sheds basic first, then advanced, premium last as the pool fills", () => {
    // premium has used its floor, so nothing of it is protected any more; only ceilings apply
    const at = (total: number) => use({ premium: 50_000, advanced: 20_000, basic: total - 70_000 });
    expect(poolDecide(pool, at(79_000), "basic", 2_000).admit).toBe(false); // 81% > basic ceiling 80%
    expect(poolDecide(pool, at(79_000), "advanced", 2_000).admit).toBe(true);
    expect(poolDecide(pool, at(94_000), "advanced", 2_000).admit).toBe(false); // 96% > 95%
    expect(poolDecide(pool, at(94_000), "premium", 2_000).admit).toBe(true);
    expect(poolDecide(pool, at(99_000), "premium", 2_000).admit).toBe(false);
  });

  it("checks requests per minute like tokens", () => {
    const u: PoolUse = { tokens: {}, requests: { basic: 300 } };
    expect(poolDecide(pool, u, "basic", 10)).toEqual({ admit: false, reason: "shed" });
    expect(poolDecide(pool, u, "premium", 10).admit).toBe(true);
  });

  it("scales capacity to the window length", () => {
    const short = { ...pool, windowSeconds: 6 }; // 10,000 tokens, 100 requests per window
    expect(poolDecide(short, use({}), "premium", 10_000).admit).toBe(true);
    expect(poolDecide(short, use({}), "premium", 10_001).admit).toBe(false);
  });
});

describe("Bedrock quota counting", () => {
  it("burns Claude 4-family output 5x on the quota, others 1x, whatever the scope prefix", () => {
    expect(outputBurnRate("anthropic.claude-sonnet-4-20250514-v1:0")).toBe(5);
    expect(outputBurnRate("us.anthropic.claude-opus-4-1-20250805-v1:0")).toBe(5);
    expect(outputBurnRate("global.anthropic.claude-haiku-4-5-20251001-v1:0")).toBe(5);
    expect(outputBurnRate("anthropic.claude-3-5-sonnet-20240620-v1:0")).toBe(1);
    expect(poolBurnOf("anthropic.claude-sonnet-4-20250514-v1:0", { inputTokens: 100, outputTokens: 10, cacheReadInputTokens: 50, cacheWriteInputTokens: 5 })).toBe(100 + 50 + 5 + 50);
  });
});

describe("input estimate", () => {
  it("bounds a reported count from above at the default calibration", () => {
    const text = "The quick brown fox jumps over the lazy dog. ".repeat(40); // ~1,800 chars, ~400 tokens
    const est = estimateInputTokens(text, 1, { bytesPerToken: 2, overheadTokens: 16, perMessageTokens: 8 });
    expect(est).toBeGreaterThanOrEqual(Math.ceil(text.length / 4));
    expect(est).toBe(Math.ceil(text.length / 2) + 24);
  });

  it("calibrates to the tightest ratio seen, with a margin", () => {
    expect(calibrate([{ bytes: 400, tokens: 100 }, { bytes: 300, tokens: 100 }], 0.8)).toBeCloseTo(2.4);
  });
});

describe("configuration", () => {
  it("refuses floors that add up to more than the pool", () => {
    expect(() => parseAdmissionConfig({ pools: [{ id: "p", models: ["m"], scope: "us", tpm: 1, rpm: 1, floors: { premium: 0.7, advanced: 0.4 } }] })).toThrow(/floors add up/);
  });
});

describe("profileModelId: a tier's calls to the global profile, where it is priced", () => {
  const SONNET45 = "anthropic.claude-sonnet-4-5-20250929-v1:0";
  const asked: string[] = [];
  const pricedOnly = (...ids: string[]) => (id: string) => (asked.push(id), ids.includes(id));

  it("moves a plain in-region id to its global. profile when that profile is priced", () => {
    expect(profileModelId(SONNET45, "global", pricedOnly(`global.${SONNET45}`))).toBe(`global.${SONNET45}`);
    expect(asked.at(-1)).toBe(`global.${SONNET45}`);
  });

  it("keeps the id when the profile has no price, or the tier has no scope", () => {
    expect(profileModelId(SONNET45, "global", pricedOnly())).toBe(SONNET45);
    const before = asked.length;
    expect(profileModelId(SONNET45, undefined, pricedOnly(`global.${SONNET45}`))).toBe(SONNET45);
    expect(asked.length).toBe(before); // nothing to look up without a scope
  });

  it("never moves a geographic profile, an ARN, an application profile or a global id", () => {
    const all = () => true;
    for (const id of [
      `us.${SONNET45}`,
      `eu.${SONNET45}`,
      `global.${SONNET45}`,
      `arn:aws:bedrock:us-west-2::foundation-model/${SONNET45}`,
      "arn:aws:bedrock:us-west-2:123456789012:application-inference-profile/abc123",
    ]) {
      expect(profileModelId(id, "global", all), id).toBe(id);
    }
  });

  it("is part of the configuration: per tier, global only", () => {
    expect(parseAdmissionConfig({ profileScopes: { premium: "global" } }).profileScopes).toEqual({ premium: "global" });
    expect(parseAdmissionConfig({}).profileScopes).toEqual({});
    expect(() => parseAdmissionConfig({ profileScopes: { premium: "eu" } })).toThrow();
    expect(() => parseAdmissionConfig({ profileScopes: { gold: "global" } })).toThrow();
  });
});
