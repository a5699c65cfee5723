/**
 * What DynamoDB would bill for the requests a client sends, counted on the wire (marshalled
 * inputs), since DynamoDB Local's ConsumedCapacity omits PartiQL and transactions' 2x.
 *
 * Rules (DynamoDB developer guide, "Read/write capacity mode" and "Item sizes"):
 * - a write unit per 1 KB of item size, rounded up per item; a failed condition is billed too;
 * - a transactional write (TransactWriteItems) bills 2 units per 1 KB per item;
 * - a PartiQL INSERT bills like PutItem;
 * - an update bills the larger of the item's size before and after: here the item's size at
 *   the end of the phase (items only grow in a phase), so an upper bound;
 * - each write of an item that a GSI holds (projection ALL) writes the index too: 1 unit per
 *   1 KB, not doubled by transactions;
 * - a strongly consistent read unit per 4 KB per item (eventually consistent: half), and one for
 *   a key read that finds no item (GetItem, BatchGetItem); a Query rounds the sum of the items it
 *   returns.
 */
import type { AttributeValue } from "@aws-sdk/client-dynamodb";

type Av = AttributeValue;
type Marshalled = Record<string, Av>;

export interface Tally {
  requests: number;
  readRequests: number;
  writeRequests: number;
  /** Write units known at request time (puts, inserts). */
  wcu: number;
  rru: number;
  /** Updates whose size is settled at the end of the phase: key -> [writes, transactional writes]. */
  updates: Map<string, { key: Marshalled; plain: number; transactional: number }>;
  /** Puts of items with GSI keys (their index write, sized at request time). */
  gsiWcu: number;
  byCommand: Record<string, number>;
}

export function emptyTally(): Tally {
  return { requests: 0, readRequests: 0, writeRequests: 0, wcu: 0, rru: 0, updates: new Map(), gsiWcu: 0, byCommand: {} };
}

const KB = 1024;
const units = (bytes: number, per = KB) => Math.max(1, Math.ceil(bytes / per));

function numberSize(n: string): number {
  const digits = n.replace(/^-/, "").replace(/e.*$/i, "").replace(".", "").replace(/^0+/, "").replace(/0+$/, "");
  return Math.ceil(Math.max(1, digits.length) / 2) + 1;
}

function valueSize(v: Av): number {
  if (v.S !== undefined) return Buffer.byteLength(v.S);
  if (v.N !== undefined) return numberSize(v.N);
  if (v.B !== undefined) return v.B.length;
  if (v.BOOL !== undefined || v.NULL !== undefined) return 1;
  if (v.SS) return v.SS.reduce((s, x) => s + Buffer.byteLength(x), 0);
  if (v.NS) return v.NS.reduce((s, x) => s + numberSize(x), 0);
  if (v.L) return 3 + v.L.reduce((s, x) => s + 1 + valueSize(x), 0);
  if (v.M) return 3 + Object.entries(v.M).reduce((s, [k, x]) => s + 1 + Buffer.byteLength(k) + valueSize(x), 0);
  return 0;
}

/** Size of an item as DynamoDB counts it: attribute names plus values. */
export function itemSize(item: Marshalled): number {
  return Object.entries(item).reduce((s, [k, v]) => s + Buffer.byteLength(k) + valueSize(v), 0);
}

const keyOf = (key: Marshalled) => `${key.pk?.S}|${key.sk?.S}`;

function put(t: Tally, item: Marshalled, factor: number): void {
  t.wcu += factor * units(itemSize(item));
  if (item.gsi1pk) t.gsiWcu += units(itemSize(item));
}

function update(t: Tally, key: Marshalled, transactional: boolean): void {
  const k = keyOf(key);
  const u = t.updates.get(k) ?? { key, plain: 0, transactional: 0 };
  if (transactional) u.transactional++;
  else u.plain++;
  t.updates.set(k, u);
}

/** Items of `INSERT INTO "t" VALUE {'a': ?, ...}` with its parameters. */
function insertedItem(statement: string, params: Av[]): Marshalled | undefined {
  const m = /VALUE\s*\{(.*)\}\s*$/is.exec(statement);
  if (!m) return undefined;
  const names = [...m[1].matchAll(/'([^']+)'\s*:\s*\?/g)].map((x) => x[1]);
  return Object.fromEntries(names.map((n, i) => [n, params[i]]));
}

