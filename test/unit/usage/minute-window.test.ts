import { describe, expect, it } from "vitest";
import { addAndSetUpdate } from "../../../shared/storage/adapters/dynamodb";
import { MINUTE_KEEP, minuteAttributeNames, minuteCountersOf, minuteWindowUpdate } from "../../../shared/usage/minute-window";

const c = (requests: number, tokens = 10 * requests) => ({ requests, tokens });
/** Minutes of the hour (MM) an update removes. */
const removedMinutes = (removes: string[]) => [...new Set(removes.map((n) => Number(n.slice(2, 4))))].sort((a, b) => a - b);
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);
const LATER_HOUR = new Date("2026-11-25T23:00:00Z");

describe("minute windows on the tenant-hour item", () => {
  it("names a minute's attributes by its minute of the hour", () => {
    expect(minuteAttributeNames("2026-11-25T20:05")).toEqual({ requests: "mw05r", tokens: "mw05t" });
    expect(minuteAttributeNames("2026-11-25T20:59")).toEqual({ requests: "mw59r", tokens: "mw59t" });
    expect(() => minuteAttributeNames("2026-11-25T20")).toThrow(RangeError);
    expect(() => minuteAttributeNames("2026-11-25T20:60")).toThrow(RangeError);
  });

  it("adds each minute's requests and tokens and removes the minutes of the hour older than the newest less the keep window", () => {
    const u = minuteWindowUpdate({ "2026-11-25T20:36": c(3), "2026-11-25T20:35": c(1, 7) }, new Date("2026-11-25T20:36:30Z"));
    expect(MINUTE_KEEP).toBe(5);
    expect(u.adds).toEqual({ mw36r: 3, mw36t: 30, mw35r: 1, mw35t: 7 });
    expect(removedMinutes(u.removes)).toEqual(range(0, 31)); // 36 - 5 = 31 is the first minute kept
    expect(u.removes).toContain("mw30r");
    expect(u.removes).toContain("mw30t");
    expect(u.removes).not.toContain("mw31r");
  });

  it("with the minutes known to be on the item, removes only those of them below the cut", () => {
    const u = minuteWindowUpdate({ "2026-11-25T20:36": c(3) }, new Date("2026-11-25T20:36:30Z"), MINUTE_KEEP, [29, 30, 31, 35]);
    expect(u.removes).toEqual(["mw29r", "mw29t", "mw30r", "mw30t"]);
    expect(minuteWindowUpdate({ "2026-11-25T20:36": c(3) }, new Date("2026-11-25T20:36:30Z"), MINUTE_KEEP, []).removes).toEqual([]);
  });

  it("removes nothing at the start of an hour, and everything below newest - keep with another keep", () => {
    expect(minuteWindowUpdate({ "2026-11-25T20:03": c(1) }, new Date("2026-11-25T20:03:10Z")).removes).toEqual([]);
    expect(removedMinutes(minuteWindowUpdate({ "2026-11-25T20:10": c(1) }, LATER_HOUR, 0).removes)).toEqual(range(0, 10));
  });

  it("a late event for an old minute never removes newer minutes", () => {
    // now 20:40; a late event of 20:20 (the item may carry 20:35-20:40)
    const u = minuteWindowUpdate({ "2026-11-25T20:20": c(1) }, new Date("2026-11-25T20:40:00Z"));
    expect(Math.max(...removedMinutes(u.removes))).toBeLessThan(20);
    expect(removedMinutes(u.removes)).toEqual(range(0, 15));
    // a late batch of an earlier hour: cut below its own newest minute
    const late = minuteWindowUpdate({ "2026-11-25T19:50": c(1), "2026-11-25T19:12": c(2) }, LATER_HOUR);
    expect(removedMinutes(late.removes)).toEqual(range(0, 45));
    expect(late.adds).toEqual({ mw50r: 1, mw50t: 10 }); // 19:12 has ended long ago: not added
  });

  it("an event ahead of the clock never removes the minute being read", () => {
    // now 20:36, an event stamped 20:50 (within the tolerated skew)
    const u = minuteWindowUpdate({ "2026-11-25T20:50": c(1), "2026-11-25T20:36": c(1) }, new Date("2026-11-25T20:36:30Z"));
    expect(removedMinutes(u.removes)).toEqual(range(0, 31));
    expect(Object.keys(u.adds).sort()).toEqual(["mw36r", "mw36t", "mw50r", "mw50t"]);
    // a whole hour ahead of the clock: nothing removed
    expect(minuteWindowUpdate({ "2026-11-25T21:30": c(1) }, new Date("2026-11-25T20:59:00Z")).removes).toEqual([]);
  });

  it("never removes an attribute it adds, so the update expression is valid", () => {
    const now = new Date("2026-11-25T20:59:59Z");
    for (let newest = 0; newest < 60; newest++) {
      const minutes = Object.fromEntries(range(0, newest + 1).map((i) => [`2026-11-25T20:${String(i).padStart(2, "0")}`, c(1)]));
      const u = minuteWindowUpdate(minutes, now);
      const added = new Set(Object.keys(u.adds));
      expect(u.removes.filter((n) => added.has(n))).toEqual([]);
      // every minute is either kept (added) or removed: the item never keeps more than keep + 1 minutes from an in-order write
      expect(removedMinutes(u.removes).length + added.size / 2).toBe(newest + 1);
      expect(added.size / 2).toBeLessThanOrEqual(MINUTE_KEEP + 1);
      expect(() => addAndSetUpdate("t", { pk: "p", sk: "s" }, { requests: 1, ...u.adds }, { updatedAt: "x" }, u.removes)).not.toThrow();
    }
  });

  it("refuses minutes of different hours in one update", () => {
    expect(() => minuteWindowUpdate({ "2026-11-25T20:59": c(1), "2026-11-25T21:00": c(1) }, LATER_HOUR)).toThrow(RangeError);
    expect(minuteWindowUpdate({}, LATER_HOUR)).toEqual({ adds: {}, removes: [] });
  });

  it("reads a minute back from the item; a minute without attributes had no usage", () => {
    const item = { requests: 9, mw36r: 4, mw36t: 1200 };
    expect(minuteCountersOf(item, "2026-11-25T20:36")).toEqual({ requests: 4, tokens: 1200 });
    expect(minuteCountersOf(item, "2026-11-25T20:37")).toBeUndefined();
    expect(minuteCountersOf(undefined, "2026-11-25T20:36")).toBeUndefined();
  });

  it("the update builder refuses an attribute both removed and added", () => {
    expect(() => addAndSetUpdate("t", { pk: "p", sk: "s" }, { mw01r: 1 }, {}, ["mw01r"])).toThrow(RangeError);
    const u = addAndSetUpdate("t", { pk: "p", sk: "s" }, { mw40r: 1 }, { updatedAt: "x" }, ["mw01r"]).Update;
    expect(u.UpdateExpression).toBe("ADD #a_mw40r :a_mw40r SET #s_updatedAt = :s_updatedAt REMOVE #r_mw01r");
  });
});
