import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { dirname, join } from "node:path";
import type { DeadLetter } from "./sqs";

/** A message the bus accepted for a queue and answered 200 for. */
export interface JournaledMessage {
  queue: string;
  messageId: string;
  body: string;
  sentAt: number;
}

type Line =
  | ({ t: "msg" } & JournaledMessage)
  /** Deleted from its queue: the handler committed it (or reported it handled). */
  | { t: "ack"; id: string }
  /** Moved to the queue's DLQ: kept for GET /local/dlq after a restart. */
  | { t: "dead"; letter: DeadLetter };

export class LocalJournalError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "LocalJournalError";
  }
}

/**
 * The local queues' write-ahead journal (with `--data`): what PutEvents accepted survives a
 * crash of the local stack, as it survives in SQS on AWS.
 *
 * - `append` writes the messages of one PutEvents request and fsyncs before the bus answers 200.
 * - `ack` records a message deleted from its queue, `dead` one moved to its DLQ. Neither is
 *   fsynced: losing one to a power cut only redelivers a message, and the ingest counts a
 *   redelivered event once.
 * - `open` replays the file: messages without an ack are delivered again, dead letters are
 *   listed again; the file is then rewritten with only those (compaction), as it is whenever
 *   it has grown `compactAfter` lines past its live content.
 */
export class LocalJournal {
  private fd: number;
  private readonly pending = new Map<string, JournaledMessage>();
  private readonly dead: DeadLetter[] = [];
  private linesSinceCompaction = 0;

  private constructor(
    readonly path: string,
    private readonly compactAfter: number,
  ) {
    this.fd = -1;
  }

  /** Opens (or creates) the journal; returns it with what the last run left unfinished. */
  static open(path: string, opts: { compactAfter?: number } = {}): { journal: LocalJournal; pending: JournaledMessage[]; deadLetters: DeadLetter[]; skippedLines: number } {
    const journal = new LocalJournal(path, opts.compactAfter ?? 100_000);
    mkdirSync(dirname(path), { recursive: true });
    let skippedLines = 0;
    if (existsSync(path)) {
      const text = readFileSync(path, "utf8");
      for (const raw of text.split("\n")) {
        if (!raw) continue;
        let line: Line;
        try {
          line = JSON.parse(raw) as Line;
        } catch {
          // A line torn by a crash mid-write: its request was never answered 200.
          skippedLines++;
          continue;
        }
        if (line.t === "msg") journal.pending.set(line.messageId, { queue: line.queue, messageId: line.messageId, body: line.body, sentAt: line.sentAt });
        else if (line.t === "ack") journal.pending.delete(line.id);
        else if (line.t === "dead") {
          journal.pending.delete(line.letter.messageId);
          journal.dead.push(line.letter);
        }
      }
    }
    journal.compact();
    return { journal, pending: [...journal.pending.values()], deadLetters: [...journal.dead], skippedLines };
  }

  /** Persists one request's messages (fsync) before the bus acknowledges them. */
  append(messages: readonly JournaledMessage[]): void {
    if (!messages.length) return;
    this.write(messages.map((m) => JSON.stringify({ t: "msg", ...m })).join("\n") + "\n", true);
    for (const m of messages) this.pending.set(m.messageId, m);
  }

  /** After `close` (a batch finishing while the stack stops) this is a no-op: the message is delivered again next start. */
  ack(messageId: string): void {
    if (this.fd < 0 || !this.pending.delete(messageId)) return;
    this.write(`${JSON.stringify({ t: "ack", id: messageId })}\n`, false);
    this.maybeCompact();
  }

  deadLetter(letter: DeadLetter): void {
    if (this.fd < 0) return;
    this.pending.delete(letter.messageId);
    this.dead.push(letter);
    this.write(`${JSON.stringify({ t: "dead", letter })}\n`, false);
    this.maybeCompact();
  }

  /** Messages accepted and not yet deleted or dead-lettered. */
  pendingCount(): number {
    return this.pending.size;
  }

  close(): void {
    if (this.fd < 0) return;
    closeSync(this.fd);
    this.fd = -1;
  }

  private write(text: string, sync: boolean): void {
    if (this.fd < 0) throw new LocalJournalError(`journal ${this.path} is closed`);
    try {
      writeSync(this.fd, text);
      if (sync) fsyncSync(this.fd);
    } catch (cause) {
      throw new LocalJournalError(`cannot write the journal ${this.path}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    }
    this.linesSinceCompaction++;
  }

  private maybeCompact(): void {
    if (this.linesSinceCompaction < this.compactAfter) return;
    this.compact();
  }

  /** Rewrites the file with only the live lines: temp file, fsync, atomic rename, fsync of the directory. */
  private compact(): void {
    const tmp = `${this.path}.tmp`;
    const fd = openSync(tmp, "w");
    try {
      const lines = [
        ...this.dead.map((letter) => JSON.stringify({ t: "dead", letter })),
        ...[...this.pending.values()].map((m) => JSON.stringify({ t: "msg", ...m })),
      ];
      if (lines.length) writeSync(fd, lines.join("\n") + "\n");
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    if (this.fd >= 0) closeSync(this.fd);
    renameSync(tmp, this.path);
    const dir = openSync(dirname(this.path), "r");
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
    this.fd = openSync(this.path, "a");
    this.linesSinceCompaction = 0;
  }
}

/** Where `--data DIR` keeps the journal. */
export function journalPath(dataDir: string): string {
  return join(dataDir, "queues", "journal.jsonl");
}
