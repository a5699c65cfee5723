import {
  INVOCATION_DETAIL_TYPE,
  formatIssues,
  invocationEventV1Schema,
  type InvocationEventV1,
  type InvocationSource,
} from "../events/invocation";
import { PIPELINE_METRICS } from "../observability/metric-names";
import { DataplaneConfigurationError } from "./errors";
import { batchEntries, entrySize, type BusEntry } from "./batching";
import { consoleLogger, noMetrics, type DataplaneLogger, type DataplaneMetrics, type UsageSink } from "./ports";

export type PutEntryResult = { ok: true } | { ok: false; errorCode: string; errorMessage?: string };

/** Port: one PutEvents request. Results are per entry, in order. Throws when the whole call failed. */
export interface BusPublisher {
  put(entries: readonly BusEntry[]): Promise<PutEntryResult[]>;
}

/** Per-entry error codes that no retry can fix (the entry itself is wrong or not allowed). */
const PERMANENT_ENTRY_ERRORS = new Set([
  "InvalidArgument",
  "MalformedDetail",
  "ValidationException",
  "AccessDeniedException",
  "NotAuthorizedForSourceException",
  "NotAuthorizedForDetailTypeException",
]);

export interface UsageEmitterOptions {
  publisher: BusPublisher;
  /**
   * The pipeline's bus (name or ARN). Required: PutEvents without one goes to the account's
   * `default` bus, where no rule of this pipeline listens, and the event is lost without an error.
   */
  eventBusName: string;
  /** Events held in memory (queued + in flight) before new ones are dropped (and counted). Default 10,000. */
  maxBuffered?: number;
  /** Background flush period; 0 disables the timer (flush explicitly). Default 200 ms. */
  flushIntervalMs?: number;
  /** Start a flush as soon as this many events are queued. Default 10 (one full PutEvents). */
  flushAt?: number;
  /** Attempts per entry, first send included. Default 6. */
  maxAttempts?: number;
  /** PutEvents requests in flight at once. Default 4. */
  concurrency?: number;
  /** Register `process.once("beforeExit")` to flush what is left when the event loop drains. Default false. */
  flushOnBeforeExit?: boolean;
  logger?: DataplaneLogger;
  metrics?: DataplaneMetrics;
  /** Called with events given up on (permanent error or attempts exhausted), after they were logged. */
  onFailed?: (events: InvocationEventV1[], errorCode: string) => void;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
  now?: () => number;
}

export interface EmitterStats {
  /** Entries EventBridge accepted. */
  sent: number;
  /** Entries given up on (logged with their event ids). */
  failed: number;
  /** Re-sends of entries after a failure. */
  retried: number;
  /** Events not buffered: buffer full, or emitted after close. */
  dropped: number;
  /** Events rejected by the v1 schema (a wrapper bug; logged). */
  invalid: number;
  /** Queued + in flight right now. */
  buffered: number;
}

interface Pending {
  entry: BusEntry;
  event: InvocationEventV1;
}

/**
 * Buffers invocation events and ships them with PutEvents in the background. `emit` never
 * throws and never waits: the model call it meters must not slow down or fail because of
 * metering. What cannot be delivered is never lost silently: dropped events are counted in
 * `EmitterBufferOverflow` and logged, failed ones logged with their ids.
 */
export class UsageEmitter implements UsageSink {
  private readonly queue: Pending[] = [];
  private inFlight = 0;
  private draining: Promise<void> | undefined;
  private closed = false;
  private readonly timer: ReturnType<typeof setInterval> | undefined;
  private readonly counters = { sent: 0, failed: 0, retried: 0, dropped: 0, invalid: 0 };
  private lastDropWarning = Number.NEGATIVE_INFINITY;
  private readonly beforeExit = () => void this.flush();

  private readonly maxBuffered: number;
  private readonly flushAt: number;
  private readonly maxAttempts: number;
  private readonly concurrency: number;
  private readonly logger: DataplaneLogger;
  private readonly metrics: DataplaneMetrics;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly random: () => number;
  private readonly now: () => number;