/** Counts one request (its marshalled input and output) into `t`. */
export function count(t: Tally, command: string, input: Record<string, unknown>, output: Record<string, unknown> | undefined): void {
  t.requests++;
  t.byCommand[command] = (t.byCommand[command] ?? 0) + 1;
  const consistent = (c: unknown) => (c === true ? 1 : 0.5);
  switch (command) {
    case "PutItemCommand":
      t.writeRequests++;
      put(t, input.Item as Marshalled, 1);
      break;
    case "UpdateItemCommand":
      t.writeRequests++;
      update(t, input.Key as Marshalled, false);
      break;
    case "DeleteItemCommand":
      t.writeRequests++;
      t.wcu += 1;
      break;
    case "TransactWriteItemsCommand":
      t.writeRequests++;
      for (const it of input.TransactItems as Record<string, { Item?: Marshalled; Key?: Marshalled }>[]) {
        if (it.Put) put(t, it.Put.Item!, 2);
        else if (it.Update) update(t, it.Update.Key!, true);
        else t.wcu += 2;
      }
      break;
    case "BatchExecuteStatementCommand":
      t.writeRequests++;
      for (const s of input.Statements as { Statement: string; Parameters?: Av[] }[]) {
        const item = insertedItem(s.Statement, s.Parameters ?? []);
        if (item) put(t, item, 1);
        else t.wcu += 1;
      }
      break;
    case "BatchWriteItemCommand":
      t.writeRequests++;
      for (const reqs of Object.values(input.RequestItems as Record<string, { PutRequest?: { Item: Marshalled } }[]>)) {
        for (const r of reqs) if (r.PutRequest) put(t, r.PutRequest.Item, 1);
        else t.wcu += 1;
      }
      break;
    case "GetItemCommand": {
      t.readRequests++;
      const item = output?.Item as Marshalled | undefined;
      t.rru += consistent(input.ConsistentRead) * (item ? units(itemSize(item), 4 * KB) : 1);
      break;
    }
    case "BatchGetItemCommand": {
      t.readRequests++;
      const req = input.RequestItems as Record<string, { ConsistentRead?: boolean; Keys?: unknown[] }>;
      const res = (output?.Responses ?? {}) as Record<string, Marshalled[]>;
      const unprocessed = (output?.UnprocessedKeys ?? {}) as Record<string, { Keys?: unknown[] }>;
      for (const [table, r] of Object.entries(req)) {
        const items = res[table] ?? [];
        for (const item of items) t.rru += consistent(r.ConsistentRead) * units(itemSize(item), 4 * KB);
        // a key with no item is billed too, as the smallest read (like GetItem)
        const missing = (r.Keys?.length ?? 0) - (unprocessed[table]?.Keys?.length ?? 0) - items.length;
        t.rru += consistent(r.ConsistentRead) * Math.max(0, missing);
      }
      break;
    }
    case "QueryCommand":
    case "ScanCommand": {
      t.readRequests++;
      const items = (output?.Items ?? []) as Marshalled[];
      t.rru += consistent(input.ConsistentRead) * units(items.reduce((s, i) => s + itemSize(i), 0), 4 * KB);
      break;
    }
    default:
      // table management and anything else: counted as a request only
      break;
  }
}

/**
 * Settles the updates of a phase against the items' sizes now (`sizes`: key -> size, absent
 * when the item is gone) and returns the billed write units of the phase.
 */
export function settle(t: Tally, sizes: Map<string, { size: number; gsi: boolean }>): { wcu: number; maxItemBytes: number } {
  let wcu = t.wcu + t.gsiWcu;
  let maxItemBytes = 0;
  for (const [k, u] of t.updates) {
    const s = sizes.get(k) ?? { size: 0, gsi: false };
    maxItemBytes = Math.max(maxItemBytes, s.size);
    const w = units(s.size);
    wcu += u.plain * w + 2 * u.transactional * w;
    if (s.gsi) wcu += (u.plain + u.transactional) * w;
  }
  return { wcu, maxItemBytes };
}

export function keyString(key: Marshalled): string {
  return keyOf(key);
}
