/**
 * CUR 2.0 (data exports, CSV) reader: Bedrock cost per tenant and day from the cost-allocation
 * tag of the application inference profiles (`resource_tags` holds `{"user_tenantId": "..."}`),
 * compared with our per-tenant cost of the same day. Parquet exports are not read here.
 */
import { parseCsv } from "../billing/invoice";

export interface CurCostRow {
  day: string;
  tenantId?: string;
  resourceId: string;
  usageType: string;
  costUsd: number;
}

export class CurInvalidError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CurInvalidError";
  }
}

const REQUIRED = ["line_item_usage_start_date", "line_item_product_code", "line_item_unblended_cost", "line_item_resource_id", "line_item_usage_type", "resource_tags"];

/**
 * The product's name of a line: CUR 2.0 keeps it in the `product` map column (a JSON object in a
 * CSV export); some exports flatten it to `product_product_name`. Empty when neither is there.
 */
function productName(r: string[], col: Map<string, number>, i: number): string {
  const flat = col.has("product_product_name") ? r[col.get("product_product_name")!] : undefined;
  if (flat) return flat;
  const raw = col.has("product") ? r[col.get("product")!] : undefined;
  if (!raw) return "";
  try {
    const name = (JSON.parse(raw) as Record<string, unknown>).product_name;
    return typeof name === "string" ? name : "";
  } catch {
    throw new CurInvalidError(`line ${i + 2}: product is not a JSON map`);
  }
}

/**
 * A Bedrock charge: Amazon's own models under the `AmazonBedrock` product code, and third-party
 * models sold through AWS Marketplace (Anthropic's among them) under their own product code, with
 * "(Amazon Bedrock Edition)" in the product name and usage types such as
 * `USW2-MP:USW2_InputTokenCount-Units`. Matching the code alone would drop every Claude charge.
 */
function isBedrockLine(productCode: string, name: string): boolean {
  return /bedrock/i.test(productCode) || /bedrock/i.test(name);
}

/** Bedrock line items of a CUR 2.0 CSV export (Amazon's and Marketplace models); other products are skipped. */
export function readCurCsv(csv: string, opts: { tenantTag?: string } = {}): CurCostRow[] {
  const tagKey = `user_${opts.tenantTag ?? "tenantId"}`;
  const rows = parseCsv(csv);
  const header = rows.shift();
  if (!header) throw new CurInvalidError("empty CUR file");
  const col = new Map(header.map((h, i) => [h.trim(), i]));
  const missing = REQUIRED.filter((r) => !col.has(r));
  if (missing.length) throw new CurInvalidError(`not a CUR 2.0 export: missing column(s) ${missing.join(", ")}`);
  const get = (r: string[], name: string) => r[col.get(name)!] ?? "";
  const out: CurCostRow[] = [];
  rows.forEach((r, i) => {
    if (r.length === 1 && r[0] === "") return;
    if (!isBedrockLine(get(r, "line_item_product_code"), productName(r, col, i))) return;
    const cost = Number(get(r, "line_item_unblended_cost"));
    if (!Number.isFinite(cost)) throw new CurInvalidError(`line ${i + 2}: line_item_unblended_cost is not a number`);
    const start = new Date(get(r, "line_item_usage_start_date"));
    if (Number.isNaN(start.getTime())) throw new CurInvalidError(`line ${i + 2}: bad line_item_usage_start_date`);
    let tags: Record<string, unknown> = {};
    const rawTags = get(r, "resource_tags");
    if (rawTags) {
      try {
        tags = JSON.parse(rawTags) as Record<string, unknown>;
      } catch {
        throw new CurInvalidError(`line ${i + 2}: resource_tags is not a JSON map`);
      }
    }
    const tenant = tags[tagKey];
    out.push({
      day: start.toISOString().slice(0, 10),
      tenantId: typeof tenant === "string" && tenant ? tenant : undefined,
      resourceId: get(r, "line_item_resource_id"),
      usageType: get(r, "line_item_usage_type"),
      costUsd: cost,
    });
  });
  return out;
}

export interface CurComparisonRow {
  day: string;
  tenantId: string;
  curUsd: number;
  meteredUsd: number;
  differenceUsd: number;
  /** |CUR - ours| / CUR, percent (100 when CUR is 0 and ours is not). */
  differencePercent: number;
}

export interface CurComparison {
  rows: CurComparisonRow[];
  /** Bedrock cost in CUR without a tenant tag (calls not made through a tenant's profile), per day. */
  untaggedUsd: Record<string, number>;
}

/** CUR cost by tenant tag and day against our per-tenant cost (`metered`: tenant -> day -> USD). */
export function compareCur(cur: readonly CurCostRow[], metered: ReadonlyMap<string, ReadonlyMap<string, number>>): CurComparison {
  const byKey = new Map<string, number>();
  const untagged: Record<string, number> = {};
  for (const r of cur) {
    if (!r.tenantId) {
      untagged[r.day] = round((untagged[r.day] ?? 0) + r.costUsd);
      continue;
    }
    const k = `${r.tenantId}|${r.day}`;
    byKey.set(k, (byKey.get(k) ?? 0) + r.costUsd);
  }
  const days = new Set(cur.map((r) => r.day));
  for (const [tenantId, perDay] of metered) for (const day of perDay.keys()) if (days.has(day) && !byKey.has(`${tenantId}|${day}`)) byKey.set(`${tenantId}|${day}`, 0);
  const rows = [...byKey.entries()]
    .map(([k, curUsd]) => {
      const [tenantId, day] = k.split("|");
      const meteredUsd = metered.get(tenantId)?.get(day) ?? 0;
      const diff = curUsd - meteredUsd;
      return {
        day,
        tenantId,
        curUsd: round(curUsd),
        meteredUsd: round(meteredUsd),
        differenceUsd: round(diff),
        differencePercent: curUsd === 0 ? (meteredUsd === 0 ? 0 : 100) : Math.round((Math.abs(diff) / curUsd) * 1e6) / 1e4,
      };
    })
    .sort((a, b) => (a.day === b.day ? (a.tenantId < b.tenantId ? -1 : 1) : a.day < b.day ? -1 : 1));
  return { rows, untaggedUsd: untagged };
}

function round(x: number): number {
  return Math.round(x * 1e8) / 1e8 || 0; // no -0 in reports
}
