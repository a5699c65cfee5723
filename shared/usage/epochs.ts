import { randomBytes } from "node:crypto";
import { setBounded } from "../util/bounded";
import type { Claim, EpochState, HighWaterMarks, UsageStore } from "./ports";

/** A writer identity this process holds: one ingest pass at a time uses it. */
export interface Epoch {
  id: string;
  /** The last run number started (runs are 1, 2, 3...). */
  run: number;
  /** Epoch ms after which this process never writes with it (at most the record's lease). */
  leaseUntil: number;
}

/** Marks to remove from one item: epochs known dead whose runs up to `upTo` are done. */
export interface Cleanup {
  epoch: string;
  upTo: number;
}

/** At most this many marks are removed in one item write (keeps the expression small). */
const CLEAN_PER_WRITE = 8;
/** Items whose marks this process remembers (from its own writes' returned items). */
const REMEMBERED_ITEMS = 50_000;

/**
 * Whether an item with these marks holds a write of one of `holders` (the runs that held a
 * call's ledger entry): its mark of that epoch is at least that run. Runs of an epoch are
 * sequential, so a later run's mark says the earlier run's write landed too.
 */
export function reachedBy(marks: HighWaterMarks, holders: readonly Claim[]): boolean {
  return holders.some((h) => (marks[h.run] ?? 0) >= h.group);
}

/** A short random epoch id (base36, 10 characters): item attribute names carry it. */
export function newEpochId(): string {
  return BigInt(`0x${randomBytes(8).toString("hex")}`).toString(36).padStart(13, "0").slice(-10);
}

/**
 * The ingest's epochs (see `shared/usage/README.md`, "High-water commits"): the pool of this
 * process's own, the states of others read so far, and the marks seen on items, so that a
 * write can remove the marks of dead epochs whose runs are done (they are no longer needed to
 * tell a landed write from a lost one).
 *
 * Lease: an epoch's record says until when it may write. A pass uses an epoch only while at
 * least `leaseMs` (a run's longest life) of it is left, and stops writing `leaseMs / 2` before
 * it ends; recording a run done extends it to now + 2 x `leaseMs`.
 */
export class Epochs {
  private readonly idle: Epoch[] = [];
  private readonly states = new Map<string, EpochState>();
  private readonly reads = new Map<string, Promise<EpochState | undefined>>();
  private readonly extending = new Map<string, Promise<boolean>>();
  private readonly marks = new Map<string, HighWaterMarks>();
  /** Every epoch this process started (their states are known here). */
  private readonly mine = new Set<string>();
  /** Epochs read after their lease ran out: dead, their records never change again. */
  private readonly final = new Set<string>();

  constructor(
    private readonly store: UsageStore,
    private readonly leaseMs: number,
    private readonly clock: () => Date,
    private readonly newId: () => string = newEpochId,
  ) {}

  /** An idle epoch with enough lease left, else a new one (its record written first). */
  async acquire(): Promise<Epoch> {
    const now = this.clock().getTime();
    while (this.idle.length > 0) {
      const e = this.idle.pop()!;
      if (e.leaseUntil - now >= this.leaseMs) return e;
    }
    const e: Epoch = { id: this.newId(), run: 0, leaseUntil: now + 2 * this.leaseMs };
    await this.store.startEpoch(e.id, e.leaseUntil, this.clock());
    this.mine.add(e.id);
    this.states.set(e.id, { done: 0, leaseUntil: e.leaseUntil });
    return e;
  }

  /** The last moment (epoch ms) a pass of `e` may send a write. */
  writeDeadline(e: Epoch): number {
    return e.leaseUntil - this.leaseMs / 2;
  }

  /**
   * Keeps `e` writable through a long run: within `leaseMs / 2` of its write deadline the lease
   * is extended (one write, shared by the run's concurrent writes), only while the record's
   * lease is still running. False once `e` may not write any more.
   */
  async keepAlive(e: Epoch): Promise<boolean> {
    const now = this.clock().getTime();
    if (now > this.writeDeadline(e)) return false;
    if (now < this.writeDeadline(e) - this.leaseMs / 2) return true;
    let extending = this.extending.get(e.id);
    if (!extending) {
      const leaseUntil = now + 2 * this.leaseMs;
      extending = this.store.extendLease(e.id, leaseUntil, this.clock()).then(
        (ok) => {
          if (ok) e.leaseUntil = Math.max(e.leaseUntil, leaseUntil);
          return ok;
        },
        () => false,
      );
      this.extending.set(e.id, extending);
      const forget = () => this.extending.delete(e.id);
      extending.then(forget, forget);
    }
    // a failed extension leaves the old deadline, still ahead of now
    return (await extending) || this.clock().getTime() <= this.writeDeadline(e);
  }

