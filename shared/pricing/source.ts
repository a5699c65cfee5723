import type { ModelPrice, PriceScope, TokenPrices } from "./catalog";

/**
 * Turns the AWS Bedrock provider of `@pydantic/genai-prices` (its bundled data) into dated
 * catalog rows, and merges them into the committed snapshot's history. Pure: the update
 * command (`npm run prices:update`, cli/prices-update.ts) reads the package and writes the file.
 *
 * Semantics carried over from the source:
 * - its `input_mtok` is the rate of *uncached* input; its `input_tokens` usage is the total
 *   including cache tokens, which are priced at `cache_read_mtok` / `cache_write_mtok`. Bedrock's
 *   `inputTokens` already excludes cache tokens, so the rates map one to one onto Bedrock's
 *   token classes; only thresholds (long context) are compared with the total
 *   (input + cache read + cache write), as the source does.
 * - a missing cache rate means "priced as its parent class" (cache -> input, 1h write -> write).
 * - `global.<id>` rows are the global scope, `regional.<id>` rows in-region and geographic
 *   profiles, other rows every scope.
 */

/** The subset of the package's types this module reads (kept local so shared/ has no dependency on it). */
export interface SourceModel {
  id: string;
  prices: SourcePrices | { constraint?: { type: string; start_date?: string }; prices: SourcePrices }[];
  price_comments?: string;
  deprecated?: boolean;
}
export type SourcePrices = Record<string, number | { base: number; tiers: { start: number; price: number }[] } | undefined>;

export interface SnapshotFile {
  source: string;
  sourceVersion: string;
  /** Publication day of that version on npm: the day its prices were at the latest in force. */
  sourcePublished: string;
  generatedOn: string;
  prices: ModelPrice[];
}

/** Amazon Bedrock became generally available on this day: no Bedrock usage predates it. */
export const BEDROCK_GA_DAY = "2023-09-28";

const KEYS: Record<string, keyof TokenPrices> = {
  input_mtok: "inputPer1k",
  output_mtok: "outputPer1k",
  cache_read_mtok: "cacheReadPer1k",
  cache_write_mtok: "cacheWritePer1k",
  cache_write_1h_mtok: "cacheWrite1hPer1k",
};

/** Per-million price of the source -> USD per 1K tokens, without binary noise (0.0825 -> 0.0000825). */
export function mtokToPer1k(mtok: number): number {
  return Number((mtok / 1000).toPrecision(12));
}

function scopeOf(id: string): { modelId: string; scope: PriceScope | "*" } {
  if (id.startsWith("global.")) return { modelId: id.slice("global.".length), scope: "global" };
  if (id.startsWith("regional.")) return { modelId: id.slice("regional.".length), scope: "in-region" };
  return { modelId: id, scope: "*" };
}

/** One set of source prices -> token prices (text classes only; audio rates are not carried). */
export function convertPrices(p: SourcePrices, where: string): TokenPrices & { longContext?: ModelPrice["longContext"] } {
  const flat: Partial<TokenPrices> = {};
  const long: Partial<TokenPrices> = {};
  let start: number | undefined;
  for (const [key, value] of Object.entries(p)) {
    const to = KEYS[key];
    if (!to || value === undefined) continue;
    if (typeof value === "number") {
      flat[to] = mtokToPer1k(value);
      continue;
    }
    if (value.tiers.length !== 1) throw new Error(`${where}: ${key} has ${value.tiers.length} tiers; only one long-context tier is supported`);
    const tier = value.tiers[0];
    if (start !== undefined && start !== tier.start) throw new Error(`${where}: tiers start at different token counts`);
    start = tier.start;
    flat[to] = mtokToPer1k(value.base);
    long[to] = mtokToPer1k(tier.price);
  }
  if (flat.inputPer1k === undefined) throw new Error(`${where}: no input price`);
  const prices: TokenPrices = { inputPer1k: flat.inputPer1k, outputPer1k: flat.outputPer1k ?? 0, ...pick(flat) };
  if (start === undefined) return prices;
  // A class without its own tier keeps its base rate above the threshold.
  return {
    ...prices,
    longContext: { aboveInputTokens: start, ...prices, ...long } as ModelPrice["longContext"],
  };
}

