import { claimExpired, publishHeld, type HeldEntry, type OutboxStore } from "./outbox";
import type { EnforcementPublisher, PendingOutboxIndex } from "./ports";

export interface OutboxSweeperDeps {
  /** The store the evaluation uses (same claim / release / markPublished) and its pending index. */
  store: OutboxStore & PendingOutboxIndex;
  publisher: EnforcementPublisher;
  clock?: () => Date;
  /** Enforcement states read per index page. */
  pageSize?: number;
}

export interface SweepReport {
  /** States listed by the index (an item is counted once per page it appears on). */
  states: number;
  /** Published now (log entry written, outbox entry removed). */
  published: { tenantId: string; period: string; enforcementId: string; action: string }[];
  /** Not published (bus refused or unreachable): the leases were given back, the entries stay pending. */
  failed: { tenantId: string; enforcementId: string; reason: string }[];
  /** Entries another publisher holds a live lease on: left to it. */
  leaseHeld: number;
  /** Entries published or re-leased by someone else between our read and our claim. */
  claimLost: number;
  /** Listed states with an empty outbox, taken off the index. */
  unindexed: number;
  /** False when the deadline stopped the sweep before the end of the index (the rest waits for the next run). */
  complete: boolean;
}

const DEFAULT_PAGE_SIZE = 25;

/**
 * Publishes outbox entries that nobody else will: an evaluation that failed to publish leaves
 * its entries pending for the tenant's next evaluation, and a tenant that is never evaluated
 * again (it stopped calling, or it was only evaluated by a config PUT) would keep them forever.
 *
 * Same path as the evaluation: an entry is claimed by compare-and-set on the lease we read
 * (so an entry whose publisher is alive, or that was published or re-leased since the index
 * was read, is left alone), published with its stable enforcementId, then markPublished.
 * Delivery stays at-least-once with a stable id; the transition itself was recorded once.
 */
export class OutboxSweeper {
  private readonly clock: () => Date;
  private readonly pageSize: number;

  constructor(private readonly deps: OutboxSweeperDeps) {
    this.clock = deps.clock ?? (() => new Date());
    this.pageSize = deps.pageSize ?? DEFAULT_PAGE_SIZE;
  }

  /** One pass over every shard of the index. Never throws for a refused publish: see `failed`. */
  async sweep(opts: { deadline?: Date } = {}): Promise<SweepReport> {
    const report: SweepReport = { states: 0, published: [], failed: [], leaseHeld: 0, claimLost: 0, unindexed: 0, complete: true };
    const { store } = this.deps;
    for (let shard = 0; shard < store.shards; shard++) {
      let cursor: string | undefined;
      do {
        if (opts.deadline && this.clock().getTime() >= opts.deadline.getTime()) {
          report.complete = false;
          return report;
        }
        const page = await store.listPending(shard, this.pageSize, cursor);
        cursor = page.cursor;
        report.states += page.items.length;
        // Leases are compared with the time of the claim, not of the sweep's start.
        const now = this.clock();
        const held: HeldEntry[] = [];
        for (const state of page.items) {
          if (Object.keys(state.outbox).length === 0) {
            // Its last entry was published but the index keys were not removed (a crash
            // between the two writes): conditional, so a newly added entry keeps it listed.
            await store.unindex(state.tenantId, state.period);
            report.unindexed++;
            continue;
          }
          const r = await claimExpired(store, state.tenantId, [state], now);
          held.push(...r.claimed);
          report.leaseHeld += r.held;
          report.claimLost += r.lost;
        }
        if (held.length === 0) continue;
        const out = await publishHeld(store, this.deps.publisher, held, this.clock);
        const byId = new Map(held.map((h) => [h.entry.enforcementId, h]));
        for (const h of held) {
          if (out.published.has(h.entry.enforcementId)) {
            report.published.push({ tenantId: h.tenantId, period: h.period, enforcementId: h.entry.enforcementId, action: h.entry.detail.action });
          }
        }
        for (const f of out.failed) report.failed.push({ tenantId: byId.get(f.enforcementId)?.tenantId ?? "", ...f });
      } while (cursor);
    }
    return report;
  }
}
