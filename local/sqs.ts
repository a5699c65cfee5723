import { createHash, randomUUID } from "node:crypto";
import type { SQSEvent, SQSRecord } from "aws-lambda";
import { LOCAL_ACCOUNT_ID } from "./handlers";

/** What a queue hands each batch to: the rule's Lambda handler, wrapped by the stack. */
export type BatchInvoker = (event: SQSEvent) => Promise<unknown>;

export interface SimQueueOptions {
  name: string;
  region: string;
  batchSize: number;
  maxReceiveCount: number;
  /** How long a failed (or unacknowledged) message stays invisible before redelivery. */
  visibilityTimeoutMs: number;
  /** Wait this long for a batch to fill before delivering a partial one (Lambda's MaximumBatchingWindow). */
  batchingWindowMs: number;
  /** Batches handed to the handler at the same time; 1 keeps local runs deterministic. */
  concurrency: number;
  invoke: BatchInvoker;
  onBatchError?: (queue: string, error: unknown) => void;
  onDeadLetter?: (queue: string, message: DeadLetter) => void;
  /** A message deleted from the queue: the handler did not report it failed. */
  onDeleted?: (queue: string, messageId: string) => void;
}

interface Message {
  messageId: string;
  body: string;
  md5OfBody: string;
  sentAt: number;
  firstReceiveAt?: number;
  receiveCount: number;
  /** Ready for delivery from this instant (the "visible since" time for the batching window). */
  visibleAt: number;
  lastError?: string;
}

export interface DeadLetter {
  queue: string;
  messageId: string;
  body: string;
  receiveCount: number;
  sentAt: string;
  deadLetteredAt: string;
  reason: string;
}

export interface QueueStats {
  name: string;
  /** Batches handed to the handler at the same time, at most. */
  concurrency: number;
  visible: number;
  delayed: number;
  inFlight: number;
  deadLetters: number;
  sent: number;
  deleted: number;
  batches: number;
  failedBatches: number;
  redeliveries: number;
  /** Total time spent inside the handler, summed over batches. */
  handlerMs: number;
}

/**
 * An in-memory SQS queue with a Lambda event source mapping in front of it: standard-queue
 * semantics that matter to our handlers (at-least-once delivery, visibility timeout,
 * `ReportBatchItemFailures`, redrive to a DLQ after `maxReceiveCount` receives).
 */
export class SimQueue {
  private ready: Message[] = [];
  /** Failed messages waiting out their visibility timeout, kept sorted by `visibleAt`. */
  private delayed: Message[] = [];
  private readonly inFlight = new Map<string, Message>();
  readonly deadLetters: DeadLetter[] = [];
  private running = 0;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private stopped = false;
  private counters = { sent: 0, deleted: 0, batches: 0, failedBatches: 0, redeliveries: 0, handlerMs: 0 };
  private readonly arn: string;

  constructor(private readonly opts: SimQueueOptions) {
    this.arn = `arn:aws:sqs:${opts.region}:${LOCAL_ACCOUNT_ID}:${opts.name}`;
  }

  get name(): string {
    return this.opts.name;
  }

  /** Enqueues a message; `messageId`/`sentAt` are given when a journaled message is delivered again after a restart. */
  send(body: string, opts: { messageId?: string; sentAt?: number } = {}): string {
    const now = Date.now();
    const messageId = opts.messageId ?? randomUUID();
    this.ready.push({
      messageId,
      body,
      md5OfBody: createHash("md5").update(body).digest("hex"),
      sentAt: opts.sentAt ?? now,
      receiveCount: 0,
      visibleAt: now,
    });
    this.counters.sent++;
    this.pump();
    return messageId;
  }

  /** True when nothing is waiting, delayed or being processed (dead letters do not count). */
  idle(): boolean {
    return this.ready.length === 0 && this.delayed.length === 0 && this.inFlight.size === 0;
  }

  /** Lists a dead letter kept from an earlier run (the journal's). */
  restoreDeadLetter(letter: DeadLetter): void {
    this.deadLetters.push(letter);
  }

