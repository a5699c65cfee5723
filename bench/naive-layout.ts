import type { InvocationEventV1 } from "../shared/events/invocation";
import { targetKey } from "../shared/usage/adapters/dynamodb";
import { targetId, targetsOf } from "../shared/usage/coalesce";
import type { PricedEvent } from "../shared/usage/model";
import { periodsOf } from "../shared/usage/periods";

/** One item the naive baselines update per event. */
export interface NaiveTarget {
  id: string;
  key: { pk: string; sk: string };
  /** Month aggregates: the month, for their GSI1 (billing) keys. */
  month?: string;
}

/**
 * The naive baselines' own straightforward layout: one item per aggregate, including a
 * separate tenant x minute item (`TENANT#<t>` / `MINUTE#<minute>`), as the pipeline had it
 * before the minute windows moved onto the tenant-hour item. Month aggregate first.
 */
export function naiveTargets(e: InvocationEventV1): NaiveTarget[] {
  const out: NaiveTarget[] = targetsOf({ event: e } as PricedEvent).map((t) => ({
    id: targetId(t),
    key: targetKey(t),
    month: t.kind === "tenant" && t.granularity === "month" ? t.period : undefined,
  }));
  const minute = periodsOf(e.occurredAt).minute;
  out.push({ id: `n|${e.tenantId}|${minute}`, key: { pk: `TENANT#${e.tenantId}`, sk: `MINUTE#${minute}` } });
  return out;
}
