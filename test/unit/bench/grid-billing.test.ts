import { describe, expect, it } from "vitest";
import { count, emptyTally } from "../../../bench/grid-billing";

describe("grid billing: reads", () => {
  it("bills a key that finds no item as the smallest read, in a BatchGetItem as in a GetItem", () => {
    const t = emptyTally();
    const key = (sk: string) => ({ pk: { S: "TENANT#a" }, sk: { S: sk } });
    count(t, "BatchGetItemCommand", { RequestItems: { usage: { ConsistentRead: true, Keys: [key("CONFIG"), key("USAGE#M#2026-11"), key("ENFORCE#2026-11")] } } }, {
      Responses: { usage: [{ ...key("USAGE#M#2026-11"), requests: { N: "1" } }] },
    });
    // one item found (1 unit), two keys without items (1 unit each)
    expect(t.rru).toBe(3);
    expect(t.readRequests).toBe(1);
    count(t, "GetItemCommand", { ConsistentRead: true, Key: key("CONFIG") }, {});
    expect(t.rru).toBe(4);
  });

  it("does not bill keys left unprocessed (they are asked again, and billed then)", () => {
    const t = emptyTally();
    const key = (sk: string) => ({ pk: { S: "TENANT#a" }, sk: { S: sk } });
    count(t, "BatchGetItemCommand", { RequestItems: { usage: { Keys: [key("A"), key("B")] } } }, { Responses: { usage: [] }, UnprocessedKeys: { usage: { Keys: [key("B")] } } });
    expect(t.rru).toBe(0.5);
  });
});
