import { describe, expect, it } from "vitest";
import { CursorCodec, MAX_CURSOR_LENGTH } from "../../../shared/http/cursor";
import { HttpCursorInvalidError } from "../../../shared/http/errors";
import { cursorCodec } from "../../../shared/runtime/http";
import { ConfigurationError, parseConfig } from "../../../shared/runtime/config";

const KEY = "unit-test-cursor-key-0123456789abcdef";
const position = JSON.stringify({ s: 3, k: { pk: "TENANT#a", sk: "USAGE#M#2026-11" } });

describe("CursorCodec", () => {
  it("round-trips a store position for the scope that sealed it; no position stays undefined", () => {
    const codec = new CursorCodec(KEY);
    const sealed = codec.seal(position, "billing/2026-11")!;
    expect(sealed).toMatch(/^c1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/);
    expect(codec.open(sealed, "billing/2026-11")).toBe(position);
    expect(codec.seal(undefined, "billing/2026-11")).toBeUndefined();
    expect(codec.open(undefined, "x")).toBeUndefined();
    expect(codec.open("", "x")).toBeUndefined();
  });

  it("rejects another scope, another key, any changed character, junk and oversize input", () => {
    const codec = new CursorCodec(KEY);
    const sealed = codec.seal(position, "billing/2026-11")!;
    const bad = [
      new CursorCodec(`${KEY}-other`).seal(position, "billing/2026-11")!,
      "zzz",
      "c1..",
      "c2" + sealed.slice(2),
      sealed + ".x",
      "c1.%ZZ." + sealed.split(".")[2],
      "c1." + "A".repeat(MAX_CURSOR_LENGTH) + ".x",
      Buffer.from(position).toString("base64url"),
    ];
    for (let i = 3; i < sealed.length; i++) {
      if (sealed[i] === ".") continue;
      bad.push(sealed.slice(0, i) + (sealed[i] === "A" ? "B" : "A") + sealed.slice(i + 1));
    }
    for (const cursor of bad) expect(() => codec.open(cursor, "billing/2026-11"), cursor).toThrow(HttpCursorInvalidError);
    expect(() => codec.open(sealed, "billing/2026-10")).toThrow(HttpCursorInvalidError);
    expect(() => codec.open(sealed, "quarantine/2026-11-01")).toThrow(HttpCursorInvalidError);
  });

  it("refuses a short key; on Lambda the config must carry CURSOR_SECRET", () => {
    expect(() => new CursorCodec("short")).toThrow(RangeError);
    expect(() => parseConfig({ USAGE_TABLE_NAME: "t", CURSOR_SECRET: "short" })).toThrow(ConfigurationError);
    expect(() => cursorCodec(parseConfig({ USAGE_TABLE_NAME: "t", AWS_LAMBDA_FUNCTION_NAME: "api" }))).toThrow(/CURSOR_SECRET is required/);
    const a = cursorCodec(parseConfig({ USAGE_TABLE_NAME: "t", CURSOR_SECRET: KEY }));
    expect(new CursorCodec(KEY).open(a.seal(position, "s"), "s")).toBe(position);
    // Off Lambda without a secret: one random key per process, the same for every handler.
    const local = parseConfig({ USAGE_TABLE_NAME: "t" });
    expect(cursorCodec(local).open(cursorCodec(local).seal(position, "s"), "s")).toBe(position);
  });
});
