import { TIER_PRICES_USD, UNKNOWN_TIER, normaliseTier } from "./tiers";

/** A tenant's month aggregate, as the billing export reads it. */
export interface MonthAggregate {
  tenantId: string;
  requests: number;
  inputTokens: number;
  outputTokens: number;
  /** Pay-per-token cost (price catalog), integer nano-USD. */
  costNanoUsd: number;
  /** Share of fixed endpoint cost (allocation job), integer nano-USD. */
  allocatedCostNanoUsd: number;
  unpricedRequests: number;
}

/** One invoice line: a tenant's month. Money is integer nano-USD; `*Usd` are exact decimal strings of it. */
export interface InvoiceLine {
  month: string;
  tenantId: string;
  tier: string;
  requests: number;
  inputTokens: number;
  outputTokens: number;
  /** Calls without a price: their API cost is missing from `apiCostNanoUsd`; check the quarantine list. */
  unpricedRequests: number;
  apiCostNanoUsd: number;
  allocatedCostNanoUsd: number;
  totalCostNanoUsd: number;
  subscriptionNanoUsd: number;
  revenueNanoUsd: number;
  marginNanoUsd: number;
  apiCostUsd: string;
  allocatedCostUsd: string;
  totalCostUsd: string;
  subscriptionUsd: string;
  revenueUsd: string;
  marginUsd: string;
}

export const INVOICE_COLUMNS: readonly (keyof InvoiceLine)[] = [
  "month",
  "tenantId",
  "tier",
  "requests",
  "inputTokens",
  "outputTokens",
  "unpricedRequests",
  "apiCostUsd",
  "allocatedCostUsd",
  "totalCostUsd",
  "subscriptionUsd",
  "revenueUsd",
  "marginUsd",
  "apiCostNanoUsd",
  "allocatedCostNanoUsd",
  "totalCostNanoUsd",
  "subscriptionNanoUsd",
  "revenueNanoUsd",
  "marginNanoUsd",
];

const NANO = 1_000_000_000n;

/** Exact decimal string of an integer nano-USD amount: 1234567891 -> "1.234567891". */
export function formatNanoUsd(nano: number): string {
  if (!Number.isSafeInteger(nano)) throw new RangeError(`not a safe integer nano-USD amount: ${nano}`);
  const n = BigInt(nano);
  const abs = n < 0n ? -n : n;
  return `${n < 0n ? "-" : ""}${abs / NANO}.${String(abs % NANO).padStart(9, "0")}`;
}

/**
 * Invoice lines of a month, sorted by tenant id: the same aggregates and tiers always give the
 * same lines (the export is idempotent per month).
 */
export function buildInvoiceLines(
  month: string,
  aggregates: Iterable<MonthAggregate>,
  tiers: ReadonlyMap<string, unknown>,
  tierPricesUsd: Readonly<Record<string, number>> = TIER_PRICES_USD,
): InvoiceLine[] {
  const lines: InvoiceLine[] = [];
  const seen = new Set<string>();
  for (const a of aggregates) {
    if (seen.has(a.tenantId)) throw new RangeError(`tenant ${a.tenantId} has two month aggregates for ${month}`);
    seen.add(a.tenantId);
    const tier = normaliseTier(tiers.get(a.tenantId), tierPricesUsd);
    const subscription = tier === UNKNOWN_TIER ? 0 : Math.round(tierPricesUsd[tier] * 1e9);
    const total = a.costNanoUsd + a.allocatedCostNanoUsd;
    const revenue = subscription;
    const margin = revenue - total;
    lines.push({
      month,
      tenantId: a.tenantId,
      tier,
      requests: a.requests,
      inputTokens: a.inputTokens,
      outputTokens: a.outputTokens,
      unpricedRequests: a.unpricedRequests,
      apiCostNanoUsd: a.costNanoUsd,
      allocatedCostNanoUsd: a.allocatedCostNanoUsd,
      totalCostNanoUsd: total,
      subscriptionNanoUsd: subscription,
      revenueNanoUsd: revenue,
      marginNanoUsd: margin,
      apiCostUsd: formatNanoUsd(a.costNanoUsd),
      allocatedCostUsd: formatNanoUsd(a.allocatedCostNanoUsd),
      totalCostUsd: formatNanoUsd(total),
      subscriptionUsd: formatNanoUsd(subscription),
      revenueUsd: formatNanoUsd(revenue),
      marginUsd: formatNanoUsd(margin),
    });
  }
  return lines.sort((a, b) => (a.tenantId < b.tenantId ? -1 : a.tenantId > b.tenantId ? 1 : 0));
}

export function toJsonLines(lines: readonly InvoiceLine[]): string {
  return lines.map((l) => JSON.stringify(Object.fromEntries(INVOICE_COLUMNS.map((c) => [c, l[c]])))).join("\n") + (lines.length ? "\n" : "");
}

/** RFC 4180 field: quoted when it holds a comma, quote, CR or LF; quotes doubled. */
export function csvField(value: string | number): string {
  // No spreadsheet-formula guard needed: tenant ids start alphanumeric (event contract),
  // tiers are normalised to the price table, the rest are numbers.
  const s = String(value);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function toCsv(lines: readonly InvoiceLine[]): string {
  const rows = [INVOICE_COLUMNS.join(","), ...lines.map((l) => INVOICE_COLUMNS.map((c) => csvField(l[c])).join(","))];
  return rows.join("\r\n") + "\r\n";
}

/** Parses CSV written by {@link toCsv} (RFC 4180: quoted fields, doubled quotes, CRLF). */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") {
      row.push(field);
      field = "";
    } else if (c === "\r" && text[i + 1] === "\n") {
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
      i++;
    } else if (c === "\n") {
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
    } else field += c;
  }
  if (field !== "" || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}
