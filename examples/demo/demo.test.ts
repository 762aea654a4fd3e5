import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";

it("the demo runs end to end and every request gets the answer it should", () => {
  const output = execFileSync(process.execPath, [fileURLToPath(new URL("./demo.mjs", import.meta.url))], {
    encoding: "utf8",
    timeout: 30_000,
  });
  expect(output).toMatch(/provider: signed delivery evt_demo_1\s+-> 200 \{"received":"evt_demo_1"\}/);
  expect(output).toMatch(/the same delivery again \(its retry\)\s+-> 200 \{"duplicate":true,"id":"evt_demo_1"\}/);
  expect(output).toMatch(/body tampered in transit\s+-> 401 refused: no_matching_signature/);
  expect(output).toMatch(/replay captured 10 minutes ago\s+-> 401 refused: timestamp_too_old/);
  expect(output).toMatch(/retry while the first is still running\s+-> 409 refused: request_in_flight/);
  expect(output).toMatch(/retry after it finished\s+-> 201 \{"id":"pay_1","amount":4200\} \(replayed\)/);
  expect(output).toMatch(/body cut short\s+-> 400 refused: bad_request/);
  expect(output).toMatch(/the same key, body corrected\s+-> 201 \{"id":"pay_2","amount":990\}$/m);
  expect(output).toContain("Orders fulfilled: 1 (evt_demo_1); payments created: 2.");
});