  stats(): QueueStats {
    return {
      name: this.opts.name,
      concurrency: this.opts.concurrency,
      visible: this.ready.length,
      delayed: this.delayed.length,
      inFlight: this.inFlight.size,
      deadLetters: this.deadLetters.length,
      ...this.counters,
    };
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private pump(): void {
    if (this.stopped) return;
    const now = Date.now();
    while (this.delayed.length && this.delayed[0].visibleAt <= now) this.ready.push(this.delayed.shift()!);

    while (this.running < this.opts.concurrency && this.ready.length > 0) {
      const windowEnds = this.ready[0].visibleAt + this.opts.batchingWindowMs;
      if (this.ready.length < this.opts.batchSize && windowEnds > now) {
        this.wakeAt(windowEnds);
        break;
      }
      void this.deliver(this.ready.splice(0, this.opts.batchSize));
    }
    if (this.delayed.length) this.wakeAt(this.delayed[0].visibleAt);
  }

  private wakeAt(at: number): void {
    if (this.timer && this.timerAt <= at) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerAt = Infinity;
      this.pump();
    }, Math.max(0, at - Date.now()));
  }

  private async deliver(batch: Message[]): Promise<void> {
    this.running++;
    this.counters.batches++;
    const receivedAt = Date.now();
    const records: SQSRecord[] = batch.map((m) => {
      m.receiveCount++;
      if (m.receiveCount > 1) this.counters.redeliveries++;
      m.firstReceiveAt ??= receivedAt;
      this.inFlight.set(m.messageId, m);
      return this.toRecord(m);
    });

    let failed: Set<string>;
    let reason: string;
    try {
      const result = await this.opts.invoke({ Records: records });
      ({ failed, reason } = failuresOf(result, batch));
    } catch (error) {
      // A thrown handler error fails the whole batch, exactly as on Lambda.
      this.opts.onBatchError?.(this.opts.name, error);
      failed = new Set(batch.map((m) => m.messageId));
      reason = `handler threw: ${describe(error)}`;
    }
    if (failed.size) this.counters.failedBatches++;

    const done = Date.now();
    this.counters.handlerMs += done - receivedAt;
    for (const m of batch) {
      this.inFlight.delete(m.messageId);
      if (!failed.has(m.messageId)) {
        this.counters.deleted++;
        this.opts.onDeleted?.(this.opts.name, m.messageId);
        continue;
      }
      m.lastError = reason;
      if (m.receiveCount >= this.opts.maxReceiveCount) {
        // SQS moves it on the receive after the limit; moving it now is the same outcome, sooner.
        const letter: DeadLetter = {
          queue: this.opts.name,
          messageId: m.messageId,
          body: m.body,
          receiveCount: m.receiveCount,
          sentAt: new Date(m.sentAt).toISOString(),
          deadLetteredAt: new Date(done).toISOString(),
          reason,
        };
        this.deadLetters.push(letter);
        this.opts.onDeadLetter?.(this.opts.name, letter);
        continue;
      }
      m.visibleAt = receivedAt + this.opts.visibilityTimeoutMs;
      insertSorted(this.delayed, m);
    }
    this.running--;
    this.pump();
  }

  private toRecord(m: Message): SQSRecord {
    return {
      messageId: m.messageId,
      // A fresh receipt handle per receive, as SQS issues.
      receiptHandle: Buffer.from(`${m.messageId}:${m.receiveCount}:${randomUUID()}`).toString("base64"),
      body: m.body,
      attributes: {
        ApproximateReceiveCount: String(m.receiveCount),
        SentTimestamp: String(m.sentAt),
        SenderId: "AIDALOCALEVENTBRIDGE",
        ApproximateFirstReceiveTimestamp: String(m.firstReceiveAt),
      },
      messageAttributes: {},
      md5OfBody: m.md5OfBody,
      eventSource: "aws:sqs",
      eventSourceARN: this.arn,
      awsRegion: this.opts.region,
    };
  }
}

/**
 * Reads a `ReportBatchItemFailures` response. As on Lambda, an item identifier that is not a
 * message of the batch (or is empty) makes the whole batch fail; a void/empty response means
 * every message succeeded.
 */
function failuresOf(result: unknown, batch: Message[]): { failed: Set<string>; reason: string } {
  const items = (result as { batchItemFailures?: unknown } | undefined)?.batchItemFailures;
  if (items === undefined || items === null) return { failed: new Set(), reason: "" };
  const ids = new Set(batch.map((m) => m.messageId));
  if (!Array.isArray(items)) return { failed: ids, reason: "invalid batchItemFailures response (not an array)" };
  const failed = new Set<string>();
  for (const item of items) {
    const id = (item as { itemIdentifier?: unknown } | null)?.itemIdentifier;
    if (typeof id !== "string" || !ids.has(id)) {
      return { failed: ids, reason: `invalid itemIdentifier ${JSON.stringify(id)}: whole batch failed` };
    }
    failed.add(id);
  }
  return { failed, reason: "reported in batchItemFailures" };
}

function insertSorted(list: Message[], m: Message): void {
  let i = list.length;
  while (i > 0 && list[i - 1].visibleAt > m.visibleAt) i--;
  list.splice(i, 0, m);
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
