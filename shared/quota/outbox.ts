import { PUBLISH_LEASE_MS } from "./evaluate";
import type { EnforcementState, OutboxEntry } from "./model";
import type { EnforcementPublisher, QuotaStore } from "./ports";

/**
 * The one publish path of the outbox, shared by the evaluation (its own entries and expired
 * ones of its tenant) and the sweeper (expired entries of any tenant):
 * claim by compare-and-set on the lease -> PutEvents -> markPublished, or release on failure.
 */

/** An outbox entry this process holds the lease of (`entry.leaseUntil` is our lease). */
export interface HeldEntry {
  tenantId: string;
  period: string;
  entry: OutboxEntry;
}

export type OutboxStore = Pick<QuotaStore, "claim" | "release" | "markPublished">;

/** PutEvents takes at most 10 entries. */
const PUT_EVENTS_MAX = 10;

/** True while another publisher's lease on the entry runs (it may be publishing right now). */
function leaseHeld(entry: OutboxEntry, now: Date): boolean {
  return Date.parse(entry.leaseUntil) > now.getTime();
}

/**
 * Claims the entries of `states` whose lease has run out (skipping `skip`). Compare-and-set on
 * the lease we read: of several evaluations or sweeps retrying the same entry, one wins; an
 * entry published (removed) or re-leased since our read is not claimed.
 */
export async function claimExpired(
  store: OutboxStore,
  tenantId: string,
  states: readonly EnforcementState[],
  now: Date,
  skip: ReadonlySet<string> = new Set(),
): Promise<{ claimed: HeldEntry[]; held: number; lost: number }> {
  const claimed: HeldEntry[] = [];
  let held = 0;
  let lost = 0;
  const leaseUntil = new Date(now.getTime() + PUBLISH_LEASE_MS).toISOString();
  for (const s of states) {
    for (const e of Object.values(s.outbox)) {
      if (skip.has(e.enforcementId)) continue;
      if (leaseHeld(e, now)) {
        held++;
        continue;
      }
      if (await store.claim(tenantId, s.period, e.enforcementId, e.leaseUntil, leaseUntil)) {
        claimed.push({ tenantId, period: s.period, entry: { ...e, leaseUntil } });
      } else {
        lost++;
      }
    }
  }
  return { claimed, held, lost };
}

export interface PublishOutcome {
  /** enforcementIds accepted by the bus (and removed from the outbox). */
  published: Set<string>;
  /** enforcementIds not published; their leases were given back, the entries stay pending. */
  failed: { enforcementId: string; reason: string }[];
  /** The error a whole PutEvents call threw, if one did. */
  cause?: unknown;
}

/**
 * Publishes held entries (PutEvents chunks of 10), then for each: markPublished (log entry,
 * outbox entry removed) if the bus took it, otherwise gives the lease back so the next attempt
 * retries at once. Never throws for a refused publish: the caller decides what a failure means.
 */
export async function publishHeld(
  store: OutboxStore,
  publisher: EnforcementPublisher,
  batch: readonly HeldEntry[],
  clock: () => Date,
): Promise<PublishOutcome> {
  const published = new Set<string>();
  const failed: PublishOutcome["failed"] = [];
  let cause: unknown;
  for (let i = 0; i < batch.length; i += PUT_EVENTS_MAX) {
    const chunk = batch.slice(i, i + PUT_EVENTS_MAX);
    try {
      const r = await publisher.publish(chunk.map((c) => c.entry.detail));
      for (const id of r.published) published.add(id);
      failed.push(...r.failed);
    } catch (error) {
      cause = error;
      failed.push(...chunk.map((c) => ({ enforcementId: c.entry.enforcementId, reason: error instanceof Error ? error.message : String(error) })));
    }
  }
  const publishedAt = clock().toISOString();
  for (const { tenantId, period, entry } of batch) {
    if (published.has(entry.enforcementId)) await store.markPublished(tenantId, period, entry, publishedAt);
    else await store.release(tenantId, period, entry.enforcementId, entry.leaseUntil);
  }
  // An id the bus neither accepted nor refused (a short response) is not published either.
  const reported = new Set(failed.map((f) => f.enforcementId));
  for (const { entry } of batch) {
    if (!published.has(entry.enforcementId) && !reported.has(entry.enforcementId)) {
      failed.push({ enforcementId: entry.enforcementId, reason: "no result from the bus" });
    }
  }
  return { published, failed, cause };
}
