import { randomUUID } from "node:crypto";
import { matchesPattern, type MatcherPattern } from "../shared/events/rules";
import { LOCAL_ACCOUNT_ID } from "./handlers";

/** PutEvents limits, as documented for EventBridge. */
export const MAX_ENTRIES_PER_CALL = 10;
/**
 * 256 KB: the size of one entry and of all entries of one request together (EventBridge's
 * "Calculating PutEvents event entry size"). A request over it fails as a whole with a
 * ValidationException, so an entry over it fails its request too.
 */
export const MAX_REQUEST_BYTES = 256 * 1024;
/** The bus every account has. It exists on AWS, but no rule of this stack is on it. */
export const DEFAULT_BUS = "default";

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

/** A rule on the bus: entries matching any of its patterns are delivered to its queue. */
export interface BusTarget {
  /** The rule's name (reported in `matchedRules`). */
  name: string;
  patterns: readonly MatcherPattern[];
  /** The queue the rule delivers to (several rules may share one). */
  queue: string;
}

export interface Delivery {
  rule: string;
  queue: string;
  envelope: EventEnvelope;
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
  private counters = { accepted: 0, rejected: 0, routed: 0, unmatched: 0, toDefaultBus: 0 };

  constructor(
    private readonly opts: {
      busName: string;
      region: string;
      targets: BusTarget[];
      /**
       * Hands one request's deliveries to the queues. Called once per request, before the
       * response: with a journal it persists them first, and if it throws, nothing of the
       * request is accepted (the call fails with a 500 InternalException, which the SDK retries).
       */
      dispatch: (deliveries: Delivery[]) => void;
      recentLimit?: number;
      onEvent?: (event: RecentEvent) => void;
      /** An entry accepted for the account's default bus: counted nowhere, so say it loudly. */
      onDefaultBus?: (event: RecentEvent) => void;
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
    const total = entries.reduce((sum: number, e) => sum + entrySize((e ?? {}) as PutEventsRequestEntry), 0);
    if (total > MAX_REQUEST_BYTES) {
      // EventBridge's answer (the message is AWS's); nothing of the request is accepted.
      throw new AwsJsonError("ValidationException", "Total size of the entries in the request is over the limit.");
    }

    const accepted: { index: number; busName: string; envelope: EventEnvelope; rules: string[] }[] = [];
    const deliveries: Delivery[] = [];
    const results: PutEventsResultEntry[] = entries.map((raw, index) => {
      const result = this.validate((raw ?? {}) as PutEventsRequestEntry);
      if ("ErrorCode" in result) return result;
      const { envelope, busName } = result;
      const rules: string[] = [];
      if (busName !== DEFAULT_BUS) {
        for (const target of this.opts.targets) {
          if (!target.patterns.some((p) => matchesPattern(p, envelope))) continue;
          deliveries.push({ rule: target.name, queue: target.queue, envelope });
          rules.push(target.name);
        }
      }
      accepted.push({ index, busName, envelope, rules });
      return { EventId: envelope.id };
    });
    if (deliveries.length) {
      try {
        this.opts.dispatch(deliveries);
      } catch (error) {
        throw new AwsJsonError("InternalException", `the local bus could not persist the request: ${error instanceof Error ? error.message : String(error)}`, 500);
      }
    }

    const receivedAt = new Date().toISOString();
    for (const a of accepted) {
      this.counters.accepted++;
      if (a.busName === DEFAULT_BUS) this.counters.toDefaultBus++;
      else if (a.rules.length) this.counters.routed++;
      else this.counters.unmatched++;
      const recent: RecentEvent = { receivedAt, eventBusName: a.busName, envelope: a.envelope, matchedRules: a.rules };
      this.remember(recent);
      if (a.busName === DEFAULT_BUS) this.opts.onDefaultBus?.(recent);
      this.opts.onEvent?.(recent);
    }
    const failed = results.filter((r) => "ErrorCode" in r).length;
    this.counters.rejected += failed;
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
    // Sources starting with `aws.` are reserved for AWS services (EventBridge's answer and message).
    if (source.startsWith("aws.")) {
      return { ErrorCode: "NotAuthorizedForSourceException", ErrorMessage: "Not authorized for the source." };
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

  /**
   * The bus of this stack answers to its name and its ARN. An omitted name, `default` or the
   * default bus's ARN is the account's default bus: it exists (the entry is accepted, as on AWS)
   * but no rule of this stack is on it. Any other bus does not exist here.
   */
  private busNameOf(value: unknown): string | undefined {
    if (value === undefined || value === null || value === "") return DEFAULT_BUS;
    if (typeof value !== "string") return undefined;
    const name = value.startsWith("arn:") ? value.slice(value.lastIndexOf("/") + 1) : value;
    if (name === DEFAULT_BUS) return DEFAULT_BUS;
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

/**
 * Entry size as EventBridge computes it: UTF-8 bytes of Source, DetailType, Detail and each
 * Resources item, plus 14 bytes when Time is given. Fields of the wrong type count as absent
 * (the entry then fails its own validation).
 */
export function entrySize(entry: PutEventsRequestEntry): number {
  let size = entry.Time !== undefined && entry.Time !== null ? 14 : 0;
  const resources = Array.isArray(entry.Resources) ? entry.Resources : [];
  for (const s of [entry.Source, entry.DetailType, entry.Detail, ...resources]) {
    if (typeof s === "string") size += Buffer.byteLength(s, "utf8");
  }
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
