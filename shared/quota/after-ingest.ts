import type { QuotaEvaluator } from "./service";
import type { WrittenItems } from "../usage/model";

/** A tenant whose totals an ingest batch changed, with the records that did it. */
export interface TenantTouched {
  tenantId: string;
  months: string[];
  minutes: string[];
  messageIds: string[];
  /** Its month and tenant-hour items as the ingest's writes returned them (see `EvaluateInput.written`). */
  written?: WrittenItems;
}

export interface AfterIngestResult {
  /** Enforcement events published (first time or again). */
  published: number;
  /** Quota breaches (100% of a quota crossed). */
  breaches: number;
  /** Tenants whose evaluation failed, with the records to report failed (SQS redelivers them). */
  failed: { tenantId: string; messageIds: string[]; error: unknown }[];
}

/**
 * Quota evaluation of every tenant an ingest batch touched, their reads shared. If a tenant's
 * evaluation fails, its records are to be reported failed: the redelivery counts nothing twice
 * and evaluates again (a transition not yet recorded is recorded then; a pending publish is
 * retried with the same enforcementId, or by the outbox sweeper).
 */
export async function evaluateAfterIngest(quota: QuotaEvaluator, touched: readonly TenantTouched[], now: Date, concurrency = 16): Promise<AfterIngestResult> {
  const inputs = touched.map((t) => ({
    tenantId: t.tenantId,
    // the latest month the batch added to; a closed month is never enforced (see QuotaEvaluator.evaluate)
    month: [...t.months].sort().at(-1) ?? now.toISOString().slice(0, 7),
    minutes: t.minutes,
    now,
    ...(t.written ? { written: t.written } : {}),
  }));
  const results = await quota.evaluateMany(inputs, { concurrency });
  const out: AfterIngestResult = { published: 0, breaches: 0, failed: [] };
  for (const t of touched) {
    const r = results.get(t.tenantId);
    if (!r || "error" in r) {
      out.failed.push({ tenantId: t.tenantId, messageIds: t.messageIds, error: r?.error ?? new Error("no evaluation result") });
      continue;
    }
    for (const o of r.outcomes) {
      if (o.status !== "pending") out.published++;
      if (o.breach) out.breaches++;
    }
  }
  return out;
}