  constructor(private readonly opts: UsageEmitterOptions) {
    assertPipelineBus(opts.eventBusName);
    this.maxBuffered = opts.maxBuffered ?? 10_000;
    this.flushAt = opts.flushAt ?? 10;
    this.maxAttempts = opts.maxAttempts ?? 6;
    this.concurrency = opts.concurrency ?? 4;
    this.logger = opts.logger ?? consoleLogger;
    this.metrics = opts.metrics ?? noMetrics;
    this.sleep = opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms).unref()));
    this.random = opts.random ?? Math.random;
    this.now = opts.now ?? Date.now;
    const interval = opts.flushIntervalMs ?? 200;
    if (interval > 0) {
      this.timer = setInterval(() => void this.drain(), interval);
      // A metering timer must never be what keeps a process alive.
      this.timer.unref();
    }
    if (opts.flushOnBeforeExit) process.once("beforeExit", this.beforeExit);
  }

  emit(event: InvocationEventV1, source: InvocationSource): boolean {
    const parsed = invocationEventV1Schema.safeParse(event);
    if (!parsed.success) {
      this.counters.invalid++;
      this.logger.error("usage event rejected by the v1 schema; not sent", {
        eventId: (event as { eventId?: unknown })?.eventId,
        tenantId: (event as { tenantId?: unknown })?.tenantId,
        issues: formatIssues(parsed.error),
      });
      return false;
    }
    if (this.closed) {
      this.drop(parsed.data, "emitter closed");
      return false;
    }
    if (this.queue.length + this.inFlight >= this.maxBuffered) {
      this.drop(parsed.data, "buffer full");
      return false;
    }
    this.queue.push({
      event: parsed.data,
      entry: {
        source,
        detailType: INVOCATION_DETAIL_TYPE,
        detail: JSON.stringify(parsed.data),
        eventBusName: this.opts.eventBusName,
      },
    });
    if (this.queue.length >= this.flushAt) void this.drain();
    return true;
  }

  get stats(): EmitterStats {
    return { ...this.counters, buffered: this.queue.length + this.inFlight };
  }

  /** Resolves when everything emitted so far was delivered or given up on. Never rejects. */
  async flush(): Promise<void> {
    while (this.queue.length > 0 || this.draining) await this.drain();
  }

  /** Stops the timer, refuses new events (counted as dropped) and flushes the rest. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    process.removeListener("beforeExit", this.beforeExit);
    await this.flush();
  }

  private drop(event: InvocationEventV1, why: string): void {
    // Count first, then tell: a dropped usage event is lost revenue, it may never go unnoticed.
    this.metrics.count(PIPELINE_METRICS.emitterDropped, 1);
    this.counters.dropped++;
    const now = this.now();
    if (now - this.lastDropWarning >= 5_000 || this.counters.dropped === 1) {
      this.lastDropWarning = now;
      this.logger.warn(`usage event dropped (${why})`, {
        metric: PIPELINE_METRICS.emitterDropped,
        droppedTotal: this.counters.dropped,
        maxBuffered: this.maxBuffered,
        tenantId: event.tenantId,
        eventId: event.eventId,
      });
    }
  }

  private drain(): Promise<void> {
    this.draining ??= this.drainQueue().finally(() => {
      this.draining = undefined;
    });
    return this.draining;
  }

  private async drainQueue(): Promise<void> {
    while (this.queue.length > 0) {
      const taken = this.queue.splice(0, this.queue.length);
      this.inFlight += taken.length;
      const { batches, oversized } = batchEntries(taken, (p) => entrySize(p.entry));
      if (oversized.length) this.giveUp(oversized, "EntryTooLarge", "entry exceeds the PutEvents size limit");
      let next = 0;
      const worker = async () => {
        while (next < batches.length) await this.sendBatch(batches[next++]);
      };
      await Promise.all(Array.from({ length: Math.min(this.concurrency, batches.length) }, worker));
    }
  }

  private async sendBatch(batch: Pending[]): Promise<void> {
    let pending = batch;
    for (let attempt = 1; ; attempt++) {
      const retry: Pending[] = [];
      let code = "";
      let message: string | undefined;
      try {
        const results = await this.opts.publisher.put(pending.map((p) => p.entry));
        pending.forEach((p, i) => {
          const r: PutEntryResult = results[i] ?? { ok: false, errorCode: "MissingResult" };
          if (r.ok) {
            this.counters.sent++;
            this.inFlight--;
          } else if (PERMANENT_ENTRY_ERRORS.has(r.errorCode)) {
            this.giveUp([p], r.errorCode, r.errorMessage);
          } else {
            retry.push(p);
            code = r.errorCode;
            message = r.errorMessage;
          }
        });
      } catch (error) {
        // The whole call failed (network, throttling beyond the SDK's own retries): resend all.
        retry.push(...pending);
        code = error instanceof Error ? error.name : "PutEventsFailed";
        message = error instanceof Error ? error.message : String(error);
      }
      if (retry.length === 0) return;
      if (attempt >= this.maxAttempts) {
        this.giveUp(retry, code, `gave up after ${attempt} attempts: ${message ?? ""}`);
        return;
      }
      this.counters.retried += retry.length;
      await this.sleep(backoffMs(attempt, this.random));
      pending = retry;
    }
  }

  private giveUp(items: Pending[], errorCode: string, errorMessage?: string): void {
    this.counters.failed += items.length;
    this.inFlight -= items.length;
    this.logger.error("usage events not delivered", {
      count: items.length,
      errorCode,
      errorMessage,
      events: items.slice(0, 20).map((p) => `${p.event.tenantId}/${p.event.eventId}`),
    });
    try {
      this.opts.onFailed?.(
        items.map((p) => p.event),
        errorCode,
      );
    } catch {
      // a faulty hook must not break delivery of the other events
    }
  }
}

/**
 * Refuses a missing bus name and the account's `default` bus (by name or ARN): EventBridge
 * accepts events sent there, and nothing of this pipeline ever sees them.
 */
export function assertPipelineBus(eventBusName: unknown): asserts eventBusName is string {
  if (typeof eventBusName !== "string" || eventBusName.trim() === "") {
    throw new DataplaneConfigurationError(
      "UsageEmitter needs eventBusName (the pipeline's bus, e.g. EVENT_BUS_NAME): without it PutEvents sends usage to the account's default bus, where nothing counts it",
    );
  }
  if (eventBusName === "default" || /:event-bus\/default$/.test(eventBusName)) {
    throw new DataplaneConfigurationError(
      `UsageEmitter eventBusName '${eventBusName}' is the account's default bus: no rule of this pipeline listens there; use the pipeline's bus (EVENT_BUS_NAME)`,
    );
  }
}

/** Full-jitter exponential backoff: 50 ms base, 5 s cap. */
export function backoffMs(attempt: number, random: () => number = Math.random): number {
  return Math.round(random() * Math.min(5_000, 50 * 2 ** attempt));
}
