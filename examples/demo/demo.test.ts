import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";

it("the demo runs end to end and every delivery gets the answer it should", () => {
  const output = execFileSync(process.execPath, [fileURLToPath(new URL("./demo.mjs", import.meta.url))], {
    encoding: "utf8",
    timeout: 20_000,
  });
  expect(output).toMatch(/Stripe: signed delivery\s+-> 200 accepted evt_demo_1/);
  expect(output).toMatch(/body tampered in transit\s+-> 401 refused: no_matching_signature/);
  expect(output).toMatch(/replayed 10 minutes later\s+-> 401 refused: timestamp_too_old/);
  expect(output).toContain("Every delivery got the answer it should.");
});