  /** Records run `run` of `e` done. False when that is not known to have landed: `e` is then never used again. */
  async finish(e: Epoch, run: number): Promise<boolean> {
    const leaseUntil = this.clock().getTime() + 2 * this.leaseMs;
    for (let attempt = 0; attempt < 3; attempt++) {
      // like every write of the epoch: none after its deadline (the epoch is then dropped)
      if (this.clock().getTime() > this.writeDeadline(e)) return false;
      try {
        await this.store.finishRun(e.id, run, leaseUntil, this.clock());
        e.leaseUntil = leaseUntil;
        this.states.set(e.id, { done: run, leaseUntil });
        return true;
      } catch {
        // an unknown outcome: the same write again (it only raises `done`)
      }
    }
    return false;
  }

  /** Back to the pool after a pass; an epoch whose last run is not recorded done is dropped. */
  release(e: Epoch, reusable: boolean): void {
    if (reusable) this.idle.push(e);
  }

  /**
   * The state of the epoch holding a claim of `run`: from what this process knows when that
   * says the run is done, else read (concurrent questions about one epoch share one read).
   */
  async stateFor(epoch: string, run: number): Promise<EpochState | undefined> {
    const known = this.states.get(epoch);
    if (known && known.done >= run) return known;
    let read = this.reads.get(epoch);
    if (!read) {
      read = this.store.epochStates([epoch]).then((m) => {
        const s = m.get(epoch);
        if (s) this.note(epoch, s);
        return s;
      });
      this.reads.set(epoch, read);
      const forget = () => this.reads.delete(epoch);
      read.then(forget, forget);
    }
    return read;
  }

  /** Keeps what an item write returned about the item's marks (bounded, oldest forgotten first). */
  remember(targetId: string, marks: HighWaterMarks): void {
    setBounded(this.marks, targetId, marks, REMEMBERED_ITEMS);
  }

  /** A write removed these epochs' marks from the item (and returned nothing): forgets them. */
  removed(targetId: string, epochs: readonly string[]): void {
    const known = this.marks.get(targetId);
    if (!known || epochs.length === 0) return;
    const rest = { ...known };
    for (const e of epochs) delete rest[e];
    this.marks.set(targetId, rest);
  }

  /**
   * Reads the states of the other epochs seen on these items that are not known yet, or whose
   * lease, as last read, has run out since (at most 100, one request; a failure only means
   * nothing is removed this time). An epoch read alive is not read again before its lease
   * ends, and one read dead never again: a live process's epochs cost no read per run.
   */
  async learn(targetIds: readonly string[]): Promise<void> {
    const now = this.clock().getTime();
    const wanted = new Set<string>();
    for (const id of targetIds) {
      for (const epoch of Object.keys(this.marks.get(id) ?? {})) {
        const s = this.states.get(epoch);
        if (this.mine.has(epoch) || this.final.has(epoch) || (s && now < s.leaseUntil)) continue;
        wanted.add(epoch);
      }
      if (wanted.size >= 100) break;
    }
    if (wanted.size === 0) return;
    try {
      const read = await this.store.epochStates([...wanted].slice(0, 100));
      for (const [epoch, s] of read) {
        this.note(epoch, s);
        if (now >= s.leaseUntil) this.final.add(epoch);
      }
    } catch {
      // cleaning waits for a later write
    }
  }

  /** Marks of dead epochs on this item that are at most their `done`: safe to remove with the next write. */
  cleanable(targetId: string, ownEpoch: string): Cleanup[] {
    const now = this.clock().getTime();
    const out: Cleanup[] = [];
    for (const [epoch, run] of Object.entries(this.marks.get(targetId) ?? {})) {
      if (epoch === ownEpoch) continue;
      const s = this.states.get(epoch);
      if (s && now >= s.leaseUntil && run <= s.done) out.push({ epoch, upTo: s.done });
      if (out.length >= CLEAN_PER_WRITE) break;
    }
    return out;
  }

  private note(epoch: string, s: EpochState): void {
    const known = this.states.get(epoch);
    this.states.set(epoch, { done: Math.max(s.done, known?.done ?? 0), leaseUntil: Math.max(s.leaseUntil, known?.leaseUntil ?? 0) });
  }
}
