import { appendFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { LocalJournal, type JournaledMessage } from "../../../local/journal";
import type { DeadLetter } from "../../../local/sqs";

const dirs: string[] = [];
function path(): string {
  const dir = mkdtempSync(join(tmpdir(), "journal-"));
  dirs.push(dir);
  return join(dir, "queues", "journal.jsonl");
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const msg = (id: string): JournaledMessage => ({ queue: "local-ingest-queue", messageId: id, body: `{"id":"${id}"}`, sentAt: 1_700_000_000_000 });
const letter = (id: string): DeadLetter => ({
  queue: "local-ingest-queue",
  messageId: id,
  body: "{}",
  receiveCount: 5,
  sentAt: "2026-12-01T00:00:00.000Z",
  deadLetteredAt: "2026-12-01T00:00:05.000Z",
  reason: "handler threw",
});

describe("local queue journal", () => {
  it("gives back, after a reopen, the messages neither acked nor dead-lettered, and the dead letters", () => {
    // prepare
    const p = path();
    const { journal } = LocalJournal.open(p);
    journal.append([msg("a"), msg("b"), msg("c")]);
    journal.append([msg("d")]);
    journal.ack("a");
    journal.deadLetter(letter("c"));
    // act: no close, as after a kill -9
    const reopened = LocalJournal.open(p);
    // assess
    expect(reopened.pending).toEqual([msg("b"), msg("d")]);
    expect(reopened.deadLetters).toEqual([letter("c")]);
    expect(reopened.journal.pendingCount()).toBe(2);
    // and the file was compacted to the live lines
    expect(readFileSync(p, "utf8").trim().split("\n")).toHaveLength(3);
    reopened.journal.close();
  });

  it("skips a line torn by a crash mid-write (that request was never answered)", () => {
    const p = path();
    const { journal } = LocalJournal.open(p);
    journal.append([msg("a")]);
    appendFileSync(p, '{"t":"msg","queue":"local-ingest-queue","messageId":"b","bo');
    const reopened = LocalJournal.open(p);
    expect(reopened.pending.map((m) => m.messageId)).toEqual(["a"]);
    expect(reopened.skippedLines).toBe(1);
    reopened.journal.close();
  });

  it("compacts itself once it has grown compactAfter lines, keeping what is pending", () => {
    const p = path();
    const { journal } = LocalJournal.open(p, { compactAfter: 10 });
    for (let i = 0; i < 20; i++) {
      journal.append([msg(`m${i}`)]);
      if (i % 2 === 0) journal.ack(`m${i}`);
    }
    const lines = readFileSync(p, "utf8").trim().split("\n").length;
    expect(lines).toBeLessThan(30);
    journal.close();
    expect(LocalJournal.open(p).pending.map((m) => m.messageId)).toEqual(Array.from({ length: 10 }, (_, i) => `m${2 * i + 1}`));
  });

  it("ignores acks after close (a batch ending while the stack stops): that message is delivered again next start", () => {
    const p = path();
    const { journal } = LocalJournal.open(p);
    journal.append([msg("a")]);
    journal.close();
    journal.ack("a");
    expect(LocalJournal.open(p).pending.map((m) => m.messageId)).toEqual(["a"]);
  });
});