function pick(p: Partial<TokenPrices>): Partial<TokenPrices> {
  const out: Partial<TokenPrices> = {};
  for (const k of ["cacheReadPer1k", "cacheWritePer1k", "cacheWrite1hPer1k"] as const) if (p[k] !== undefined) out[k] = p[k];
  return out;
}

/**
 * The source's rows as catalog rows, each dated: a constrained price from its `start_date`,
 * an unconstrained one from `firstSeen` (chosen by the merge).
 */
export function rowsFromSource(models: readonly SourceModel[], sourceLabel: string): (ModelPrice & { dated: boolean })[] {
  const rows: (ModelPrice & { dated: boolean })[] = [];
  for (const m of models) {
    const { modelId, scope } = scopeOf(m.id);
    const variants = Array.isArray(m.prices) ? m.prices : [{ prices: m.prices }];
    for (const v of variants) {
      const constraint = "constraint" in v ? v.constraint : undefined;
      if (constraint && constraint.type !== "start_date") continue; // time-of-day prices: none on Bedrock
      const start = constraint?.start_date?.slice(0, 10);
      rows.push({
        modelId,
        scope,
        region: "*",
        effectiveFrom: start ?? BEDROCK_GA_DAY,
        dated: start !== undefined,
        ...convertPrices(v.prices, m.id),
        source: `${sourceLabel} ${m.id}`,
      });
    }
  }
  return rows;
}

const samePrices = (a: ModelPrice, b: ModelPrice) =>
  JSON.stringify(pricesOnly(a)) === JSON.stringify(pricesOnly(b));
function pricesOnly(p: ModelPrice) {
  const { inputPer1k, outputPer1k, cacheReadPer1k, cacheWritePer1k, cacheWrite1hPer1k, longContext } = p;
  return { inputPer1k, outputPer1k, cacheReadPer1k, cacheWritePer1k, cacheWrite1hPer1k, longContext };
}
const keyOf = (p: ModelPrice) => `${p.modelId}|${p.scope ?? "*"}|${p.region}|${p.serviceTier ?? "default"}`;

/**
 * Merges a new reading of the source into the existing history (`previous`, plus `older`
 * hand-dated rows such as the seed prices, which are not written to the file):
 * - a key never seen gets the source row dated from Bedrock's GA day (or its start_date);
 * - a key whose latest price differs gets a new row dated `changedOn` (the publication day of
 *   the package version that first carried it: the latest day the new price can have started);
 * - unchanged keys and keys the source dropped keep their rows, so old events keep their prices.
 */
export function mergeHistory(
  previous: readonly ModelPrice[],
  older: readonly ModelPrice[],
  fresh: readonly (ModelPrice & { dated: boolean })[],
  changedOn: string,
): ModelPrice[] {
  const out = [...previous];
  // An undated source row is the price before the key's dated source rows (if any) start.
  const firstDated = new Map<string, string>();
  for (const r of fresh) {
    const k = keyOf(r);
    if (r.dated && (!firstDated.has(k) || r.effectiveFrom < firstDated.get(k)!)) firstDated.set(k, r.effectiveFrom);
  }
  const latest = (key: string) =>
    [...out, ...older]
      .filter((p) => keyOf(p) === key && (!firstDated.has(key) || p.effectiveFrom < firstDated.get(key)!))
      .sort((a, b) => b.effectiveFrom.localeCompare(a.effectiveFrom))[0];
  for (const row of fresh) {
    const { dated, ...price } = row;
    const key = keyOf(price);
    if (dated) {
      if (!out.some((p) => keyOf(p) === key && p.effectiveFrom === price.effectiveFrom)) out.push(price);
      continue;
    }
    const last = latest(key);
    if (!last) out.push(price);
    else if (!samePrices(last, price)) out.push({ ...price, effectiveFrom: changedOn > last.effectiveFrom ? changedOn : last.effectiveFrom });
  }
  return out.sort((a, b) => keyOf(a).localeCompare(keyOf(b)) || a.effectiveFrom.localeCompare(b.effectiveFrom));
}
