import { expect, it } from "vitest";
import { expressMajor } from "./framework.js";

it("runs on the Express major this project names", () => {
  expect(process.env.INTERLOCK_EXPECTED_FRAMEWORK_MAJOR).toBeDefined();
  expect(String(expressMajor)).toBe(process.env.INTERLOCK_EXPECTED_FRAMEWORK_MAJOR);
});
