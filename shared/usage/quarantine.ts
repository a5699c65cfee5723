import { TENANT_ID_PATTERN } from "../events/invocation";

/**
 * What the quarantine keeps of a rejected record: never its content. A rejected record may be
 * a Bedrock invocation-log line (which, with text delivery on, holds the whole prompt and
 * answer) or a bus message with any fields a sender put in it, so the quarantine keeps only
 * what an operator needs to find and fix the sender: ids, the reason, field names and sizes.
 *
 * - `bytes`: UTF-8 size of what arrived; `json`: whether it parsed.
 * - `fields`: up to {@link MAX_FIELDS} lines `path: type(size)`, depth <= {@link MAX_DEPTH},
 *   arrays described by their first element (`messages[0].content[0].text: string(37)`).
 *   Strings appear as their length only; numbers, booleans and null as themselves (counts and
 *   flags, which is what a schema error is usually about). A field name that is not a plain
 *   identifier is replaced by its length (`<key of 23 chars>`), since a name can carry text too.
 */
export interface RecordShape {
  bytes: number;
  json: boolean;
  fields: string[];
  /** Set when fields were left out (too many, or nested deeper). */
  truncated?: boolean;
}

export const MAX_FIELDS = 64;
export const MAX_DEPTH = 8;
const SAFE_NAME = /^[A-Za-z0-9_$@:-]{1,64}$/;

/** The content-free description of a raw record (its text, or an already parsed value). */
export function describeShape(raw: string | unknown): RecordShape {
  const text = typeof raw === "string" ? raw : JSON.stringify(raw) ?? "";
  let value: unknown;
  try {
    value = typeof raw === "string" ? JSON.parse(raw) : raw;
  } catch {
    return { bytes: Buffer.byteLength(text), json: false, fields: [] };
  }
  const fields: string[] = [];
  let truncated = false;
  const add = (line: string) => {
    if (fields.length < MAX_FIELDS) fields.push(line);
    else truncated = true;
  };
  const walk = (v: unknown, path: string, depth: number) => {
    const at = path || "(root)";
    if (Array.isArray(v)) {
      add(`${at}: array(${v.length})`);
      // The first element stands for the others; an index is not a level of names, but nested
      // arrays still count, so no input recurses without bound.
      if (v.length > 0 && isContainer(v[0])) {
        if (Array.isArray(v[0]) && depth >= MAX_DEPTH) truncated = true;
        else walk(v[0], `${path}[0]`, Array.isArray(v[0]) ? depth + 1 : depth);
      }
    } else if (typeof v === "object" && v !== null) {
      const keys = Object.keys(v);
      if (!path || depth >= MAX_DEPTH) add(`${at}: object(${keys.length})`);
      if (depth >= MAX_DEPTH) {
        if (keys.length > 0) truncated = true;
        return;
      }
      for (const k of keys) walk((v as Record<string, unknown>)[k], path ? `${path}.${safeName(k)}` : safeName(k), depth + 1);
    } else {
      add(`${at}: ${scalar(v)}`);
    }
  };
  walk(value, "", 0);
  return truncated ? { bytes: Buffer.byteLength(text), json: true, fields, truncated } : { bytes: Buffer.byteLength(text), json: true, fields };
}

/**
 * An error message as the quarantine keeps it: quoted values (`'...'`, `"..."`) that are not
 * plain identifiers are replaced by their length, so a message that echoes input (a detail-type,
 * an unknown field name) does not carry text into the store. Bounded to 1,000 characters.
 */
export function contentFreeMessage(message: string): string {
  const out = message.replace(/'([^']*)'|"([^"]*)"/g, (whole, single: string | undefined, double: string | undefined) => {
    const inner = single ?? double ?? "";
    return SAFE_QUOTED.test(inner) ? whole : `<${inner.length} chars>`;
  });
  return out.length > 1_000 ? `${out.slice(0, 1_000)}...` : out;
}
/** Identifiers, model ids and ARNs (up to 256 chars, like a model id): no spaces, so no sentences. */
const SAFE_QUOTED = /^[A-Za-z0-9_.:/@+=|$#-]{0,256}$/;

/** Ids worth keeping from a rejected record, each only when it has the form of such an id. */
export interface RecordIds {
  source?: string;
  detailType?: string;
  tenantId?: string;
  eventId?: string;
}

const EVENT_ID = /^[A-Za-z0-9._:/@+=-]{1,128}$/;
/** EventBridge sources: letters, digits, '.', '-', '_' (publisher constants such as `genai.metering.bedrock`). */
const SOURCE = /^[A-Za-z0-9._-]{1,128}$/;
/**
 * Detail-types are publisher constants (`Model Invocation`): kept when they look like one, at
 * most three words of letters and digits, so a misrouted `Model Invocations` is visible but a
 * sentence is not kept.
 */
const DETAIL_TYPE = /^(?=.{1,64}$)[A-Za-z0-9]+(?:[ ._-][A-Za-z0-9]+){0,2}$/;

export function keepIds(ids: RecordIds): RecordIds {
  return stripUndefined({
    source: keep(ids.source, SOURCE),
    detailType: keep(ids.detailType, DETAIL_TYPE),
    tenantId: keep(ids.tenantId, TENANT_ID_PATTERN),
    eventId: keep(ids.eventId, EVENT_ID),
  });
}

/** Best-effort ids of a bus message (an EventBridge envelope as SQS delivers it), so an operator can find it by tenant. */
export function envelopeIds(body: string): RecordIds {
  try {
    const j = JSON.parse(body) as { source?: unknown; "detail-type"?: unknown; detail?: { tenantId?: unknown; eventId?: unknown } };
    return keepIds({ source: str(j?.source), detailType: str(j?.["detail-type"]), tenantId: str(j?.detail?.tenantId), eventId: str(j?.detail?.eventId) });
  } catch {
    return {};
  }
}

function keep(v: string | undefined, pattern: RegExp): string | undefined {
  return v !== undefined && pattern.test(v) ? v : undefined;
}

function str(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}

function safeName(k: string): string {
  return SAFE_NAME.test(k) ? k : `<key of ${k.length} chars>`;
}

function isContainer(v: unknown): boolean {
  return typeof v === "object" && v !== null;
}

function scalar(v: unknown): string {
  if (typeof v === "string") return `string(${v.length})`;
  if (typeof v === "number" || typeof v === "boolean" || v === null) return String(v);
  return typeof v;
}

function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
