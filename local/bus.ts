import { randomUUID } from "node:crypto";
import { matchesPattern, type EventPattern } from "../shared/events/rules";
import { LOCAL_ACCOUNT_ID } from "./handlers";

/** PutEvents limits, as documented for EventBridge. */
export const MAX_ENTRIES_PER_CALL = 10;
export const MAX_ENTRY_BYTES = 256 * 1024;

/** The EventBridge event envelope a rule target (our SQS queue) receives. */
export interface EventEnvelope {
  version: "0";
  id: string;
  "detail-type": string;
  source: string;
  account: string;
  time: string;
  region: string;
  resources: string[];
  detail: unknown;
}

export interface PutEventsRequestEntry {
  Source?: unknown;
  DetailType?: unknown;
  Detail?: unknown;
  EventBusName?: unknown;
  /** The SDK serialises `Date` as epoch seconds in JSON 1.1; a string is accepted too. */
  Time?: unknown;
  Resources?: unknown;
  TraceHeader?: unknown;
}

export type PutEventsResultEntry = { EventId: string } | { ErrorCode: string; ErrorMessage: string };

/** A JSON 1.1 protocol error: status + `{ __type, message }`, which the SDK turns into a typed exception. */
export class AwsJsonError extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
    this.name = "AwsJsonError";
  }
}

export interface BusTarget {
  name: string;
  pattern: EventPattern;
  deliver(envelope: EventEnvelope): void;
}

export interface RecentEvent {
  receivedAt: string;
  eventBusName: string;
  envelope: EventEnvelope;
  /** Names of the rules that matched (and got a copy). */
  matchedRules: string[];
}

/**
 * The local event bus: validates PutEvents entries the way EventBridge does, wraps each
 * accepted one in the envelope a rule target receives, and routes it to every matching
 * rule. Keeps the most recent events (all sources) for inspection.
 */
export class LocalBus {
  private readonly recent: RecentEvent[] = [];
  private recentStart = 0;
  private counters = { accepted: 0, rejected: 0, routed: 0, unmatched: 0 };

  constructor(
    private readonly opts: {
      busName: string;
      region: string;
      targets: BusTarget[];
      recentLimit?: number;
      onEvent?: (event: RecentEvent) => void;
    },
  ) {}

  putEvents(request: unknown): { FailedEntryCount: number; Entries: PutEventsResultEntry[] } {
    const entries = (request as { Entries?: unknown } | null)?.Entries;
    if (!Array.isArray(entries)) {
      throw new AwsJsonError("ValidationException", "1 validation error detected: Value null at 'entries' failed to satisfy constraint: Member must not be null");
    }
    if (entries.length < 1 || entries.length > MAX_ENTRIES_PER_CALL) {
      throw new AwsJsonError(
        "ValidationException",
        `1 validation error detected: Value '[${entries.length} entries]' at 'entries' failed to satisfy constraint: ` +
          `Member must have length ${entries.length < 1 ? "greater than or equal to 1" : `less than or equal to ${MAX_ENTRIES_PER_CALL}`}`,
      );
    }
    const results = entries.map((entry) => this.putOne((entry ?? {}) as PutEventsRequestEntry));
    const failed = results.filter((r) => "ErrorCode" in r).length;
    return { FailedEntryCount: failed, Entries: results };
  }

  recentEvents(filter: { source?: string; detailType?: string; limit?: number } = {}): RecentEvent[] {
    const all = [...this.recent.slice(this.recentStart), ...this.recent.slice(0, this.recentStart)];
    const matching = all.filter(
      (e) =>
        (!filter.source || e.envelope.source === filter.source) &&
        (!filter.detailType || e.envelope["detail-type"] === filter.detailType),
    );
    return matching.slice(-(filter.limit ?? matching.length));
  }

  stats() {
    return { ...this.counters, recentKept: this.recent.length };
  }

  private putOne(entry: PutEventsRequestEntry): PutEventsResultEntry {
    const result = this.validate(entry);
    if ("ErrorCode" in result) {
      this.counters.rejected++;
      return result;
    }
    const { envelope, busName } = result;
    const matchedRules: string[] = [];
    for (const target of this.opts.targets) {
      if (!matchesPattern(target.pattern, envelope)) continue;
      target.deliver(envelope);
      matchedRules.push(target.name);
    }
    this.counters.accepted++;
    if (matchedRules.length) this.counters.routed++;
    else this.counters.unmatched++;
    const recent: RecentEvent = { receivedAt: new Date().toISOString(), eventBusName: busName, envelope, matchedRules };
    this.remember(recent);
    this.opts.onEvent?.(recent);
    return { EventId: envelope.id };
  }

