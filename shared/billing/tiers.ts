/**
 * Monthly list prices of the subscription tiers (USD per tenant per month). Revenue on an
 * invoice line is the tier's subscription; usage is not billed on top (no overage yet).
 *
 * How the figures were chosen (seed-notes.md, 300 tenants, 30M requests/yr, 307 in / 533 out):
 * - basic $99: served on the shared LoRA endpoint (ml.g5.48xlarge, $140K/yr); an even share
 *   over 300 tenants is $140,002 / 300 / 12 = $38.89 a month, so $99 leaves ~60% margin.
 * - advanced $499: served on Claude 3.5 Sonnet, then downgraded to the mid model past its
 *   quota; an average tenant (100K requests/yr) costs 100,000 x $0.008916 / 12 = $74.30 a
 *   month on Sonnet; $499 covers ~6.7x the average before the downgrade protects margin.
 * - premium $2,499: API or dedicated serving with guaranteed performance; a share of the
 *   INT4 endpoint ($49K/yr) among 3 premium tenants is $1,361 a month. A tenant with a
 *   whole dedicated endpoint needs a custom contract (the margin column will show it).
 */
export const TIER_PRICES_USD: Readonly<Record<string, number>> = {
  basic: 99,
  advanced: 499,
  premium: 2499,
};

export const UNKNOWN_TIER = "unknown";

/** Lower-cases a stored tier ("Basic" -> "basic"); anything missing or not in the table is "unknown". */
export function normaliseTier(tier: unknown, prices: Readonly<Record<string, number>> = TIER_PRICES_USD): string {
  if (typeof tier !== "string") return UNKNOWN_TIER;
  const t = tier.trim().toLowerCase();
  return Object.hasOwn(prices, t) ? t : UNKNOWN_TIER;
}
