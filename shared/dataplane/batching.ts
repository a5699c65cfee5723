/**
 * PutEvents limits: at most 10 entries and 256 KiB per request. An entry's size is counted
 * the way EventBridge documents it: UTF-8 bytes of Source, DetailType, Detail and each
 * Resource, plus 14 bytes when Time is set. We also count EventBusName, to stay on the safe side.
 */
export const PUT_EVENTS_MAX_ENTRIES = 10;
export const PUT_EVENTS_MAX_BYTES = 256 * 1024;

export interface BusEntry {
  source: string;
  detailType: string;
  /** JSON text of the detail. */
  detail: string;
  eventBusName?: string;
  time?: Date;
  resources?: string[];
}

export function entrySize(entry: BusEntry): number {
  let size = Buffer.byteLength(entry.source) + Buffer.byteLength(entry.detailType) + Buffer.byteLength(entry.detail);
  if (entry.eventBusName) size += Buffer.byteLength(entry.eventBusName);
  if (entry.time) size += 14;
  for (const r of entry.resources ?? []) size += Buffer.byteLength(r);
  return size;
}

/**
 * Splits items into request-sized batches, keeping order. An item bigger than `maxBytes` on
 * its own cannot be sent at all: it is returned in `oversized` for the caller to report.
 */
export function batchEntries<T>(
  items: readonly T[],
  sizeOf: (item: T) => number,
  limits: { maxEntries?: number; maxBytes?: number } = {},
): { batches: T[][]; oversized: T[] } {
  const maxEntries = limits.maxEntries ?? PUT_EVENTS_MAX_ENTRIES;
  const maxBytes = limits.maxBytes ?? PUT_EVENTS_MAX_BYTES;
  const batches: T[][] = [];
  const oversized: T[] = [];
  let current: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const size = sizeOf(item);
    if (size > maxBytes) {
      oversized.push(item);
      continue;
    }
    if (current.length > 0 && (current.length >= maxEntries || bytes + size > maxBytes)) {
      batches.push(current);
      current = [];
      bytes = 0;
    }
    current.push(item);
    bytes += size;
  }
  if (current.length > 0) batches.push(current);
  return { batches, oversized };
}