  private validate(entry: PutEventsRequestEntry): { envelope: EventEnvelope; busName: string } | { ErrorCode: string; ErrorMessage: string } {
    for (const field of ["Source", "DetailType", "Detail"] as const) {
      const value = entry[field];
      if (typeof value !== "string" || value.length === 0) {
        return invalidArgument(`Parameter ${field} is not valid. Reason: ${field} is a required argument.`);
      }
    }
    const busName = this.busNameOf(entry.EventBusName);
    if (busName === undefined) {
      return { ErrorCode: "ResourceNotFoundException", ErrorMessage: `Event bus ${String(entry.EventBusName)} does not exist.` };
    }
    const resources = entry.Resources ?? [];
    if (!Array.isArray(resources) || resources.some((r) => typeof r !== "string")) {
      return invalidArgument("Parameter Resources is not valid. Reason: Resources must be a list of strings.");
    }
    const source = entry.Source as string;
    const detailType = entry.DetailType as string;
    const detailText = entry.Detail as string;
    const size = entrySize(source, detailType, detailText, resources as string[], entry.Time !== undefined);
    if (size > MAX_ENTRY_BYTES) {
      return invalidArgument(`Entry size ${size} bytes exceeds the limit of ${MAX_ENTRY_BYTES} bytes.`);
    }
    let detail: unknown;
    try {
      detail = JSON.parse(detailText);
    } catch {
      return { ErrorCode: "MalformedDetail", ErrorMessage: "Detail is malformed." };
    }
    // EventBridge requires the detail to be a JSON object.
    if (typeof detail !== "object" || detail === null || Array.isArray(detail)) {
      return { ErrorCode: "MalformedDetail", ErrorMessage: "Detail is malformed." };
    }
    const time = eventTime(entry.Time);
    if (time === undefined) return invalidArgument("Parameter Time is not valid.");
    return {
      busName,
      envelope: {
        version: "0",
        id: randomUUID(),
        "detail-type": detailType,
        source,
        account: LOCAL_ACCOUNT_ID,
        time,
        region: this.opts.region,
        resources: resources as string[],
        detail,
      },
    };
  }

  /** The bus of this stack answers to its name, its ARN and `default`; any other bus does not exist. */
  private busNameOf(value: unknown): string | undefined {
    if (value === undefined || value === null || value === "" || value === "default") return this.opts.busName;
    if (typeof value !== "string") return undefined;
    const name = value.startsWith("arn:") ? value.slice(value.lastIndexOf("/") + 1) : value;
    return name === this.opts.busName ? name : undefined;
  }

  private remember(event: RecentEvent): void {
    const limit = this.opts.recentLimit ?? 500;
    if (this.recent.length < limit) {
      this.recent.push(event);
      return;
    }
    this.recent[this.recentStart] = event;
    this.recentStart = (this.recentStart + 1) % limit;
  }
}

function invalidArgument(message: string) {
  return { ErrorCode: "InvalidArgument", ErrorMessage: message };
}

/** Entry size as EventBridge computes it (UTF-8 bytes of the fields; 14 bytes for Time). */
function entrySize(source: string, detailType: string, detail: string, resources: string[], hasTime: boolean): number {
  let size = hasTime ? 14 : 0;
  for (const s of [source, detailType, detail, ...resources]) size += Buffer.byteLength(s, "utf8");
  return size;
}

/** Envelope time: second precision, `Z` suffix, like EventBridge. */
function eventTime(value: unknown): string | undefined {
  let at: Date;
  if (value === undefined || value === null) at = new Date();
  else if (typeof value === "number") at = new Date(value * 1000);
  else if (typeof value === "string") at = new Date(/^\d+(\.\d+)?$/.test(value) ? Number(value) * 1000 : value);
  else return undefined;
  if (Number.isNaN(at.getTime())) return undefined;
  return at.toISOString().replace(/\.\d{3}Z$/, "Z");
}
