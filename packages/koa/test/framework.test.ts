import { expect, it } from "vitest";
import { koaMajor } from "./framework.js";

it("runs on the Koa major this project names", () => {
  expect(process.env.INTERLOCK_EXPECTED_FRAMEWORK_MAJOR).toBeDefined();
  expect(String(koaMajor)).toBe(process.env.INTERLOCK_EXPECTED_FRAMEWORK_MAJOR);
});
