import { describe, expect, it } from "vitest";
import { MemoryStore, parseIdempotencyKey } from "../src/index.js";
import { describeIdempotencyBehaviour } from "../src/testing/index.js";

describeIdempotencyBehaviour("memory", { create: () => new MemoryStore({ maxRecordBytes: 64 * 1024 }) });

describe("parseIdempotencyKey", () => {
  it.each([
    ['"abc"', "abc"],
    ["abc", "abc"],
    ['"a\\"b\\\\c"', 'a"b\\c'],
    ["  8e03978e-40d5-43e8-bc93-6894a57f9324  ", "8e03978e-40d5-43e8-bc93-6894a57f9324"],
    ['"with space"', "with space"],
  ])("%s → %s", (value, key) => {
    expect(parseIdempotencyKey(value)).toBe(key);
  });

  it.each(['"a",', '"a" "b"', "a b", '""', '"\\n"', '"é"', "k".repeat(256), '"unterminated'])("refuses %s", (value) => {
    expect(parseIdempotencyKey(value)).toBeUndefined();
  });
});
